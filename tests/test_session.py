"""The session factory's process-wide settings."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date
from pathlib import Path

import pytest
from _lakehouse import REPO, lakehouse_config
from pyspark.sql import SparkSession
from pyspark.sql import functions as F
from pyspark.sql.functions import builtin

from udp_spark.config import INTERPRETED_EXPRESSIONS, SparkProfile, load_config
from udp_spark.pipeline.context import StageContext, audited_run
from udp_spark.session import cache_jvm_function_lookups


@contextmanager
def _round_trips(spark: SparkSession) -> Iterator[list[int]]:
    """Count the py4j commands sent to the JVM inside the block."""
    client = spark.sparkContext._gateway._gateway_client  # type: ignore[union-attr]
    send = client.send_command
    calls = [0]

    def counting(*args: object, **kwargs: object) -> object:
        calls[0] += 1
        return send(*args, **kwargs)

    client.send_command = counting
    try:
        yield calls
    finally:
        del client.send_command  # back to the class's method


def test_column_functions_cost_one_round_trip_once_looked_up(spark: SparkSession) -> None:
    assert cache_jvm_function_lookups()  # the fixture's get_session installed it already
    assert cache_jvm_function_lookups()  # idempotent
    F.regexp_replace(F.col("warm"), "a", "b")  # first use of each name looks it up
    with _round_trips(spark) as calls:
        F.col("x")
    # a lookup of the class and of the member would make it three
    assert calls[0] == 1
    sc = spark.sparkContext
    assert builtin._get_jvm_function("col", sc) is builtin._get_jvm_function("col", sc)
    # the cached handles build the same expressions as before
    df = spark.createDataFrame([("banana",), (None,)], "s string")
    got = df.select(F.regexp_replace(F.col("s"), "a", "o").alias("t"),
                    F.when(F.col("s").isNull(), F.lit("none")).alias("u")).collect()
    assert [tuple(r) for r in got] == [("bonono", None), (None, "none")]


def test_stage_settings_hold_for_the_run_and_are_restored(spark: SparkSession,
                                                          tmp_path: Path) -> None:
    """``spark.stage_conf`` is set when a stage's run starts, reaches its plans, and is put
    back when the run ends, failed or not; a key that was not set is unset again."""
    cfg = lakehouse_config(tmp_path, as_of=date(2026, 6, 30))
    cfg = cfg.model_copy(update={"spark": cfg.spark.model_copy(update={"stage_conf": {
        "probe": {"spark.sql.shuffle.partitions": "5", "spark.sql.udp.probe": "on"}}})})
    ctx = StageContext(spark, cfg)
    partitions = str(spark.conf.get("spark.sql.shuffle.partitions"))
    assert partitions != "5" and spark.conf.get("spark.sql.udp.probe", None) is None

    def shuffle_partitions() -> int:
        return spark.range(20).repartition("id").rdd.getNumPartitions()

    with audited_run(ctx, "probe"):
        assert spark.conf.get("spark.sql.udp.probe") == "on"
        assert shuffle_partitions() == 5
        with audited_run(ctx, "other"):  # a stage inside another: its own settings only
            assert shuffle_partitions() == 5
    assert spark.conf.get("spark.sql.shuffle.partitions") == partitions
    assert spark.conf.get("spark.sql.udp.probe", None) is None
    assert shuffle_partitions() == int(partitions)
    with pytest.raises(RuntimeError, match="stage failed"), audited_run(ctx, "probe"):
        raise RuntimeError("stage failed")
    assert spark.conf.get("spark.sql.shuffle.partitions") == partitions
    assert spark.conf.get("spark.sql.udp.probe", None) is None
    runs = spark.read.format("delta").load(str(tmp_path / "lake" / "audit" / "runs"))
    assert sorted(r["status"] for r in runs.filter("stage = 'probe'").collect()) == [
        "failed", "succeeded"]


def test_shipped_stage_settings_interpret_standardize_and_compile_block() -> None:
    """The measured choice (docs/bench.md): standardize's expressions are interpreted, block's
    and score's compiled; a YAML ``stage_conf`` replaces the default whole."""
    cfg = load_config(REPO / "conf" / "pipeline.yaml")
    assert cfg.spark.stage_conf["standardize"] == INTERPRETED_EXPRESSIONS
    assert "block" not in cfg.spark.stage_conf and "score" not in cfg.spark.stage_conf
    assert SparkProfile.model_validate({"stage_conf": {}}).stage_conf == {}
    only = SparkProfile.model_validate({"stage_conf": {"block": INTERPRETED_EXPRESSIONS}})
    assert list(only.stage_conf) == ["block"]


def test_local_tables_are_written_in_row_groups_and_files_two_cores_can_share(
        spark: SparkSession, tmp_path: Path) -> None:
    """A Parquet file is read by one task per row group, and OPTIMIZE packs files into one
    task's output each: a locally built session writes row groups of at most 16 MB and
    compacts into files of at most 32 MB, so a table of a few hundred MB is never one file
    of one row group read and rewritten on one core."""
    import pyarrow.parquet as pq

    from udp_spark.session import LOCAL_DEFAULTS

    assert spark.sparkContext.getConf().get("spark.hadoop.parquet.block.size") == \
        LOCAL_DEFAULTS["spark.hadoop.parquet.block.size"]
    assert int(spark.conf.get("spark.databricks.delta.optimize.maxFileSize")) == 32 * 2**20
    # about 45 MB of incompressible text in one file
    rows = spark.range(200_000).select(
        F.sha2(F.col("id").cast("string"), 512).alias("a"),
        F.sha2(F.concat(F.col("id").cast("string"), F.lit("x")), 512).alias("b"))
    path = tmp_path / "t"
    rows.coalesce(1).write.format("delta").save(str(path))
    (data,) = path.glob("*.parquet")
    meta = pq.ParquetFile(data).metadata
    assert meta.num_row_groups >= 2
    assert max(meta.row_group(i).total_byte_size for i in range(meta.num_row_groups)) <= (
        16 * 2**20 * 1.1)
