"""What every stage runner needs: the session, the config, the lakehouse and the run."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator
from dataclasses import dataclass, field

from pyspark.sql import SparkSession

from udp_spark import audit, progress
from udp_spark.changes import read_watermarks
from udp_spark.config import PipelineConfig
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

    @property
    def lakehouse(self) -> Lakehouse:
        return Lakehouse(self.cfg.lakehouse)


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


def _record(ctx: StageContext, run: audit.RunRecord, status: str, error: str | None) -> None:
    if ctx.buffer is None:
        audit.write_run(ctx.spark, ctx.lakehouse, run, status=status, error=error)
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
    """Run a stage, then append its record to ``audit.runs`` (also when it fails)."""
    run = audit.RunRecord(stage=stage, config_hash=ctx.cfg.config_hash)
    log.info("%s run %s started", stage, run.run_id)  # a long stage never looks hung
    with progress.tracking(ctx.spark, stage) as tracker:
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
