"""The in-process index the API answers from, read with delta-rs (no Spark, no JVM).

Each gold table is read whole at one committed version into plain Python structures
(JSON-ready dicts, look-up maps). A poller asks each table's Delta log for its latest
version every ``refresh_seconds``; a table that moved is read again and its part of the
index rebuilt, and a new :class:`Snapshot` replaces the old one by one reference
assignment. A request takes ``store.current`` once and answers from that object only, so
it never sees a table half written or two parts from different swaps.
"""

from __future__ import annotations

import dataclasses
import logging
import re
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

import phonenumbers
import pyarrow as pa
from deltalake import DeltaTable
from pyarrow.dataset import ParquetReadOptions

log = logging.getLogger(__name__)

PROFILE = "gold.customer_profile"
HISTORY = "gold.customer_profile_history"
XREF = "gold.identity_xref"
EVENTS = "gold.identity_events"
SEGMENTS = "gold.segment_membership"
TABLES: tuple[str, ...] = (PROFILE, HISTORY, XREF, EVENTS, SEGMENTS)

# Profile columns that are bookkeeping, not customer data: never served.
INTERNAL = frozenset({"_row_hash"})


def plain(value: Any) -> Any:
    """A value read from Arrow made JSON-ready: times as ISO 8601, decimals as floats,
    maps (Arrow gives lists of key/value tuples) as objects."""
    if value is None or isinstance(value, str | bool | int | float):
        return value
    if isinstance(value, datetime):
        if value.tzinfo is None:  # timestamp_ntz columns hold UTC wall time
            value = value.replace(tzinfo=UTC)
        # Fixed precision, so the strings sort like the times.
        return value.astimezone(UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, Decimal):
        return float(value)
    if isinstance(value, dict):
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        if value and all(isinstance(v, tuple) and len(v) == 2 for v in value):
            return {str(k): plain(v) for k, v in value}
        return [plain(v) for v in value]
    if isinstance(value, bytes):
        return None
    return str(value)


def normalize_email(value: str) -> str:
    return value.strip().lower()


def normalize_phone(value: str, region: str) -> str | None:
    """E.164 of a phone number as typed (``+44 20 ...``, ``(555) 010-...``), or None."""
    try:
        number = phonenumbers.parse(value, region)
    except phonenumbers.NumberParseException:
        return None
    if not phonenumbers.is_possible_number(number):
        return None
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def normalize_loyalty(value: str) -> str:
    # The same canonical form standardize gives card numbers keyed with a printed prefix.
    return re.sub(r"^LOY-?", "", value.strip().upper())


@dataclass(frozen=True)
class Consent:
    """One purpose's consent state on a profile."""

    allowed: bool
    expires_at: datetime | None

    def valid(self, now: datetime) -> bool:
        return self.allowed and (self.expires_at is None or self.expires_at > now)


@dataclass(frozen=True)
class ProfileIndex:
    rows: dict[str, dict[str, Any]] = field(default_factory=dict)
    consent: dict[str, dict[str, Consent]] = field(default_factory=dict)
    by_email: dict[str, tuple[str, ...]] = field(default_factory=dict)
    by_phone: dict[str, tuple[str, ...]] = field(default_factory=dict)
    by_loyalty: dict[str, tuple[str, ...]] = field(default_factory=dict)
    columns: tuple[str, ...] = ()


@dataclass(frozen=True)
class XrefIndex:
    customer_of: dict[str, str] = field(default_factory=dict)
    records: dict[str, list[dict[str, Any]]] = field(default_factory=dict)


@dataclass(frozen=True)
class EventIndex:
    merged_into: dict[str, str] = field(default_factory=dict)
    by_customer: dict[str, list[dict[str, Any]]] = field(default_factory=dict)


@dataclass(frozen=True)
class HistoryIndex:
    by_customer: dict[str, list[dict[str, Any]]] = field(default_factory=dict)


@dataclass(frozen=True)
class SegmentIndex:
    members: dict[str, list[str]] = field(default_factory=dict)  # open spells, sorted ids
    spells: dict[str, list[dict[str, Any]]] = field(default_factory=dict)


@dataclass(frozen=True)
class Snapshot:
    """Everything a request reads, at one version of each table."""

    versions: dict[str, int | None]
    loaded_at: datetime
    profiles: ProfileIndex = ProfileIndex()
    xref: XrefIndex = XrefIndex()
    events: EventIndex = EventIndex()
    history: HistoryIndex = HistoryIndex()
    segments: SegmentIndex = SegmentIndex()

    def survivor(self, customer_id: str) -> tuple[str, list[str]]:
        """Follow ``merged`` events from ``customer_id``: the surviving id and the ids
        followed (empty when it was never merged away)."""
        chain: list[str] = []
        current = customer_id
        while len(chain) < 50:
            nxt = self.events.merged_into.get(current)
            if nxt is None or nxt in chain or nxt == customer_id:
                break
            current = nxt
            chain.append(current)
        return current, chain


def _index(pairs: Iterable[tuple[str | None, str]]) -> dict[str, tuple[str, ...]]:
    out: dict[str, set[str]] = {}
    for key, cid in pairs:
        if key:
            out.setdefault(key, set()).add(cid)
    return {k: tuple(sorted(v)) for k, v in out.items()}


def _consent(raw: Any) -> dict[str, Consent]:
    if not raw:
        return {}
    items = raw.items() if isinstance(raw, dict) else raw
    out: dict[str, Consent] = {}
    for purpose, state in items:
        if not isinstance(state, dict):
            continue
        expires = state.get("expires_at")
        if isinstance(expires, datetime) and expires.tzinfo is None:
            expires = expires.replace(tzinfo=UTC)
        out[str(purpose)] = Consent(state.get("allowed") is True,
                                    expires if isinstance(expires, datetime) else None)
    return out


def _strings(items: Any, *keys: str) -> list[str]:
    """String values under ``keys`` of a list of structs (contacts lists)."""
    out: list[str] = []
    for item in items or []:
        if isinstance(item, dict):
            out.extend(str(item[k]) for k in keys if item.get(k))
        elif isinstance(item, str):
            out.append(item)
    return out


def build_profiles(rows: list[dict[str, Any]], columns: list[str]) -> ProfileIndex:
    served = tuple(c for c in columns if c not in INTERNAL)
    profiles: dict[str, dict[str, Any]] = {}
    consent: dict[str, dict[str, Consent]] = {}
    emails: list[tuple[str | None, str]] = []
    phones: list[tuple[str | None, str]] = []
    loyalty: list[tuple[str | None, str]] = []
    for row in rows:
        cid = row["customer_id"]
        profiles[cid] = {c: plain(row.get(c)) for c in served}
        consent[cid] = _consent(row.get("consent"))
        for e in [row.get("email"), *_strings(row.get("emails"), "email", "value")]:
            emails.append((normalize_email(e) if e else None, cid))
        for p in [row.get("phone"), row.get("mobile"),
                  *_strings(row.get("phones"), "phone", "phone_e164", "value")]:
            phones.append((p, cid))
        if row.get("loyalty_id"):
            loyalty.append((normalize_loyalty(str(row["loyalty_id"])), cid))
    return ProfileIndex(profiles, consent, _index(emails), _index(phones), _index(loyalty),
                        served)


def build_xref(rows: list[dict[str, Any]]) -> XrefIndex:
    customer_of: dict[str, str] = {}
    records: dict[str, list[dict[str, Any]]] = {}
    for row in rows:
        customer_of[row["record_id"]] = row["customer_id"]
        records.setdefault(row["customer_id"], []).append({k: plain(v) for k, v in row.items()})
    for recs in records.values():
        recs.sort(key=lambda r: r["record_id"])
    return XrefIndex(customer_of, records)


def build_events(rows: list[dict[str, Any]]) -> EventIndex:
    latest: dict[str, tuple[Any, str]] = {}
    by_customer: dict[str, list[dict[str, Any]]] = {}
    for row in rows:
        cid, rel = row.get("customer_id"), row.get("related_customer_id")
        if row.get("event_type") == "merged" and cid and rel:
            at = row.get("event_at") or datetime.min.replace(tzinfo=UTC)
            if cid not in latest or at > latest[cid][0]:
                latest[cid] = (at, rel)
        out = {k: plain(v) for k, v in row.items()}
        for key in {cid, rel} - {None}:
            by_customer.setdefault(str(key), []).append(out)
    for evs in by_customer.values():
        evs.sort(key=lambda e: (e.get("event_at") or "", e.get("event_type") or ""))
    return EventIndex({k: v[1] for k, v in latest.items()}, by_customer)


def build_history(rows: list[dict[str, Any]]) -> HistoryIndex:
    by_customer: dict[str, list[dict[str, Any]]] = {}
    for row in rows:
        out = {k: plain(v) for k, v in row.items() if k not in INTERNAL}
        by_customer.setdefault(row["customer_id"], []).append(out)
    for versions in by_customer.values():
        versions.sort(key=lambda r: r.get("valid_from") or "")
    return HistoryIndex(by_customer)


def build_segments(rows: list[dict[str, Any]]) -> SegmentIndex:
    members: dict[str, set[str]] = {}
    spells: dict[str, list[dict[str, Any]]] = {}
    for row in rows:
        if row.get("exited_at") is None:
            members.setdefault(row["segment"], set()).add(row["customer_id"])
        spells.setdefault(row["customer_id"], []).append({k: plain(v) for k, v in row.items()})
    for s in spells.values():
        s.sort(key=lambda r: (r.get("segment") or "", r.get("entered_at") or ""))
    return SegmentIndex({k: sorted(v) for k, v in members.items()}, spells)


def read_table(dt: DeltaTable) -> pa.Table:
    """The table at its loaded version. Spark writes timestamps as Parquet INT96, which
    Arrow reads as nanoseconds by default and so cannot hold dates past 2262 (a consent
    expiring in 2999, a 9999-12-31 sentinel): they are read as microseconds instead."""
    if "deletionVectors" in (dt.protocol().reader_features or []):
        return dt.to_pyarrow_table()  # the kernel's reader applies deletion vectors
    options = ParquetReadOptions(coerce_int96_timestamp_unit="us")
    return dt.to_pyarrow_dataset(parquet_read_options=options).to_table()


_BUILDERS: dict[str, tuple[str, Callable[..., Any]]] = {
    XREF: ("xref", build_xref),
    EVENTS: ("events", build_events),
    HISTORY: ("history", build_history),
    SEGMENTS: ("segments", build_segments),
}


class SnapshotStore:
    """Holds the current :class:`Snapshot` and replaces it when a table moves.

    Args:
        paths: table name (``gold.customer_profile``...) -> Delta table location.
        refresh_seconds: how often :meth:`run` polls the Delta logs.
    """

    def __init__(self, paths: dict[str, str], refresh_seconds: float = 1.0) -> None:
        self.paths = paths
        self.refresh_seconds = refresh_seconds
        self._tables: dict[str, DeltaTable] = {}
        self._lock = threading.Lock()  # one refresh at a time; readers never take it
        self._stop = threading.Event()
        self.current = Snapshot({name: None for name in paths}, datetime.now(UTC))
        self.last_error: str | None = None

    def _latest(self, name: str) -> DeltaTable | None:
        dt = self._tables.get(name)
        if dt is None:
            if not DeltaTable.is_deltatable(self.paths[name]):
                return None
            dt = DeltaTable(self.paths[name])
            self._tables[name] = dt
        else:
            dt.update_incremental()
        return dt

    def refresh(self) -> bool:
        """Poll every table; rebuild and swap in what moved. True when anything did."""
        with self._lock:
            snap = self.current
            changes: dict[str, Any] = {}
            versions = dict(snap.versions)
            for name in self.paths:
                dt = self._latest(name)
                version = dt.version() if dt is not None else None
                if version == snap.versions.get(name):
                    continue
                started = time.perf_counter()
                table = read_table(dt) if dt is not None else None
                rows = table.to_pylist() if table is not None else []
                if name == PROFILE:
                    changes["profiles"] = build_profiles(
                        rows, table.column_names if table is not None else [])
                else:
                    attr, build = _BUILDERS[name]
                    changes[attr] = build(rows)
                versions[name] = version
                log.info("serve: %s version %s loaded (%d rows, %.0f ms)", name, version,
                         len(rows), (time.perf_counter() - started) * 1000)
            if not changes:
                return False
            # One assignment: requests hold either the old object or the new one.
            self.current = dataclasses.replace(snap, versions=versions,
                                               loaded_at=datetime.now(UTC), **changes)
            return True

    def run(self) -> None:
        """Poll until :meth:`stop` (run in a daemon thread)."""
        while not self._stop.wait(self.refresh_seconds):
            try:
                self.refresh()
                self.last_error = None
            except Exception as exc:  # keep serving the last good snapshot
                self.last_error = f"{type(exc).__name__}: {exc}"
                log.warning("serve: refresh failed, still serving the previous snapshot: %s",
                            self.last_error)

    def start(self) -> threading.Thread:
        self.refresh()
        thread = threading.Thread(target=self.run, name="udp-serve-refresh", daemon=True)
        thread.start()
        return thread

    def stop(self) -> None:
        self._stop.set()
