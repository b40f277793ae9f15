"""What every stage runner needs: the session, the config, the lakehouse and the run."""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Iterator
from dataclasses import dataclass

from pyspark.sql import SparkSession

from udp_spark import audit
from udp_spark.config import PipelineConfig
from udp_spark.tables import Lakehouse

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class StageContext:
    spark: SparkSession
    cfg: PipelineConfig

    @property
    def lakehouse(self) -> Lakehouse:
        return Lakehouse(self.cfg.lakehouse)


@contextlib.contextmanager
def audited_run(ctx: StageContext, stage: str) -> Iterator[audit.RunRecord]:
    """Run a stage, then append its record to ``audit.runs`` (also when it fails)."""
    run = audit.RunRecord(stage=stage, config_hash=ctx.cfg.config_hash)
    t0 = time.perf_counter()
    log.info("%s run %s started", stage, run.run_id)  # a long stage never looks hung
    try:
        yield run
    except BaseException as exc:
        run.metrics["seconds"] = time.perf_counter() - t0
        with contextlib.suppress(Exception):
            audit.write_run(ctx.spark, ctx.lakehouse, run, status="failed", error=repr(exc))
        raise
    run.metrics["seconds"] = time.perf_counter() - t0
    audit.write_run(ctx.spark, ctx.lakehouse, run)
    log.info("%s run %s finished in %.1fs", stage, run.run_id, run.metrics["seconds"])
