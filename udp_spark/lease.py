"""A lease on the lakehouse: one writer at a time for ``udp run`` (and whoever else asks).

The lease is a row of ``audit.leases`` (name, holder, host, pid, expiry), taken and given
back by compare-and-swap MERGEs: a MERGE only replaces the row if it still names the holder
the caller saw, and Delta's optimistic concurrency fails the second of two MERGEs that
race (both read the row's file), so exactly one of two concurrent runs holds it. A holder
renews it (each stage of ``udp run`` does); one that died is recognised by its expiry, or
at once when it ran on this host and its process is gone, so a killed run never blocks the
next one for long.
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from delta.exceptions import (
    ConcurrentAppendException,
    ConcurrentDeleteDeleteException,
    ConcurrentDeleteReadException,
    ConcurrentTransactionException,
    ConcurrentWriteException,
    DeltaConcurrentModificationException,
    MetadataChangedException,
    ProtocolChangedException,
)
from pyspark.sql import SparkSession
from pyspark.sql import functions as F
from pyspark.sql import types as T

from udp_spark import io
from udp_spark.platform.process import pid_alive
from udp_spark.tables import AUDIT_LEASES, Lakehouse

log = logging.getLogger(__name__)

PIPELINE = "pipeline"  # the lease every writer of the lakehouse's stages takes

# What Delta raises when another commit won the race (these classes share no base class)
CONFLICTS = (ConcurrentAppendException, ConcurrentDeleteDeleteException,
             ConcurrentDeleteReadException, ConcurrentTransactionException,
             ConcurrentWriteException, DeltaConcurrentModificationException,
             MetadataChangedException, ProtocolChangedException)

LEASE_SCHEMA = T.StructType([
    T.StructField("name", T.StringType(), False),
    T.StructField("holder", T.StringType(), True),
    T.StructField("host", T.StringType(), True),
    T.StructField("pid", T.LongType(), True),
    T.StructField("acquired_at", T.TimestampType(), True),
    T.StructField("expires_at", T.TimestampType(), True),
])


class LeaseHeld(RuntimeError):
    """Another live writer holds the lease; the message says who and until when."""

    def __init__(self, name: str, holder: str, host: str, pid: int, expires_at: datetime):
        super().__init__(f"lease {name!r} is held by {holder} (host {host}, pid {pid}) until "
                         f"{expires_at:%Y-%m-%d %H:%M:%S} UTC: another run is writing this "
                         f"lakehouse; wait for it (or for the lease to expire)")
        self.holder = holder


@dataclass(frozen=True)
class _Row:
    holder: str | None
    host: str | None
    pid: int | None
    expires_at: datetime | None


def _now() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)  # Delta timestamps here are naive UTC


class Lease:
    """``with Lease(spark, lake, "pipeline", holder=run_id).held():`` ... (see the module)."""

    def __init__(self, spark: SparkSession, lake: Lakehouse, name: str, *, holder: str,
                 ttl_seconds: float = 7200.0):
        self.spark, self.ref, self.name = spark, lake.ref(AUDIT_LEASES), name
        self.holder, self.ttl = holder, ttl_seconds
        self.host, self.pid = socket.gethostname(), os.getpid()
        self._renewed = 0.0  # time.monotonic() of the last write of our expiry

    def _current(self) -> _Row | None:
        if not io.table_exists(self.spark, self.ref):
            return None
        rows = (io.read_table(self.spark, self.ref).filter(F.col("name") == self.name)
                .orderBy("holder").collect())
        if not rows:
            return None
        r = rows[0]
        return _Row(r["holder"], r["host"], r["pid"], r["expires_at"])

    def _free(self, row: _Row | None) -> bool:
        """True when the row's holder is nobody, this holder, expired or a dead local process."""
        if row is None or row.holder is None or row.holder == self.holder:
            return True
        if row.expires_at is not None and row.expires_at < _now():
            log.warning("lease %s: %s expired at %s; taking it over", self.name, row.holder,
                        row.expires_at)
            return True
        if row.host == self.host and row.pid is not None and not pid_alive(row.pid):
            log.warning("lease %s: holder %s (pid %d on this host) is gone; taking it over",
                        self.name, row.holder, row.pid)
            return True
        return False

    def _swap(self, seen: _Row | None, holder: str | None) -> None:
        """Write the row for ``holder`` (None: release) if it still names ``seen``'s holder."""
        now = _now()
        row = (self.name, holder, self.host if holder else None,
               self.pid if holder else None, now if holder else None,
               now + timedelta(seconds=self.ttl) if holder else None)
        df = self.spark.createDataFrame([row], LEASE_SCHEMA)
        if not io.table_exists(self.spark, self.ref):
            io.append_new_batches(df, self.ref, batch_col="name", known_batches=())
            return
        expected = "t.holder IS NULL" if seen is None or seen.holder is None else (
            "t.holder = '" + seen.holder.replace("'", "''") + "'")
        (io.delta_table(self.spark, self.ref).alias("t")
         .merge(df.alias("s"), "t.name = s.name")
         .whenMatchedUpdateAll(condition=expected)
         .whenNotMatchedInsertAll().execute())

    def acquire(self, wait_seconds: float = 0.0, poll_seconds: float = 5.0) -> None:
        """Take the lease, waiting up to ``wait_seconds`` for a live holder to give it back.

        Raises:
            LeaseHeld: it is still held by another live writer after the wait.
        """
        deadline = time.monotonic() + wait_seconds
        while True:
            seen = self._current()
            if self._free(seen):
                with contextlib.suppress(*CONFLICTS):
                    self._swap(seen, self.holder)  # a racing writer's commit fails one of us
                now = self._current()
                if now is not None and now.holder == self.holder:
                    self._renewed = time.monotonic()
                    log.info("lease %s taken by %s (pid %d)", self.name, self.holder, self.pid)
                    return
                seen = now
            if time.monotonic() >= deadline:
                assert seen is not None and seen.holder is not None
                raise LeaseHeld(self.name, seen.holder, seen.host or "?", seen.pid or -1,
                                seen.expires_at or _now())
            time.sleep(poll_seconds)

    def renew(self) -> None:
        """Push the expiry out by the ttl.

        Raises:
            LeaseHeld: the lease was lost (expired and taken over by another writer).
        """
        seen = self._current()
        if seen is None or seen.holder != self.holder:
            raise LeaseHeld(self.name, seen.holder if seen and seen.holder else "nobody",
                            (seen.host if seen else None) or "?",
                            (seen.pid if seen else None) or -1,
                            (seen.expires_at if seen else None) or _now())
        self._swap(seen, self.holder)
        self._renewed = time.monotonic()

    def renew_if_due(self) -> None:
        """:meth:`renew` once a quarter of the ttl has passed since the last write (a renewal
        is a MERGE: seconds; a stage boundary is not a reason to pay it each time)."""
        if time.monotonic() - self._renewed >= self.ttl / 4:
            self.renew()

    def release(self) -> None:
        """Give the lease back (a no-op when it is not held by this holder any more)."""
        seen = self._current()
        if seen is not None and seen.holder == self.holder:
            with contextlib.suppress(*CONFLICTS):
                self._swap(seen, None)
                log.info("lease %s released by %s", self.name, self.holder)

    @contextlib.contextmanager
    def held(self, wait_seconds: float = 0.0) -> Iterator[Lease]:
        self.acquire(wait_seconds)
        try:
            yield self
        finally:
            self.release()
