"""Lineage breaks and model files the way a cluster needs them: reliable checkpoints in the
configured directory, and Spark ML models through a folder every executor reaches."""

from __future__ import annotations

from pathlib import Path

import pytest
from pyspark.sql import SparkSession

from udp_spark import io
from udp_spark.config import load_config
from udp_spark.pipeline.context import StageContext, checkpoint_dir

REPO = Path(__file__).resolve().parents[1]


def test_reliable_checkpoints_write_files_and_local_mode_stays_local(
        spark: SparkSession, tmp_path: Path) -> None:
    cfg = load_config(REPO / "conf" / "pipeline.yaml", data_root=str(tmp_path),
                      lakehouse_root=str(tmp_path / "lake"))
    assert checkpoint_dir(cfg) == f"{tmp_path / 'lake'}/_checkpoints/spark"
    StageContext(spark, cfg)  # auto in local mode: local lineage breaks
    assert spark.conf.get(io.CHECKPOINT_MODE_CONF) == "local"
    chk = Path(spark.sparkContext.getCheckpointDir().removeprefix("file:"))  # type: ignore[union-attr]
    before = {p for p in chk.rglob("*") if p.is_file()}
    df = spark.range(50).selectExpr("id", "id * 2 as twice")
    assert io.checkpoint(df).count() == 50
    assert {p for p in chk.rglob("*") if p.is_file()} == before  # nothing written

    StageContext(spark, cfg.model_copy(update={"checkpoint_mode": "reliable"}))
    try:
        assert spark.conf.get(io.CHECKPOINT_MODE_CONF) == "reliable"
        out = io.checkpoint(df.filter("id % 5 = 0"))
        assert sorted(r["twice"] for r in out.collect()) == list(range(0, 100, 10))
        written = {p for p in chk.rglob("*") if p.is_file()} - before
        assert written, "a reliable checkpoint writes its partitions as files"
    finally:
        StageContext(spark, cfg)
    assert spark.conf.get(io.CHECKPOINT_MODE_CONF) == "local"


def test_model_folders_go_through_any_hadoop_file_system(spark: SparkSession,
                                                         tmp_path: Path) -> None:
    from pyspark.ml import Pipeline, PipelineModel
    from pyspark.ml.classification import LogisticRegression
    from pyspark.ml.feature import VectorAssembler

    from udp_spark.platform.mlflow_store import _load_spark_model, _save_spark_model

    train = spark.createDataFrame([(float(x), float(x > 3)) for x in range(8)],
                                  "x double, y double")
    model = Pipeline(stages=[VectorAssembler(inputCols=["x"], outputCol="f"),
                             LogisticRegression(featuresCol="f", labelCol="y")]).fit(train)
    dfs = f"file://{tmp_path / 'dfs'}"
    local = tmp_path / "local" / "spark_pipeline"
    _save_spark_model(model, local, dfs)
    assert (local / "metadata").is_dir() and (local / "stages").is_dir()
    assert not any((tmp_path / "dfs").iterdir())  # the staging copy is gone
    back = _load_spark_model(local, dfs)
    assert isinstance(back, PipelineModel)
    assert not any((tmp_path / "dfs").iterdir())
    want = [r["prediction"] for r in model.transform(train).collect()]
    assert [r["prediction"] for r in back.transform(train).collect()] == want
    with pytest.raises(Exception, match=r"FileNotFound|does not exist"):
        io.copy_to_local(spark, f"file://{tmp_path / 'nothing'}", str(tmp_path / "x"))
