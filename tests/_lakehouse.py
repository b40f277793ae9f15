"""A lakehouse for end-to-end tests: the shipped config pointed at a temporary folder, and
every batch stage run once (the same order `udp run` uses)."""

from __future__ import annotations

from datetime import date
from pathlib import Path

from udp_spark.config import PipelineConfig, load_config
from udp_spark.pipeline.context import StageContext

REPO = Path(__file__).resolve().parents[1]


def lakehouse_config(base: Path, *, as_of: date, checkpoint_dir: Path | None = None
                ) -> PipelineConfig:
    """``conf/pipeline.yaml`` with data in ``base/data``, tables in ``base/lake``, MLflow in
    ``base/mlflow.db`` and metrics fixed at ``as_of`` (recency must not move with the day
    the test runs)."""
    cfg = load_config(REPO / "conf" / "pipeline.yaml", data_root=str(base / "data"),
                      lakehouse_root=str(base / "lake"))
    return cfg.model_copy(update={
        "mlflow": cfg.mlflow.model_copy(update={
            "tracking_uri": f"sqlite:///{base / 'mlflow.db'}"}),
        "checkpoint_dir": str(checkpoint_dir or base / "checkpoints"),
        "publish": cfg.publish.model_copy(update={"metrics": cfg.publish.metrics.model_copy(
            update={"as_of": as_of})}),
    })


def batch_run(ctx: StageContext) -> None:
    """ingest, standardize, block, train, score, resolve, publish."""
    from udp_spark.pipeline.block import run_block
    from udp_spark.pipeline.ingest import run_ingest
    from udp_spark.pipeline.publish import run_publish
    from udp_spark.pipeline.resolve import run_resolve
    from udp_spark.pipeline.score import run_score
    from udp_spark.pipeline.standardize import run_standardize
    from udp_spark.pipeline.train import run_train

    for stage in (run_ingest, run_standardize, run_block, run_train, run_score, run_resolve,
                  run_publish):
        stage(ctx)
