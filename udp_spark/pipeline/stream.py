"""The stream stage: a Structured Streaming query over every source's landing folder whose
micro-batches run the change-driven stages, so a landed file reaches the profiles (and
``gold.profile_events``) in one micro-batch.

The query watches the folders with the ``binaryFile`` source (file names, sizes and times
only; the content is read by ingest, with the source's own format and checks) and its
``foreachBatch`` runs ingest for the sources that received files, then standardize, block,
score, resolve and publish, each reading only what changed since its watermark.

Exactly once: the query's checkpoint records a micro-batch only after ``foreachBatch``
returns. A micro-batch killed half-way is replayed after a restart; ingest skips the files
it already landed (a file is a batch id) and each stage finds the changes its watermark has
not yet covered, so nothing is written twice and nothing is lost.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import reduce
from pathlib import Path

from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from udp_spark import io
from udp_spark.audit import new_run_id
from udp_spark.faults import crash_point
from udp_spark.lease import PIPELINE, Lease
from udp_spark.pipeline.context import RunBuffer, StageContext, flush_audit

log = logging.getLogger(__name__)

FILE_FORMATS = ("csv", "json", "parquet")
STREAM_FORMATS = (*FILE_FORMATS, "kafka")
# The binaryFile source's schema (a streaming source needs it given).
BINARY_FILE_SCHEMA = ("path string, modificationTime timestamp, length long, "
                      "content binary")


@dataclass
class BatchReport:
    """One micro-batch: what arrived, how long each stage took, what it announced."""

    batch_id: int
    files: int
    sources: list[str]
    rows_landed: int = 0
    seconds: float = 0.0
    stages: dict[str, float] = field(default_factory=dict)
    profile_events: dict[str, int] = field(default_factory=dict)


def run_changed_stages(ctx: StageContext, sources: list[str] | None = None
                       ) -> tuple[dict[str, float], int, dict[str, int]]:
    """Ingest ``sources`` (default: all) and run every change-driven stage once.

    Returns seconds per stage, rows landed and the profile events published by type.
    Training is not a stage here: the model behind the alias scores (``udp train`` and a
    new alias re-score everything on the next run, on purpose).
    """
    from udp_spark.pipeline.block import run_block
    from udp_spark.pipeline.ingest import run_ingest
    from udp_spark.pipeline.publish import run_publish
    from udp_spark.pipeline.resolve import run_resolve
    from udp_spark.pipeline.score import run_score
    from udp_spark.pipeline.standardize import run_standardize

    timings: dict[str, float] = {}

    def timed(name: str, fn: Callable[[], object]) -> object:
        t0 = time.perf_counter()
        out = fn()
        timings[name] = round(time.perf_counter() - t0, 3)
        return out

    ingest = timed("ingest", lambda: run_ingest(ctx, sources))
    landed = ingest.rows_written  # type: ignore[attr-defined]
    timed("standardize", lambda: run_standardize(ctx, sources))
    timed("block", lambda: run_block(ctx))
    timed("score", lambda: run_score(ctx))
    timed("resolve", lambda: run_resolve(ctx))
    published = timed("publish", lambda: run_publish(ctx))
    return timings, landed, dict(published.events)  # type: ignore[attr-defined]


def watched_sources(ctx: StageContext) -> list[str]:
    """The sources the stream watches: ``stream.sources`` or every file-based and Kafka
    source."""
    files = sorted(n for n, s in ctx.cfg.sources.items() if s.format in STREAM_FORMATS)
    names = list(ctx.cfg.stream.sources) or files
    bad = [n for n in names if n not in files]
    if bad:
        raise ValueError(f"stream.sources: {bad} are not csv / json / parquet / kafka sources "
                         f"of this config; those are {files}")
    if not names:
        raise ValueError("no csv / json / parquet / kafka source to stream from")
    return names


def landing_stream(ctx: StageContext, names: list[str]) -> DataFrame:
    """One streaming DataFrame ``(source, path, length, modificationTime)`` of the files
    arriving in the sources' landing folders."""
    spark, cfg = ctx.spark, ctx.cfg
    frames = []
    for name in names:
        source = cfg.sources[name]
        if source.format == "kafka":
            # The query's Kafka offsets only wake the micro-batch up: ingest reads the topic
            # from where bronze stopped (io.read_kafka_source), so a replayed or lost
            # trigger lands nothing twice and nothing less.
            reader = spark.readStream.format("kafka").options(**io.kafka_options(source))
            frames.append(reader.option("startingOffsets", "earliest").option(
                "maxOffsetsPerTrigger", cfg.stream.max_files_per_trigger * 1000).load().select(
                F.lit(name).alias("source"),
                F.format_string(f"kafka://{source.topic}/%d/%d", "partition", "offset")
                .alias("path"), F.coalesce(F.length("value"), F.lit(0)).cast("long")
                .alias("length"), F.col("timestamp").alias("modificationTime")))
            continue
        path = cfg.source_path(source)
        reader = (spark.readStream.format("binaryFile").schema(BINARY_FILE_SCHEMA)
                  .option("maxFilesPerTrigger", cfg.stream.max_files_per_trigger)
                  # a file copied in with an old modification time still counts
                  .option("maxFileAge", "36500d"))
        if source.format == "parquet":
            reader = reader.option("pathGlobFilter", "*.parquet").option(
                "recursiveFileLookup", "true")
            if not any(ch in path for ch in "*?[") and Path(path).suffix != "":
                path = str(Path(path).parent)  # one file named: watch its folder
        frames.append(reader.load(path).select(
            F.lit(name).alias("source"), "path", "length", "modificationTime"))
    return reduce(DataFrame.unionByName, frames)


def checkpoint_location(ctx: StageContext) -> str:
    """The query's checkpoint: ``stream.checkpoint_location``, default beside the tables
    (``<lakehouse root>/_checkpoints/stream``): it belongs to the lakehouse it feeds."""
    root = ctx.cfg.lakehouse.root.rstrip("/")
    return ctx.cfg.stream.checkpoint_location or f"{root}/_checkpoints/stream"


def run_stream(ctx: StageContext, *, available_now: bool = False,
               timeout: float | None = None,
               on_batch: Callable[[BatchReport], None] | None = None) -> list[BatchReport]:
    """Run the stream until stopped (Ctrl-C), ``timeout`` seconds, or with
    ``available_now`` until every file there now is processed.

    Returns the report of each non-empty micro-batch this call ran.
    """
    names = watched_sources(ctx)
    reports: list[BatchReport] = []
    ctx = StageContext(ctx.spark, ctx.cfg, ctx.buffer or RunBuffer())
    # One writer at a time: the stream holds the lakehouse lease `udp run` takes, for as
    # long as it runs (renewed between micro-batches).
    lease = Lease(ctx.spark, ctx.lakehouse, PIPELINE, holder=new_run_id("stream"),
                  ttl_seconds=ctx.cfg.run.lease_ttl_minutes * 60)
    lease.acquire(ctx.cfg.run.wait_seconds)
    try:
        return _run_query(ctx, names, reports, lease, available_now, timeout, on_batch)
    finally:
        lease.release()


def _run_query(ctx: StageContext, names: list[str], reports: list[BatchReport], lease: Lease,
               available_now: bool, timeout: float | None,
               on_batch: Callable[[BatchReport], None] | None) -> list[BatchReport]:

    def handle(batch: DataFrame, batch_id: int) -> None:
        files = batch.collect()
        if not files:
            return
        t0 = time.perf_counter()
        sources = sorted({r["source"] for r in files})
        log.info("stream micro-batch %d: %d files from %s", batch_id, len(files), sources)
        try:
            lease.renew_if_due()
            timings, landed, events = run_changed_stages(ctx, sources)
        except BaseException as exc:
            if isinstance(exc, Exception):
                raise
            # py4j passes only Exceptions back to the JVM: anything else would leave the
            # query waiting for a callback that never returns
            raise RuntimeError(f"micro-batch {batch_id} stopped: {exc!r}") from exc
        finally:
            flush_audit(ctx)  # this micro-batch's audit rows, one commit
        crash_point("stream:before_batch_commit")  # all committed but the query's offsets
        report = BatchReport(batch_id, len(files), sources, landed,
                             round(time.perf_counter() - t0, 3), timings, events)
        log.info("stream micro-batch %d done in %.1fs: %s; profile events %s", batch_id,
                 report.seconds, timings, events)
        reports.append(report)
        if on_batch is not None:
            on_batch(report)

    writer = (landing_stream(ctx, names).writeStream.foreachBatch(handle)
              .option("checkpointLocation", checkpoint_location(ctx))
              .queryName("udp-stream"))
    writer = (writer.trigger(availableNow=True) if available_now
              else writer.trigger(processingTime=f"{ctx.cfg.stream.trigger_seconds} seconds"))
    query = writer.start()
    log.info("stream watching %s (checkpoint %s)", names, checkpoint_location(ctx))
    try:
        if available_now:
            query.awaitTermination()
        else:
            query.awaitTermination(int(timeout) if timeout else None)
    except KeyboardInterrupt:
        log.info("stream stopped by the user")
    finally:
        if query.isActive:
            query.stop()
    if query.exception() is not None:
        raise RuntimeError(f"stream failed: {query.exception()}")
    return reports
