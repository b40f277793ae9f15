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


def test_released_blocks_frees_what_was_persisted_inside_and_keeps_the_rest(
        spark: SparkSession) -> None:
    """A stage's checkpoints are freed when it ends (audited_run wraps every stage in
    io.released_blocks): a long process does not hold every earlier stage's blocks."""
    outside = spark.range(50).withColumn("x", F.col("id") * 2).localCheckpoint(eager=True)
    held = io.persisted_rdd_ids(spark)
    with io.released_blocks(spark):
        inside = io.checkpoint(spark.range(100).withColumn("y", F.col("id") + 1))
        cached = spark.range(10).cache()
        assert cached.count() == 10 and inside.count() == 100
        assert len(io.persisted_rdd_ids(spark) - held) >= 2
    time.sleep(0.5)  # unpersist is asynchronous on the executors, not in the registry
    # nothing persisted inside is held (Spark's cleaner may free earlier ones meanwhile),
    # and what was persisted before still reads
    assert io.persisted_rdd_ids(spark) <= held
    assert outside.agg(F.sum("x")).first()[0] == 2 * sum(range(50))
    with pytest.raises(Exception, match="CHECKPOINT_RDD_BLOCK_ID_NOT_FOUND"):
        inside.agg(F.sum("y")).first()


@pytest.mark.parametrize(("dv", "limit", "operation", "prefilter"), [
    (True, None, "DELETE", True), (True, None, "DELETE", False), (True, 1, "MERGE", False),
    (False, None, "MERGE", False)])
def test_merge_delete_removes_the_keys_nulls_included_and_logs_no_value(
        spark: SparkSession, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        dv: bool, limit: int | None, operation: str, prefilter: bool) -> None:
    """Erasure deletes through merge_delete: the rows whose keys match go (a null key
    matches a null), in every file, nothing else does, the change feed has them, and the
    commit log holds none of the deleted values. A DELETE on a table with deletion vectors
    (with the native pre-filter on the keys' hash buckets, and without it: more keys than
    it takes), a MERGE with more keys than the DELETE takes or without deletion vectors."""
    if limit is not None:
        monkeypatch.setattr(io, "DELETE_BY_KEYS_MAX", limit)
    if not prefilter:
        monkeypatch.setattr(io, "KEY_PREFILTER_MAX_KEYS", 1)
    ref = TableRef("t", "keyed", path=str(tmp_path / "keyed"))
    rows = [("zebulon-a", "1", 1), ("zebulon-a", None, 2), ("other", "1", 3),
            ("zebulon-b", "2", 4), ("keep", "2", 5)]
    rows += [(f"zebulon-{i}", str(i % 3), 10 + i) for i in range(40)]  # spread over files
    rows += [(f"bystander-{i}", "0", 100 + i) for i in range(400)]
    df = spark.createDataFrame(rows, "a string, b string, v int").repartition(4)
    io.overwrite(df, ref)
    assert len(list((tmp_path / "keyed").glob("*.parquet"))) == 4
    spark.sql(f"ALTER TABLE delta.`{ref.path}` SET TBLPROPERTIES (delta.enableChangeDataFeed"
              f" = true, delta.enableDeletionVectors = {str(dv).lower()})")
    keys = spark.createDataFrame([("zebulon-a", None), ("zebulon-b", "2"), ("zebulon-b", "2"),
                                  ("absent", "9"), *[(f"zebulon-{i}", str(i % 3))
                                                     for i in range(40)]],
                                 "a string, b string")
    res = io.merge_delete(keys, ref, ["a", "b"])
    assert (res.operation, res.metric("numTargetRowsDeleted")) == (operation, 42)
    left = io.read_table(spark, ref)
    # ("zebulon-a", "1") is not a key: a null matches only a null
    assert [r["v"] for r in left.filter(F.col("a").startswith("zebulon")).collect()] == [1]
    assert left.count() == len(rows) - 42
    assert sorted(r["v"] for r in left.filter(F.col("v") < 10).collect()) == [1, 3, 5]
    feed = (spark.read.format("delta").option("readChangeFeed", "true")
            .option("startingVersion", res.version).load(ref.path))
    assert sorted(r["v"] for r in feed.collect() if r["_change_type"] == "delete") == [
        2, 4, *range(10, 50)]
    log_text = "".join(p.read_text() for p in (tmp_path / "keyed" / "_delta_log").glob("*.json"))
    assert "zebulon" not in log_text.lower()
    # the pre-filter is in the DELETE's predicate exactly when it was used
    assert ("xxhash64" in log_text) == prefilter
    # keys that match nothing: no commit
    again = io.merge_delete(keys, ref, ["a", "b"])
    assert again.metric("numTargetRowsDeleted") == 0 and again.version is None


def test_replace_by_keys_deletes_then_appends_where_the_table_has_deletion_vectors(
        spark: SparkSession, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A change set as a DELETE of its keys and an append of its upserts: the table ends as
    a MERGE would leave it, the crash point runs between the two commits, and a table
    without deletion vectors (or too many keys) is left to the caller's MERGE."""
    schema = "k string, v int"
    start = [(f"k{i}", i) for i in range(30)]
    changes = spark.createDataFrame(
        [("k1", 100, "upsert"), ("k2", 200, "upsert"), ("new", 7, "upsert"),
         ("k3", None, "delete"), ("k4", None, "delete")], "k string, v int, _action string")
    expected = sorted([(k, v) for k, v in start if k not in ("k1", "k2", "k3", "k4")]
                      + [("k1", 100), ("k2", 200), ("new", 7)])
    plain = TableRef("t", "plain", path=str(tmp_path / "plain"))
    io.overwrite(spark.createDataFrame(start, schema).repartition(3), plain)
    assert io.replace_by_keys(changes, plain, ["k"], ["k", "v"]) is None
    assert io.read_table(spark, plain).count() == 30  # untouched: the caller MERGEs

    ref = TableRef("t", "dv", path=str(tmp_path / "dv"))
    io.overwrite(spark.createDataFrame(start, schema).repartition(3), ref)
    spark.sql(f"ALTER TABLE delta.`{ref.path}` SET TBLPROPERTIES (delta.enableChangeDataFeed"
              " = true, delta.enableDeletionVectors = true)")
    seen: list[int] = []
    monkeypatch.setattr(io, "DELETE_BY_KEYS_MAX", 4)
    assert io.replace_by_keys(changes, ref, ["k"], ["k", "v"]) is None  # 5 keys
    monkeypatch.setattr(io, "DELETE_BY_KEYS_MAX", 5)
    res = io.replace_by_keys(
        changes, ref, ["k"], ["k", "v"],
        between=lambda: seen.append(io.read_table(spark, ref).count()))
    assert res is not None and seen == [26]  # between: the five keys' rows gone
    assert (res.metric("numTargetRowsInserted"), res.metric("numTargetRowsDeleted"),
            res.metric("numRowsDeleted")) == (3, 2, 4)
    assert sorted((r["k"], r["v"]) for r in io.read_table(spark, ref).collect()) == expected
    feed = (spark.read.format("delta").option("readChangeFeed", "true")
            .option("startingVersion", res.version - 1).load(ref.path))
    assert sorted((r["k"], r["_change_type"]) for r in feed.collect()) == sorted(
        [("k1", "delete"), ("k2", "delete"), ("k3", "delete"), ("k4", "delete"),
         ("k1", "insert"), ("k2", "insert"), ("new", "insert")])
