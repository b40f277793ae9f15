"""Retention (``udp retention``): delete what is older than each source's retention and
purge it from earlier versions, like an erasure.

Per source in ``privacy.retention.sources`` (days): its bronze rows landed before the
cut-off and its interactions that occurred before it. The change-driven publish then
recomputes the metrics of the customers whose interactions went. The tables it deleted
from are then purged of earlier versions (``vacuum_retain_hours``); the stages run first, so
none is left with a watermark inside the change data the purge removes.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from pyspark.sql import functions as F

from udp_spark import io
from udp_spark.pipeline.context import StageContext, audited_run
from udp_spark.tables import SILVER_INTERACTIONS

log = logging.getLogger(__name__)


@dataclass
class RetentionReport:
    run_id: str
    rows_removed: dict[str, int] = field(default_factory=dict)  # table -> rows
    files_purged: int = 0


def run_retention(ctx: StageContext, *, now: datetime | None = None) -> RetentionReport:
    """Apply ``privacy.retention`` (see the module doc); publish what it changed."""
    from udp_spark.pipeline.erase import catch_up

    spark, lake, settings = ctx.spark, ctx.lakehouse, ctx.cfg.privacy.retention
    now = now or datetime.now(UTC)
    with audited_run(ctx, "retention") as run, io.commit_metadata(
            spark, {"run_id": run.run_id, "stage": "retention"}):
        report = RetentionReport(run.run_id)
        touched = []
        for name, days in sorted(settings.sources.items()):
            cutoff = now - timedelta(days=days)
            for ref, cond in (
                    (lake.bronze(name), F.col("_ingested_at") < F.lit(cutoff)),
                    (lake.ref(SILVER_INTERACTIONS),
                     (F.col("source") == name) & (F.col("occurred_at") < F.lit(cutoff)))):
                if not io.table_exists(spark, ref) or io.read_table(spark, ref).filter(
                        cond).isEmpty():
                    continue
                n = io.delete_where(spark, ref, cond).metric("numDeletedRows")
                report.rows_removed[str(ref)] = report.rows_removed.get(str(ref), 0) + n
                touched.append(ref)
                log.info("retention: %d rows of %s older than %s (%s: %d days)", n, ref,
                         cutoff.date(), name, days)
        if touched:
            # the stages take the deletes in before the purge removes their change data
            catch_up(ctx)
            for ref in {str(r): r for r in touched}.values():
                report.files_purged += io.vacuum(spark, ref, settings.vacuum_retain_hours)
        run.row_counts.update({f"removed.{t}": n for t, n in report.rows_removed.items()})
        run.row_counts["files_purged"] = report.files_purged
        return report
