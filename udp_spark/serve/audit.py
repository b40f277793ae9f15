"""``audit.api_access``: one row per request (who, role, endpoint, customer ids, status),
appended with delta-rs in batches. Look-up values (e-mails, phones) are never written;
their keyed hash is, so two look-ups of one value can still be told apart."""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass, field
from datetime import datetime

import pyarrow as pa
from deltalake import write_deltalake

log = logging.getLogger(__name__)

SCHEMA = pa.schema([
    pa.field("request_id", pa.string(), nullable=False),
    pa.field("at", pa.timestamp("us", tz="UTC"), nullable=False),
    pa.field("key_id", pa.string()),
    pa.field("role", pa.string()),
    pa.field("method", pa.string(), nullable=False),
    pa.field("endpoint", pa.string()),
    pa.field("status", pa.int32(), nullable=False),
    pa.field("customer_ids", pa.list_(pa.string())),
    pa.field("lookup_kind", pa.string()),
    pa.field("lookup_hash", pa.string()),
    pa.field("duration_ms", pa.float64()),
])


@dataclass
class AccessRow:
    request_id: str
    at: datetime
    method: str
    status: int
    key_id: str | None = None
    role: str | None = None
    endpoint: str | None = None
    customer_ids: list[str] = field(default_factory=list)
    lookup_kind: str | None = None
    lookup_hash: str | None = None
    duration_ms: float | None = None


class AuditWriter:
    """Buffers rows and appends them every ``flush_seconds`` or ``flush_rows`` rows."""

    MAX_BUFFER = 100_000  # rows kept across failed writes before the oldest are dropped

    def __init__(self, path: str, flush_seconds: float = 2.0, flush_rows: int = 500) -> None:
        self.path = path
        self.flush_seconds = flush_seconds
        self.flush_rows = flush_rows
        self._rows: list[AccessRow] = []
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.written = 0

    def add(self, row: AccessRow) -> None:
        with self._lock:
            self._rows.append(row)
            full = len(self._rows) >= self.flush_rows
        if full:
            self._wake.set()

    def flush(self) -> int:
        """Append the buffered rows now; returns how many were written."""
        with self._lock:
            rows, self._rows = self._rows, []
        if not rows:
            return 0
        table = pa.Table.from_pylist([r.__dict__ for r in rows], schema=SCHEMA)
        try:
            write_deltalake(self.path, table, mode="append")
        except Exception as exc:
            log.error("serve: audit write to %s failed (%s); %d rows kept for the next try",
                      self.path, exc, len(rows))
            with self._lock:
                self._rows = (rows + self._rows)[-self.MAX_BUFFER:]
            return 0
        self.written += len(rows)
        return len(rows)

    def _run(self) -> None:
        while not self._stop.is_set():
            self._wake.wait(self.flush_seconds)
            self._wake.clear()
            self.flush()

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="udp-serve-audit", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
        self.flush()
