"""One writer at a time: the lakehouse lease that ``udp run`` holds, on real Delta tables.
A live holder keeps a second run out (it refuses, or waits), a dead or expired one does
not, and of two runs racing for a free lease exactly one gets it."""

from __future__ import annotations

import subprocess
import sys
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from pyspark.sql import SparkSession
from pyspark.sql import functions as F

from udp_spark import io
from udp_spark.config import load_config
from udp_spark.lease import Lease, LeaseHeld
from udp_spark.pipeline.context import StageContext
from udp_spark.tables import AUDIT_LEASES

REPO = Path(__file__).resolve().parents[1]


def _ctx(spark: SparkSession, tmp_path: Path) -> StageContext:
    cfg = load_config(REPO / "conf" / "pipeline.yaml", data_root=str(tmp_path / "data"),
                      lakehouse_root=str(tmp_path / "lake"))
    return StageContext(spark, cfg)


def test_a_live_holder_keeps_a_second_run_out_until_it_releases(spark: SparkSession,
                                                                 tmp_path: Path) -> None:
    from udp_spark.pipeline.run import LEASE_NAME, RunOptions, run_pipeline

    ctx = _ctx(spark, tmp_path)
    first = Lease(spark, ctx.lakehouse, LEASE_NAME, holder="run-A")
    first.acquire()
    # a whole `udp run` is refused before it touches anything
    with pytest.raises(LeaseHeld, match="held by run-A"):
        run_pipeline(ctx, RunOptions(wait_seconds=0))
    assert not io.table_exists(spark, ctx.lakehouse.ref(("audit", "runs")))
    second = Lease(spark, ctx.lakehouse, LEASE_NAME, holder="run-B")
    with pytest.raises(LeaseHeld):
        second.acquire(wait_seconds=0.5, poll_seconds=0.2)
    first.renew()
    first.release()
    second.acquire()  # free now
    with pytest.raises(LeaseHeld, match="held by run-B"):
        first.renew()  # a holder that lost its lease learns it before writing
    second.release()


def test_a_dead_or_expired_holder_does_not_block(spark: SparkSession, tmp_path: Path) -> None:
    ctx = _ctx(spark, tmp_path)
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True)
    gone = Lease(spark, ctx.lakehouse, "pipeline", holder="run-dead")
    gone.pid = int(dead.stdout)  # a process of this host that has exited (a kill -9'd run)
    gone.acquire()
    taker = Lease(spark, ctx.lakehouse, "pipeline", holder="run-next")
    taker.acquire()  # at once, without waiting for the expiry
    taker.release()

    other_host = Lease(spark, ctx.lakehouse, "pipeline", holder="run-far", ttl_seconds=1)
    other_host.host = "another-machine"  # its pid cannot be checked from here
    other_host.acquire()
    late = Lease(spark, ctx.lakehouse, "pipeline", holder="run-late")
    ref = ctx.lakehouse.ref(AUDIT_LEASES)
    expires = io.read_table(spark, ref).filter(F.col("holder") == "run-far").first()
    assert expires is not None
    assert expires["expires_at"] <= datetime.now(UTC).replace(tzinfo=None) + timedelta(seconds=2)
    late.acquire(wait_seconds=30, poll_seconds=0.5)  # once the 1 s ttl has passed
    assert io.read_table(spark, ref).filter(F.col("name") == "pipeline").select(
        "holder").collect()[0][0] == "run-late"


def test_of_two_racing_runs_exactly_one_gets_the_lease(spark: SparkSession,
                                                       tmp_path: Path) -> None:
    ctx = _ctx(spark, tmp_path)
    seed = Lease(spark, ctx.lakehouse, "pipeline", holder="seed")
    seed.acquire()
    seed.release()  # the table and a free row exist: both racers swap the same row
    outcome: dict[str, str] = {}
    start = threading.Barrier(2)

    def race(holder: str) -> None:
        lease = Lease(spark, ctx.lakehouse, "pipeline", holder=holder)
        start.wait()
        try:
            lease.acquire()
            outcome[holder] = "held"
        except LeaseHeld:
            outcome[holder] = "refused"

    threads = [threading.Thread(target=race, args=(h,)) for h in ("run-X", "run-Y")]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert sorted(outcome.values()) == ["held", "refused"], outcome
    winner = next(h for h, o in outcome.items() if o == "held")
    rows = io.read_table(spark, ctx.lakehouse.ref(AUDIT_LEASES)).collect()
    assert [r["holder"] for r in rows] == [winner]
