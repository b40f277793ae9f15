"""Independent table actions from several threads (io.in_parallel, io.vacuum_all): what
erasure uses to delete from and purge two dozen tables without paying each one's fixed
driver cost in turn."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest
from pyspark.sql import SparkSession
from pyspark.sql import functions as F

from udp_spark import io
from udp_spark.tables import TableRef


def test_in_parallel_keeps_order_runs_every_task_and_raises_the_failure() -> None:
    ran: list[int] = []
    lock = threading.Lock()
    threads: set[str] = set()

    def task(i: int) -> int:
        time.sleep(0.05 * (3 - i % 3))  # finish out of order
        with lock:
            ran.append(i)
            threads.add(threading.current_thread().name)
        if i == 2:
            raise ValueError("table 2 failed")
        return i * i

    assert io.in_parallel([lambda i=i: task(i) for i in (0, 1, 3, 4)], 3) == [0, 1, 9, 16]
    assert len(threads) > 1
    ran.clear()
    with pytest.raises(ValueError, match="table 2 failed"):
        io.in_parallel([lambda i=i: task(i) for i in range(6)], 3)
    assert sorted(ran) == list(range(6))  # the others ran to the end
    assert io.in_parallel([lambda: 7], 1) == [7]


def test_vacuum_all_purges_every_table_and_restores_the_session(
        spark: SparkSession, tmp_path: Path) -> None:
    refs = [TableRef("t", f"t{i}", path=str(tmp_path / f"t{i}")) for i in range(2)]
    for ref in refs:
        io.overwrite(spark.range(100).withColumn("v", F.col("id") * 2), ref)
        io.delta_table(spark, ref).delete("id < 50")  # the old file is now unreferenced
    check = "spark.databricks.delta.retentionDurationCheck.enabled"
    before = spark.conf.get(check, None)
    purged = io.vacuum_all(spark, refs, 0.0, purge_deletion_vectors=True, workers=2)
    assert set(purged) == {str(r) for r in refs}
    assert all(n >= 1 for n in purged.values()), purged
    assert spark.conf.get(check, None) == before
    for ref in refs:  # what is left reads whole
        assert io.read_table(spark, ref).count() == 50
