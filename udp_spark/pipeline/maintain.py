"""The maintain stage: compact and vacuum every table of the lakehouse (the nightly job).

OPTIMIZE rewrites each table's small files into fewer large ones (the stream and the
change-driven stages append many small commits); VACUUM then deletes the files no version
inside ``maintenance.vacuum_retain_hours`` still reads. Time travel reaches back that far
and no further: keep it at least as long as the longest-running reader.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from udp_spark import io, tables
from udp_spark.faults import crash_point
from udp_spark.pipeline.context import StageContext, audited_run
from udp_spark.tables import TableRef

log = logging.getLogger(__name__)


@dataclass
class MaintainReport:
    run_id: str
    tables: int = 0
    files_compacted: int = 0


def lakehouse_tables(ctx: StageContext) -> list[TableRef]:
    """Every table the pipeline writes that exists: bronze per source, then the rest."""
    lake = ctx.lakehouse
    refs = [lake.bronze(n) for n in sorted(ctx.cfg.sources)]
    refs += [lake.ref(v) for k, v in sorted(vars(tables).items())
             if k.isupper() and isinstance(v, tuple) and len(v) == 2]
    return [r for r in refs if io.table_exists(ctx.spark, r)]


def _vacuum(ctx: StageContext, ref: TableRef, hours: float) -> None:
    """VACUUM; below Delta's 7-day safety floor only because the config says so."""
    if hours < 168:
        log.warning("%s: vacuum keeps only %s h of history (below Delta's 168 h default)",
                    ref, hours)
    io.vacuum(ctx.spark, ref, hours)


def run_maintain(ctx: StageContext) -> MaintainReport:
    """OPTIMIZE and VACUUM every existing table; one audit row with the counts."""
    settings = ctx.cfg.maintenance
    with audited_run(ctx, "maintain") as run:
        report = MaintainReport(run.run_id)
        for ref in lakehouse_tables(ctx):
            table = io.delta_table(ctx.spark, ref)
            if settings.optimize:
                m = table.optimize().executeCompaction().select("metrics").first()
                removed = int(m[0]["numFilesRemoved"]) if m is not None else 0
                report.files_compacted += removed
                crash_point("maintain:after_optimize")  # once per table (name#n)
            _vacuum(ctx, ref, settings.vacuum_retain_hours)
            crash_point("maintain:after_vacuum")
            report.tables += 1
            log.info("%s: compacted and vacuumed (retain %s h)", ref,
                     settings.vacuum_retain_hours)
        run.row_counts["tables"] = report.tables
        run.row_counts["files_compacted"] = report.files_compacted
        return report
