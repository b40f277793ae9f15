"""The audit trail: one ``audit.runs`` row per job run.

Run id, stage, config hash, code version, input and output table versions, row counts,
metrics and the MLflow run id, so any value can be traced to the run that produced it.
"""

from __future__ import annotations

import functools
import subprocess
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from pyspark.sql import SparkSession
from pyspark.sql import types as T

import udp_spark
from udp_spark import io
from udp_spark.tables import AUDIT_RUNS, Lakehouse

RUNS_SCHEMA = T.StructType([
    T.StructField("run_id", T.StringType(), False),
    T.StructField("stage", T.StringType(), False),
    T.StructField("status", T.StringType(), False),
    T.StructField("started_at", T.TimestampType(), False),
    T.StructField("finished_at", T.TimestampType(), True),
    T.StructField("config_hash", T.StringType(), True),
    T.StructField("code_version", T.StringType(), True),
    T.StructField("input_versions", T.MapType(T.StringType(), T.LongType()), True),
    T.StructField("output_versions", T.MapType(T.StringType(), T.LongType()), True),
    T.StructField("row_counts", T.MapType(T.StringType(), T.LongType()), True),
    T.StructField("metrics", T.MapType(T.StringType(), T.DoubleType()), True),
    T.StructField("mlflow_run_id", T.StringType(), True),
    T.StructField("error", T.StringType(), True),
    # change-driven stages: input table -> version processed, and the settings fingerprint
    T.StructField("watermarks", T.MapType(T.StringType(), T.LongType()), True),
    T.StructField("watermark_params", T.MapType(T.StringType(), T.StringType()), True),
])


def new_run_id(stage: str) -> str:
    """A sortable, unique run id: ``<stage>-<UTC timestamp>-<random>``."""
    return f"{stage}-{datetime.now(UTC):%Y%m%dT%H%M%S}-{uuid.uuid4().hex[:8]}"


@functools.cache
def code_version() -> str:
    """Package version plus the git commit when running from a checkout."""
    version = udp_spark.__version__
    try:
        sha = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True,
                             text=True, timeout=5, cwd=Path(udp_spark.__file__).parent)
        if sha.returncode == 0 and sha.stdout.strip():
            version += f"+{sha.stdout.strip()}"
    except OSError:
        pass
    return version


@dataclass
class RunRecord:
    """Collects what a run did; :func:`write_run` appends it to ``audit.runs``."""

    stage: str
    config_hash: str
    run_id: str = ""
    started_at: datetime = field(default_factory=lambda: datetime.now(UTC))
    input_versions: dict[str, int] = field(default_factory=dict)
    output_versions: dict[str, int] = field(default_factory=dict)
    row_counts: dict[str, int] = field(default_factory=dict)
    metrics: dict[str, float] = field(default_factory=dict)
    mlflow_run_id: str | None = None
    watermarks: dict[str, int] | None = None  # see udp_spark.changes
    watermark_params: dict[str, str] | None = None

    def __post_init__(self) -> None:
        if not self.run_id:
            self.run_id = new_run_id(self.stage)


def _row(run: RunRecord, status: str, error: str | None) -> tuple[object, ...]:
    return (run.run_id, run.stage, status, run.started_at.replace(tzinfo=None),
            datetime.now(UTC).replace(tzinfo=None), run.config_hash, code_version(),
            run.input_versions, run.output_versions, run.row_counts,
            {k: float(v) for k, v in run.metrics.items()}, run.mlflow_run_id,
            (error or "")[:4000] or None, run.watermarks, run.watermark_params)


def write_runs(spark: SparkSession, lakehouse: Lakehouse,
               runs: list[tuple[RunRecord, str, str | None]]) -> None:
    """Append ``(run, status, error)`` rows to ``audit.runs`` in one small Delta commit."""
    df = spark.createDataFrame([_row(*r) for r in runs], RUNS_SCHEMA)
    io.append_new_batches(df, lakehouse.ref(AUDIT_RUNS), batch_col="run_id", known_batches=())


def write_run(spark: SparkSession, lakehouse: Lakehouse, run: RunRecord, *,
              status: str = "succeeded", error: str | None = None) -> None:
    """Append the run to ``audit.runs`` (one small Delta commit)."""
    write_runs(spark, lakehouse, [(run, status, error)])
