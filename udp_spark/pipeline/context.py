"""What every stage runner needs: the session, the config, the lakehouse and the run."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator
from dataclasses import dataclass, field

from pyspark.sql import SparkSession

from udp_spark import audit, io, progress
from udp_spark.changes import read_watermarks
from udp_spark.config import PipelineConfig, local_path
from udp_spark.faults import crash_point
from udp_spark.tables import Lakehouse

log = logging.getLogger(__name__)


@dataclass
class RunBuffer:
    """State a long-running driver (``udp stream``) keeps between its stage runs.

    ``pending``: audit rows held until :func:`flush_audit` writes them in one commit (at
    the end of a micro-batch: six small commits less per micro-batch); ``watermarks``: each
    stage's watermarks as its last run left them, so they are not read back from
    ``audit.runs`` every time. Valid while this driver is the lakehouse's only writer. A
    driver killed before it flushes leaves its watermarks where they were: the stages redo
    those changes on restart, and their writes are no-ops the second time.
    """

    pending: list[tuple[audit.RunRecord, str, str | None]] = field(default_factory=list)
    watermarks: dict[str, dict[str, tuple[int, str]]] = field(default_factory=dict)


@dataclass(frozen=True)
class StageContext:
    spark: SparkSession
    cfg: PipelineConfig
    buffer: RunBuffer | None = None

    def __post_init__(self) -> None:
        configure_checkpoints(self.spark, self.cfg)

    @property
    def lakehouse(self) -> Lakehouse:
        return Lakehouse(self.cfg.lakehouse)


def checkpoint_dir(cfg: PipelineConfig) -> str:
    """``checkpoint_dir``, default ``<lakehouse root>/_checkpoints/spark``."""
    return cfg.checkpoint_dir or f"{cfg.lakehouse.root.rstrip('/')}/_checkpoints/spark"


def lakehouse_identity(cfg: PipelineConfig) -> str:
    """Which lakehouse a matcher is fitted for: its catalog and root (a local root as an
    absolute path), recorded with every registered model version."""
    root = str(local_path(cfg.lakehouse.root) or cfg.lakehouse.root)
    return f"{cfg.lakehouse.catalog}:{root}" if cfg.lakehouse.catalog else root


def mlflow_dfs_tmpdir(cfg: PipelineConfig) -> str:
    """``mlflow.dfs_tmpdir``, default ``<lakehouse root>/_tmp/mlflow``."""
    return cfg.mlflow.dfs_tmpdir or f"{cfg.lakehouse.root.rstrip('/')}/_tmp/mlflow"


def configure_checkpoints(spark: SparkSession, cfg: PipelineConfig) -> None:
    """Point the session at the configured checkpoint directory (unless it has one) and
    choose how :func:`udp_spark.io.checkpoint` breaks lineage: reliably on a cluster,
    locally in local mode (``checkpoint_mode: auto``)."""
    try:
        sc = spark.sparkContext
    except Exception:  # Spark Connect: no SparkContext; the server decides
        return
    mode = cfg.checkpoint_mode
    if mode == "auto":
        mode = "local" if (sc.master or "").startswith("local") else "reliable"
    if not sc.getCheckpointDir():  # GraphFrames needs one whatever the mode
        sc.setCheckpointDir(checkpoint_dir(cfg))
        log.info("checkpoint directory %s (%s lineage breaks)", sc.getCheckpointDir(), mode)
    spark.conf.set(io.CHECKPOINT_MODE_CONF, mode)


def stage_watermarks(ctx: StageContext, stage: str) -> dict[str, tuple[int, str]]:
    """The watermarks of ``stage``'s latest succeeded run (see :mod:`udp_spark.changes`)."""
    if ctx.buffer is not None and stage in ctx.buffer.watermarks:
        return dict(ctx.buffer.watermarks[stage])
    marks = read_watermarks(ctx.spark, ctx.lakehouse, stage)
    if ctx.buffer is not None:
        ctx.buffer.watermarks[stage] = dict(marks)
    return marks


def flush_audit(ctx: StageContext) -> None:
    """Write the audit rows ``ctx.buffer`` holds (one commit)."""
    if ctx.buffer is None or not ctx.buffer.pending:
        return
    audit.write_runs(ctx.spark, ctx.lakehouse, ctx.buffer.pending)
    ctx.buffer.pending.clear()
    crash_point("stream:after_audit_runs")


def _record(ctx: StageContext, run: audit.RunRecord, status: str, error: str | None) -> None:
    if ctx.buffer is None:
        audit.write_run(ctx.spark, ctx.lakehouse, run, status=status, error=error)
        if status == "succeeded":
            crash_point(f"{run.stage}:after_audit_runs")
        return
    ctx.buffer.pending.append((run, status, error))
    if status == "succeeded" and run.watermarks is not None:
        params = run.watermark_params or {}
        ctx.buffer.watermarks[run.stage] = {t: (v, params.get(t, ""))
                                            for t, v in run.watermarks.items()}
    if status != "succeeded":
        flush_audit(ctx)


@contextlib.contextmanager
def audited_run(ctx: StageContext, stage: str) -> Iterator[audit.RunRecord]:
    """Run a stage, then append its record to ``audit.runs`` (also when it fails).

    The blocks the stage persisted (its checkpoints) are released when it ends
    (:func:`udp_spark.io.released_blocks`), so a process running stage after stage holds
    only the current stage's. The stage's SQL settings (``spark.stage_conf``) hold for the
    run and are restored after it."""
    run = audit.RunRecord(stage=stage, config_hash=ctx.cfg.config_hash)
    log.info("%s run %s started", stage, run.run_id)  # a long stage never looks hung
    stage_conf = ctx.cfg.spark.stage_conf.get(stage, {})
    with io.released_blocks(ctx.spark), io.session_conf(ctx.spark, stage_conf), \
            progress.tracking(ctx.spark, stage) as tracker:
        try:
            yield run
        except BaseException as exc:
            run.metrics.update(tracker.metrics())
            with contextlib.suppress(Exception):
                _record(ctx, run, "failed", repr(exc))
            raise
        run.metrics.update(tracker.metrics())
        _record(ctx, run, "succeeded", None)
    log.info("%s run %s finished in %.1fs (%d Spark jobs)", stage, run.run_id,
             run.metrics["seconds"], run.metrics["spark_jobs"])


def notebook_context(spark: SparkSession, widgets: object) -> StageContext:
    """The stage context a notebook builds from its ``config``, ``data_root`` and
    ``lakehouse`` widgets (``dbutils.widgets``; empty means the config's own value)."""
    from udp_spark.config import load_config

    def get(name: str) -> str:
        try:
            return str(widgets.get(name))  # type: ignore[attr-defined]
        except Exception:  # a notebook without that widget
            return ""

    cfg = load_config(get("config") or "conf/pipeline.yaml", data_root=get("data_root") or None,
                      lakehouse_root=get("lakehouse") or None)
    return StageContext(spark, cfg)
