"""Ingest: land every configured source into ``bronze.<source>``, batch by batch."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import UTC, datetime

from udp_spark import io
from udp_spark.config import SourceConfig
from udp_spark.landing import expected_columns, to_bronze
from udp_spark.pipeline.context import StageContext, audited_run

log = logging.getLogger(__name__)


@dataclass
class SourceIngest:
    source: str
    batches_seen: int
    batches_new: int
    rows_written: int
    version: int | None
    missing_columns: list[str] = field(default_factory=list)
    rescued_columns: list[str] = field(default_factory=list)


@dataclass
class IngestReport:
    run_id: str
    sources: list[SourceIngest]

    @property
    def rows_written(self) -> int:
        return sum(s.rows_written for s in self.sources)


def _ingest_source(ctx: StageContext, source: SourceConfig, run_id: str,
                   batch_id: str | None) -> SourceIngest:
    spark, cfg = ctx.spark, ctx.cfg
    target = ctx.lakehouse.bronze(source.name)
    landed: set[str] = set()
    if io.table_exists(spark, target):
        landed = {r[0] for r in io.read_table(spark, target).select("_batch_id").distinct()
                  .collect()}  # one id per landed file: small
    if source.format in ("csv", "json", "parquet"):
        files = io.list_source_files(spark, cfg, source)
        if batch_id:
            files = [(p, f"{batch_id}:{b}") for p, b in files]
        new_files = [(p, b) for p, b in files if b not in landed]
        seen = len(files)
        if not new_files:
            log.info("bronze.%s: %d files, all landed already", source.name, seen)
            return SourceIngest(source.name, seen, 0, 0, None)
        raw = io.read_source_files(spark, source, new_files)
        n_new = len(new_files)
    else:
        if batch_id is None:
            batch_id = (f"v{io.delta_source_version(spark, source)}" if source.format == "delta"
                        else datetime.now(UTC).strftime("%Y-%m-%d"))
        seen = 1
        if batch_id in landed:
            return SourceIngest(source.name, 1, 0, 0, None)
        raw = io.read_source_table(spark, source, batch_id)
        n_new = 1
    _, extra, missing = expected_columns(source, raw.columns)
    if missing:
        log.warning("source %s: expected columns missing from input (kept as null): %s",
                    source.name, missing)
    bronze = raw.transform(to_bronze(source, run_id=run_id, ingested_at=datetime.now(UTC)))
    result = io.append_new_batches(bronze, target, known_batches=sorted(landed))
    return SourceIngest(source.name, seen, n_new, result.metric("numOutputRows"),
                        result.version, missing, extra)


def run_ingest(ctx: StageContext, sources: list[str] | None = None,
               batch_id: str | None = None) -> IngestReport:
    """Land the named sources (default: all) into bronze; already landed batches are skipped.

    A batch is one file (identified by path, size and modification time) for file sources,
    the table version for Delta sources, and ``batch_id`` (default: today's UTC date) for
    JDBC sources. Each source is one atomic Delta append.
    """
    names = sources or sorted(ctx.cfg.sources)
    unknown = [n for n in names if n not in ctx.cfg.sources]
    if unknown:
        raise ValueError(f"unknown source(s) {unknown}; configured: {sorted(ctx.cfg.sources)}")
    with audited_run(ctx, "ingest") as run, io.commit_metadata(
            ctx.spark, {"run_id": run.run_id, "stage": "ingest"}):
        results = []
        for name in names:
            res = _ingest_source(ctx, ctx.cfg.sources[name], run.run_id, batch_id)
            results.append(res)
            run.row_counts[f"bronze.{name}"] = res.rows_written
            if res.version is not None:
                run.output_versions[f"bronze.{name}"] = res.version
        return IngestReport(run.run_id, results)
