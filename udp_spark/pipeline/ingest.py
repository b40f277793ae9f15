"""Ingest: land every configured source into ``bronze.<source>``, batch by batch."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

from pyspark.sql import DataFrame
from pyspark.sql import functions as F
from pyspark.sql import types as T

from udp_spark import io
from udp_spark.config import SourceConfig
from udp_spark.faults import crash_point
from udp_spark.landing import RESCUED_COL, expected_columns, quoted, to_bronze
from udp_spark.pipeline.context import StageContext, audited_run
from udp_spark.privacy.erasure import split_suppressed
from udp_spark.standardize.transforms import MappingError, column_exists, mapped_columns
from udp_spark.tables import PRIVACY_SUPPRESSIONS, SILVER_QUARANTINE

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
    empty_files: list[str] = field(default_factory=list)  # 0 bytes: nothing to land
    # file -> rows holding U+FFFD, the mark of bytes that did not decode (a wrong encoding)
    undecodable_rows: dict[str, int] = field(default_factory=dict)
    rows_suppressed: int = 0  # rows of erased subjects, quarantined without their values
    error: str | None = None  # set when the source failed; nothing of it was landed
    file: str | None = None  # the file the failure points at, when one does

    @property
    def failed(self) -> bool:
        return self.error is not None

    def describe_failure(self) -> str:
        where = f" (file {self.file})" if self.file else ""
        return f"source {self.source!r}{where}: {self.error}"


@dataclass
class IngestReport:
    run_id: str
    sources: list[SourceIngest]

    @property
    def rows_written(self) -> int:
        return sum(s.rows_written for s in self.sources)

    @property
    def failed(self) -> list[SourceIngest]:
        return [s for s in self.sources if s.failed]


class IngestError(io.SourceReadError):
    """Some sources could not be landed; the others were. ``report`` holds every source."""

    def __init__(self, report: IngestReport) -> None:
        self.report = report
        failed = report.failed
        super().__init__(
            f"ingest: {len(failed)} of {len(report.sources)} sources failed (the others were "
            "landed):\n  " + "\n  ".join(s.describe_failure() for s in failed))


def _first_lines(exc: BaseException, limit: int = 600) -> str:
    """The gist of an exception: Spark's JVM errors carry a stack trace after the message."""
    text = str(exc).strip() or type(exc).__name__
    lines = [ln for ln in text.splitlines() if ln.strip() and not ln.lstrip().startswith("at ")]
    gist = " ".join(ln.strip() for ln in lines[:3])
    return gist if len(gist) <= limit else gist[:limit] + "..."


def _file_named_in(text: str, paths: Sequence[str]) -> str | None:
    hits = [p for p in paths if p in text or p.removeprefix("file:") in text]
    return hits[0] if len(hits) == 1 else None


def _ingest_source(ctx: StageContext, source: SourceConfig, run_id: str,
                   batch_id: str | None) -> SourceIngest:
    """Land one source; any failure is returned in the result (named, with its file)."""
    reading: list[str] = []  # the files being landed, to name the one a failure points at
    try:
        return _land_source(ctx, source, run_id, batch_id, reading)
    except Exception as exc:  # one bad source must not stop the others
        error = _first_lines(exc)
        file = reading[0] if len(reading) == 1 else _file_named_in(str(exc), reading)
        log.error("source %s failed%s: %s", source.name, f" (file {file})" if file else "",
                  error)
        return SourceIngest(source.name, len(reading), 0, 0, None, error=error, file=file)


def _landed_batches(ctx: StageContext, source: SourceConfig) -> set[str]:
    """The batch ids already in ``bronze.<source>`` (one per landed file: small)."""
    target = ctx.lakehouse.bronze(source.name)
    if not io.table_exists(ctx.spark, target):
        return set()
    return {r[0] for r in io.read_table(ctx.spark, target).select("_batch_id").distinct()
            .collect()}


def _land_source(ctx: StageContext, source: SourceConfig, run_id: str, batch_id: str | None,
                 reading: list[str]) -> SourceIngest:
    spark, cfg = ctx.spark, ctx.cfg
    empty: list[str] = []
    target = ctx.lakehouse.bronze(source.name)
    landed = _landed_batches(ctx, source)
    if source.format in ("csv", "json", "parquet"):
        empty = io.empty_source_files(spark, cfg, source)
        for path in empty:
            log.warning("source %s: %s is an empty file (0 bytes): nothing landed from it",
                        source.name, path)
        files = io.list_source_files(spark, cfg, source, allow_none=bool(empty))
        if not files:
            return SourceIngest(source.name, 0, 0, 0, None, empty_files=empty)
        if batch_id:
            files = [(p, f"{batch_id}:{b}") for p, b in files]
        new_files = [(p, b) for p, b in files if b not in landed]
        seen = len(files)
        if not new_files:
            log.info("bronze.%s: %d files, all landed already", source.name, seen)
            return SourceIngest(source.name, seen, 0, 0, None, empty_files=empty)
        reading.extend(p for p, _ in new_files)
        headers = None
        if source.format == "csv":
            headers = io.csv_headers(spark, source, [p for p, _ in new_files])
            # Each file is checked against the mapping by its own header (files of one
            # source may differ), so the error names the file that lacks a column.
            for path, header in headers.items():
                _check_mapped_columns(source, header, path)
        raw = io.read_source_files(spark, source, new_files, headers)
        n_new = len(new_files)
    elif source.format == "kafka":
        kafka = io.read_kafka_source(spark, source, sorted(landed))
        if kafka is None:
            log.info("bronze.%s: no new messages on topic %s", source.name, source.topic)
            return SourceIngest(source.name, 0, 0, 0, None)
        raw, n_new = kafka
        seen = n_new
        reading.append(f"kafka topic {source.topic}")
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
    if source.format != "csv":
        _check_mapped_columns(source, raw.schema, reading[0] if reading else "the input")
    if missing:
        log.warning("source %s: expected columns missing from input (kept as null): %s",
                    source.name, missing)
    raw, suppressed = _without_erased(ctx, source, raw, run_id)
    bronze = raw.transform(to_bronze(source, run_id=run_id, ingested_at=datetime.now(UTC)))
    result = io.append_new_batches(bronze, target, known_batches=sorted(landed))
    crash_point("ingest:after_bronze")  # reached once per source landed (name#n)
    undecodable: dict[str, int] = {}
    if source.format in ("csv", "json") and result.metric("numOutputRows"):
        undecodable = _undecodable_rows(source, raw.columns, bronze)
    return SourceIngest(source.name, seen, n_new, result.metric("numOutputRows"),
                        result.version, missing, extra, empty_files=empty,
                        undecodable_rows=undecodable, rows_suppressed=suppressed)


def _without_erased(ctx: StageContext, source: SourceConfig, raw: DataFrame, run_id: str
                    ) -> tuple[DataFrame, int]:
    """Drop the rows of erased subjects (their record id or e-mail on the suppression list)
    before anything lands; each gets a quarantine row that keeps no value (reason
    ``erased subject``). Returns the rows to land and how many were dropped."""
    spark, lake = ctx.spark, ctx.lakehouse
    sup_ref = lake.ref(PRIVACY_SUPPRESSIONS)
    if not io.table_exists(spark, sup_ref):
        return raw, 0
    salt = ctx.cfg.privacy.erasure.suppression_salt
    keep, dropped = split_suppressed(raw, source, io.read_table(spark, sup_ref), salt)
    if dropped is None or dropped.isEmpty():
        return raw, 0
    # the row as read (its landing time left out: quarantine ids stay what they were)
    content = F.to_json(F.struct(*[F.col(quoted(c)) for c in raw.columns
                                   if c != io.LANDED_COL]))
    rows = dropped.select(
        F.sha2(F.concat_ws("|", F.lit(salt), F.col("_batch_id"), content), 256)
        .alias("quarantine_id"), F.lit("ingest").alias("stage"),
        F.lit(source.name).alias("source"), F.lit(None).cast("string").alias("record_id"),
        F.lit(None).cast("string").alias("field"),
        F.lit(None).cast("string").alias("raw_value"),
        F.lit("erased subject").alias("reason"), F.lit("row_rejected").alias("action"),
        F.lit(None).cast("string").alias("raw_row"), "_batch_id", "_file",
        F.lit(None).cast("string").alias("_row_hash"), F.lit(run_id).alias("_run_id"),
        F.current_timestamp().alias("quarantined_at")).dropDuplicates(["quarantine_id"])
    n = rows.count()
    io.merge_upsert(rows, lake.ref(SILVER_QUARANTINE), ["quarantine_id"], insert_only=True)
    crash_point("ingest:after_quarantine")
    log.warning("source %s: %d rows of erased subjects not landed (silver.quarantine, reason "
                "'erased subject')", source.name, n)
    return keep, n


def _undecodable_rows(source: SourceConfig, raw_columns: list[str], landed: DataFrame
                      ) -> dict[str, int]:
    """Rows just landed (``landed``: this run's bronze rows, read again from the new files
    only) holding U+FFFD, per file.

    The reader puts U+FFFD where bytes are not valid in the configured encoding (UTF-8 by
    default): Latin-1 'José' lands as 'Jos\ufffd'. The value is kept as it arrived; the
    warning says to set the source's ``encoding`` option.
    """
    expected, _, _ = expected_columns(source, raw_columns)
    text = F.to_json(F.struct(*[F.col(quoted(c)) for c in expected], F.col(RESCUED_COL),
                              F.col(io.CORRUPT_COL)))
    counts = {r["_file"]: int(r["count"]) for r in landed.filter(
        F.instr(text, "\ufffd") > 0).groupBy("_file").count().collect()}  # one row per file
    encoding = source.options.get("encoding", source.options.get("charset", "UTF-8"))
    for file, n in sorted(counts.items()):
        log.warning("source %s: %d rows of %s hold U+FFFD (bytes not valid %s, e.g. Latin-1 "
                    "text): set options: {encoding: ISO-8859-1} (or the file's encoding) in "
                    "the source's YAML", source.name, n, file, encoding)
    return counts


def _key_column(key: str) -> bool:
    return key == "party.source_key" or (key.startswith("interactions.")
                                         and key.endswith(".key"))


def _check_mapped_columns(source: SourceConfig, columns: T.StructType | Sequence[str],
                          where: str) -> None:
    """Fail the source before any write when the mapping names columns its data lacks.

    CSV headers, Parquet/Delta/JDBC schemas say which columns exist, so any mapped column
    missing is a mistake. JSON has no header: a key absent from every row reads like a null,
    so only the record keys must be there (the other columns are reported as missing).
    """
    schema = columns if isinstance(columns, T.StructType) else T.StructType(
        [T.StructField(c, T.StringType()) for c in columns])
    data_cols = [c for c in schema.fieldNames()
                 if c not in ("_file", "_batch_id", io.CORRUPT_COL, io.LANDED_COL)]
    absent = [(key, col) for key, col in mapped_columns(source)
              if not column_exists(schema, col)]
    if source.format == "json":
        absent = [(key, col) for key, col in absent if _key_column(key)]
    if not absent:
        return
    if source.format == "csv" and len(data_cols) == 1:
        sep = source.options.get("sep", source.options.get("delimiter", ","))
        seen = [d for d in (";", "\t", "|", ",") if d != sep and d in data_cols[0]]
        hint = (f"its header looks separated by {seen[0]!r}: set options: {{sep: "
                f"{seen[0]!r}}}" if seen else "set options.sep to the file's separator")
        raise MappingError(
            f"source {source.name!r}: the header of {where} reads as one column "
            f"{data_cols[0]!r} with separator {sep!r}, but the mapping names "
            f"{len({c for _, c in mapped_columns(source)})} columns; is the delimiter right? "
            f"{hint} in the source's YAML")
    listed = "; ".join(f"{key} maps column {col!r}" for key, col in absent)
    raise MappingError(
        f"source {source.name!r}: {listed}, which {where} does not have; its columns are "
        f"{data_cols}; fix the mapping (and 'columns') in the source's YAML or the file")


def pending_batches(ctx: StageContext, sources: list[str] | None = None
                    ) -> dict[str, int | None]:
    """Per source, how many batches ``run_ingest`` would land now, found the way it finds
    them (file listing or Delta version against bronze's batch ids) without reading any
    data; None where only reading can tell (Kafka, JDBC)."""
    spark, cfg = ctx.spark, ctx.cfg
    out: dict[str, int | None] = {}
    for name in sources or sorted(cfg.sources):
        source = cfg.sources[name]
        if source.format not in ("csv", "json", "parquet", "delta"):
            out[name] = None
            continue
        landed = _landed_batches(ctx, source)
        if source.format == "delta":
            out[name] = int(f"v{io.delta_source_version(spark, source)}" not in landed)
            continue
        try:
            files = io.list_source_files(spark, cfg, source, allow_none=True)
        except io.SourceReadError:
            out[name] = None  # ingest itself reports what is wrong with the path
            continue
        out[name] = sum(1 for _, batch in files if batch not in landed)
    return out


def run_ingest(ctx: StageContext, sources: list[str] | None = None,
               batch_id: str | None = None) -> IngestReport:
    """Land the named sources (default: all) into bronze; already landed batches are skipped.

    A batch is one file (identified by path, size and modification time) for file sources,
    the table version for Delta sources, and ``batch_id`` (default: today's UTC date) for
    JDBC sources. Each source is one atomic Delta append, and lands or fails on its own: a
    source that cannot be read is recorded with its file and error, the others still land.

    Raises:
        IngestError: after trying every source, when any failed (its ``report`` lists all;
            the ``audit.runs`` row is ``failed`` and its error names each failed source).
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
            if res.rows_suppressed:
                run.row_counts[f"bronze.{name}.erased_subject_rows"] = res.rows_suppressed
            if res.version is not None:
                run.output_versions[f"bronze.{name}"] = res.version
            if res.undecodable_rows:
                run.row_counts[f"bronze.{name}.undecodable_rows"] = sum(
                    res.undecodable_rows.values())
        report = IngestReport(run.run_id, results)
        run.metrics["sources_failed"] = len(report.failed)
        if report.failed:
            raise IngestError(report)
        return report
