"""All reading and writing: source files/tables, Delta tables, idempotent writes.

Transforms elsewhere never read, write or count; jobs call these functions. Delta-specific
code lives here so the rest of the library is engine-agnostic DataFrame logic.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import json
import logging
import time
from collections.abc import Callable, Collection, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, TypeVar

import pandas as pd
from delta.tables import DeltaTable
from pyspark.sql import Column, DataFrame, Row, SparkSession
from pyspark.sql import functions as F
from pyspark.sql import types as T

from udp_spark.config import PipelineConfig, SourceConfig
from udp_spark.tables import DELETION_VECTOR_TABLES, TableRef

log = logging.getLogger(__name__)
R = TypeVar("R")

CORRUPT_COL = "_corrupt_record"
# When a row reached the source, as the source itself records it: a file's modification
# time, a Kafka message's timestamp, a Delta source commit's time. Durable input, so every
# run that lands the row (a re-run after a kill, a replay, a second lakehouse built from the
# same files) gives it the same landing time; landing.to_bronze makes it ``_ingested_at``.
LANDED_COL = "_landed_at"


class SourceReadError(RuntimeError):
    """A source cannot be read as configured; the message names the source and the fix."""


class StorageFullError(OSError):
    """A write to a Delta table failed because its storage is full; nothing of the write
    was committed. The message names the table and the fix."""


NO_SPACE = ("No space left on device", "Disk quota exceeded", "ENOSPC")


@contextlib.contextmanager
def writing(ref: TableRef) -> Iterator[None]:
    """Name the table when its storage fills up under a write.

    Spark reports a full disk as a task failure naming a data file with no table; this says
    which table and that nothing of the write landed: Delta adds a write to a table with one
    log entry, after all of its data files, so a write that fails before that entry leaves
    the table at its previous version (the files it wrote are unreferenced; VACUUM removes
    them). Any other error passes through unchanged (callers catch Delta's conflicts).
    """
    try:
        yield
    except Exception as exc:
        text = str(exc)
        hit = next((m for m in NO_SPACE if m in text), None)
        if hit is None:
            raise
        raise StorageFullError(
            f"{ref} ({ref.path or ref.name}): the storage is full ({hit}) while writing it; "
            "nothing of this write was committed (the table stays at its previous version): "
            "free space, then run the stage again") from exc


@dataclass(frozen=True)
class WriteResult:
    """What one write did: table, new version (None if nothing was written), Delta metrics."""

    table: str
    version: int | None
    operation: str
    metrics: Mapping[str, int] = field(default_factory=dict)

    def metric(self, key: str) -> int:
        return int(self.metrics.get(key, 0))


def one_row(df: DataFrame) -> Row:
    """The single row of a small aggregate (raises if there is none)."""
    # collect, not first(): first() is a take(1), which on an adaptive plan can launch a
    # job per partition range it tries (15 jobs for one max() measured), collect one pass.
    rows = df.collect()
    if len(rows) != 1:
        raise ValueError(f"expected one row, got {len(rows)}")
    return rows[0]


# --------------------------------------------------------------------------- Delta tables


def _jvm_session(spark: SparkSession) -> object | None:
    """The JVM session behind a classic PySpark session (None under Spark Connect)."""
    return getattr(spark, "_jsparkSession", None)


class TableLogError(RuntimeError):
    """A table's latest transaction log entry is damaged; the message names the table's
    folder, the file and the fix."""


_sound_entries: set[tuple[str, int]] = set()  # (table path, version) checked in this process


def _latest_log_entry(spark: SparkSession, path: str) -> tuple[int, str, str | None] | None:
    """``(version, file, text)`` of the newest ``_delta_log/<version>.json`` of the table at
    ``path``, read with the session's Hadoop file system (text None: it cannot be read, e.g.
    a local file whose bytes no longer match its checksum); None when there is none."""
    fs, log_dir = _hadoop_path(spark, f"{path.rstrip('/')}/_delta_log")
    if not fs.exists(log_dir):
        return None
    names = [str(s.getPath().getName()) for s in fs.listStatus(log_dir)]
    versions = [int(n[:-5]) for n in names if n.endswith(".json") and n[:-5].isdigit()]
    if not versions:
        return None
    version = max(versions)
    file = f"{path.rstrip('/')}/_delta_log/{version:020d}.json"
    jvm: Any = spark._jvm
    try:
        stream = fs.open(jvm.org.apache.hadoop.fs.Path(file))
        try:
            text: str | None = str(jvm.org.apache.commons.io.IOUtils.toString(stream, "UTF-8"))
        finally:
            stream.close()
    except Exception as exc:  # ChecksumException: changed after it was written
        log.debug("%s cannot be read: %s", file, exc)
        text = None
    return version, file, text


def _damage(text: str | None) -> str | None:
    """Why a log entry cannot be a whole commit (None: every line is a JSON action)."""
    if text is None:
        return "it cannot be read (its bytes do not match the checksum written with it)"
    if not text.strip():
        return "it is empty"
    for n, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            action = json.loads(line)
        except ValueError as exc:
            return f"line {n} is not JSON ({exc})"
        if not isinstance(action, dict) or len(action) != 1:
            return f"line {n} is not one Delta action"
    return None


def check_latest_log_entry(spark: SparkSession, path: str, cause: BaseException | None = None
                           ) -> None:
    """Raise :class:`TableLogError` when the newest log entry of the table at ``path`` is
    damaged (truncated, garbled, empty).

    Delta would otherwise fail deep in its log replay with a message naming neither table
    nor file, or, reading a damaged line leniently, miss the files it adds. A commit's entry
    is written whole (to a temporary file, then renamed), so a damaged one was damaged after
    the fact: nothing a stage does is half-committed, and the fix is the file's.
    """
    entry = _latest_log_entry(spark, path)
    if entry is None:
        return
    version, file, text = entry
    problem = _damage(text)
    if problem is None:
        _sound_entries.add((path, version))
        return
    back = (f"move it and its checksum files (.crc) aside (the table returns to version "
            f"{version - 1}, which is intact)" if version > 0 else "move it and its checksum "
            "files (.crc) aside (the table is then empty)")
    back += (" and run the stage that writes this table again with --full (its commits name "
             "the stage: DESCRIBE HISTORY)")
    raise TableLogError(f"Delta table {path}: its latest transaction log entry {file} is "
                        f"damaged: {problem}. Nothing reads or writes the table until it is "
                        f"repaired: restore the file from a backup, or {back}") from cause


def _log_snapshot_version(spark: SparkSession, path: str) -> int | None:
    """Latest committed version of the Delta table at ``path``, read from its transaction
    log in the driver (no Spark job: about 20 ms against 0.4-0.6 s for ``history(1)``);
    None when there is no table. The newest log entry is checked once per version and
    process (:func:`check_latest_log_entry`)."""
    jvm: Any = spark._jvm
    delta_log = jvm.org.apache.spark.sql.delta.DeltaLog
    try:
        version = int(delta_log.forTableWithSnapshot(_jvm_session(spark), path)._2().version())
    except Exception as exc:
        check_latest_log_entry(spark, path, exc)
        raise
    if version >= 0 and (path, version) not in _sound_entries:
        check_latest_log_entry(spark, path)
    return None if version < 0 else version


CHECKPOINT_MODE_CONF = "spark.udp.checkpoint.mode"  # set by StageContext: reliable | local


def checkpoint(df: DataFrame) -> DataFrame:
    """Materialise ``df`` and cut its lineage: the one helper every stage uses.

    ``reliable`` (the default on a cluster, see ``checkpoint_mode``): files in the session's
    checkpoint directory, which survive a lost executor; ``df`` is cached while they are
    written so its plan runs once, not twice. ``local``: blocks on the executors (fast, and
    what local mode uses; lost with an executor).
    """
    spark = df.sparkSession
    if spark.conf.get(CHECKPOINT_MODE_CONF, "local") != "reliable":
        return df.localCheckpoint(eager=True)
    cached = df.persist()
    try:
        return cached.checkpoint(eager=True)
    finally:
        cached.unpersist()


@contextlib.contextmanager
def released_blocks(spark: SparkSession) -> Iterator[None]:
    """Unpersist, when the block ends, every RDD persisted inside it that is still held:
    the blocks of :func:`checkpoint` (local checkpoints live in the block manager until
    their RDD is unpersisted) and anything cached and not released.

    A stage's frames die with it, but the JVM only frees their blocks after a garbage
    collection finds them unreachable (Spark's ContextCleaner), so a long process (the
    stream, a test session, ``udp run``) held the checkpoints of every stage it had run
    and ran out of heap building a small broadcast. Nothing persisted inside the block may
    be used after it. Spark Connect (no SparkContext) is left to the server.
    """
    try:
        before = persisted_rdd_ids(spark)
    except Exception:  # Spark Connect
        before = None
    try:
        yield
    finally:
        if before is not None:
            for rdd_id, rdd in spark.sparkContext._jsc.getPersistentRDDs().items():
                if rdd_id not in before:
                    with contextlib.suppress(Exception):  # a stopped context
                        rdd.unpersist(False)


def persisted_rdd_ids(spark: SparkSession) -> set[int]:
    """Ids of the RDDs the session's SparkContext holds persisted (checkpoints, caches)."""
    return set(spark.sparkContext._jsc.getPersistentRDDs().keySet())


def _hadoop_path(spark: SparkSession, uri: str) -> tuple[Any, Any]:
    """``(FileSystem, Path)`` of a URI, through the session's Hadoop configuration."""
    jvm = spark.sparkContext._jvm
    assert jvm is not None
    path = jvm.org.apache.hadoop.fs.Path(uri)
    return path.getFileSystem(spark.sparkContext._jsc.hadoopConfiguration()), path


def copy_to_local(spark: SparkSession, uri: str, local: str) -> None:
    """Copy a file or folder from any Hadoop file system (HDFS, S3, DBFS, file:) to a local
    path of the driver."""
    fs, src = _hadoop_path(spark, uri)
    fs.copyToLocalFile(False, src, spark.sparkContext._jvm.org.apache.hadoop.fs.Path(  # type: ignore[union-attr]
        local), True)


def copy_from_local(spark: SparkSession, local: str, uri: str) -> None:
    """Copy a local file or folder of the driver to any Hadoop file system."""
    fs, dst = _hadoop_path(spark, uri)
    fs.copyFromLocalFile(False, True, spark.sparkContext._jvm.org.apache.hadoop.fs.Path(  # type: ignore[union-attr]
        local), dst)


def delete_path(spark: SparkSession, uri: str) -> None:
    """Delete a file or folder (recursively) on any Hadoop file system; missing is fine."""
    fs, path = _hadoop_path(spark, uri)
    fs.delete(path, True)


def table_exists(spark: SparkSession, ref: TableRef) -> bool:
    """True when the Delta table exists."""
    if ref.path:
        if _jvm_session(spark) is not None:
            return _log_snapshot_version(spark, ref.path) is not None
        return DeltaTable.isDeltaTable(spark, ref.path)
    assert ref.name
    return bool(spark.catalog.tableExists(ref.name))


def delta_table(spark: SparkSession, ref: TableRef) -> DeltaTable:
    if ref.path:
        return DeltaTable.forPath(spark, ref.path)
    assert ref.name is not None
    return DeltaTable.forName(spark, ref.name)


def read_table(spark: SparkSession, ref: TableRef, *, version: int | None = None,
               timestamp: str | None = None) -> DataFrame:
    """Read a Delta table, optionally as of a version or timestamp (time travel)."""
    reader = spark.read.format("delta")
    if version is not None:
        reader = reader.option("versionAsOf", version)
    if timestamp is not None:
        reader = reader.option("timestampAsOf", timestamp)
    return reader.load(ref.path) if ref.path else reader.table(ref.name)  # type: ignore[arg-type]


def table_version(spark: SparkSession, ref: TableRef) -> int | None:
    """Latest version of the table, or None if it does not exist."""
    if ref.path and _jvm_session(spark) is not None:
        return _log_snapshot_version(spark, ref.path)
    if not table_exists(spark, ref):
        return None
    row = delta_table(spark, ref).history(1).select("version").first()
    return int(row["version"]) if row else None


def _commit_info(spark: SparkSession, ref: TableRef) -> dict[str, object] | None:
    """The ``commitInfo`` action of the table's latest commit: straight from its log file
    when the table is a path and the session has a JVM, else from ``history(1)``. Keys as
    in the Delta protocol: version, timestamp (ms), operation, operationMetrics,
    userMetadata. None: no table."""
    if ref.path and _jvm_session(spark) is not None:
        version = _log_snapshot_version(spark, ref.path)
        if version is None:
            return None
        jvm: Any = spark._jvm
        log_file = jvm.org.apache.hadoop.fs.Path(f"{ref.path.rstrip('/')}/_delta_log/"
                                                 f"{version:020d}.json")
        jsc: Any = spark._jsc  # type: ignore[attr-defined]
        fs = log_file.getFileSystem(jsc.hadoopConfiguration())
        if fs.exists(log_file):  # else a managed commit or a checkpoint-only log: history
            stream = fs.open(log_file)
            try:
                text = str(jvm.org.apache.commons.io.IOUtils.toString(stream, "UTF-8"))
            finally:
                stream.close()
            for line in text.splitlines():
                if line.startswith('{"commitInfo"'):
                    info: dict[str, object] = json.loads(line)["commitInfo"]
                    info["version"] = version
                    return info
    if not table_exists(spark, ref):
        return None
    row = delta_table(spark, ref).history(1).select(
        "version", F.unix_millis("timestamp").alias("ms"), "operation", "operationMetrics",
        "userMetadata").first()
    assert row is not None
    return {"version": int(row["version"]), "timestamp": int(row["ms"]),
            "operation": row["operation"], "operationMetrics": row["operationMetrics"],
            "userMetadata": row["userMetadata"]}


def _last_commit(spark: SparkSession, ref: TableRef) -> WriteResult:
    info = _commit_info(spark, ref)
    assert info is not None
    raw = info.get("operationMetrics") or {}
    assert isinstance(raw, Mapping)
    metrics = {k: int(v) for k, v in raw.items()
               if v is not None and str(v).lstrip("-").isdigit()}
    return WriteResult(str(ref), int(info["version"]), str(info["operation"]),  # type: ignore[call-overload]
                       metrics)


@dataclass(frozen=True)
class CommitInfo:
    version: int
    timestamp: datetime  # UTC
    operation: str  # WRITE, MERGE, DELETE, ...
    run_id: str | None  # from the commit's user metadata (commit_metadata)


def last_commit_info(spark: SparkSession, ref: TableRef) -> CommitInfo | None:
    """The table's latest commit: version, time and the run that made it (None: no table)."""
    info = _commit_info(spark, ref)
    if info is None:
        return None
    run_id = None
    if info.get("userMetadata"):
        with contextlib.suppress(ValueError, AttributeError, TypeError):
            run_id = json.loads(str(info["userMetadata"])).get("run_id")
    at = datetime.fromtimestamp(int(info["timestamp"]) / 1000, UTC)  # type: ignore[call-overload]
    return CommitInfo(int(info["version"]), at, str(info["operation"]), run_id)  # type: ignore[call-overload]


def delete_where(spark: SparkSession, ref: TableRef, condition: Column) -> WriteResult:
    """DELETE the rows matching ``condition`` (one commit)."""
    with writing(ref):
        delta_table(spark, ref).delete(condition)
    return _last_commit(spark, ref)


def discard_uncommitted_outbox(spark: SparkSession, outbox: TableRef, state: TableRef, *,
                               batch_col: str = "run_id") -> tuple[str | None, int]:
    """Delete the latest batch appended to ``outbox`` when ``state`` has no commit after it.

    A stage that announces changes appends them to an outbox table (events) *before* it
    commits the state they describe: if the run dies between the two commits, the next run
    calls this first, and the orphaned events go (the run computes them again). The other
    order would lose them for good: the re-run finds the state already changed and writes no
    event. Runs of a stage are serialised, so only the latest outbox commit can be orphaned.
    Returns the orphaned run id (or None) and the rows deleted.
    """
    last = last_commit_info(spark, outbox)
    if last is None or last.run_id is None or last.operation != "WRITE":
        return None, 0  # nothing yet, or the latest commit is such a discard
    after = last_commit_info(spark, state)
    if after is not None and after.timestamp >= last.timestamp:
        return None, 0
    res = delete_where(spark, outbox, F.col(batch_col) == last.run_id)
    deleted = res.metric("numDeletedRows")
    log.warning("run %s died between its %s commit and its %s commit: discarded its %d rows "
                "of %s; this run computes them again", last.run_id, outbox, state, deleted,
                outbox)
    return last.run_id, deleted


@contextlib.contextmanager
def session_conf(spark: SparkSession, settings: Mapping[str, str]) -> Iterator[None]:
    """Set runtime SQL ``settings`` for the block, then put back what was there (a key that
    was not set is unset again)."""
    before: dict[str, str | None] = {key: spark.conf.get(key, None) for key in settings}
    for key, value in settings.items():
        spark.conf.set(key, value)
    try:
        yield
    finally:
        for key, old in before.items():
            if old is None:
                spark.conf.unset(key)
            else:
                spark.conf.set(key, old)


@contextlib.contextmanager
def commit_metadata(spark: SparkSession, info: Mapping[str, object]) -> Iterator[None]:
    """Tag the Delta commits made inside the block with ``info`` (JSON in userMetadata)."""
    key = "spark.databricks.delta.commitInfo.userMetadata"
    spark.conf.set(key, json.dumps(dict(info), sort_keys=True, default=str))
    try:
        yield
    finally:
        spark.conf.unset(key)


def _writer_save(df: DataFrame, ref: TableRef, mode: str, **options: str) -> None:
    if (ref.layer, ref.table) in DELETION_VECTOR_TABLES and not table_exists(
            df.sparkSession, ref):
        options = {**options, "delta.enableDeletionVectors": "true"}  # a table property
    writer = df.write.format("delta").mode(mode)
    for k, v in options.items():
        writer = writer.option(k, v)
    with writing(ref):
        if ref.path:
            writer.save(ref.path)
        else:
            writer.saveAsTable(ref.name)  # type: ignore[arg-type]


def append_new_batches(df: DataFrame, ref: TableRef, *, batch_col: str = "_batch_id",
                       known_batches: Sequence[str] | None = None) -> WriteResult:
    """Append the rows of batches not yet in ``ref``; landing a batch twice adds nothing.

    ``known_batches`` lets a caller that already filtered its input skip the anti-join.
    """
    spark = df.sparkSession
    if table_exists(spark, ref) and known_batches is None:
        landed = read_table(spark, ref).select(batch_col).distinct()
        df = df.join(F.broadcast(landed), batch_col, "left_anti")
    _writer_save(df, ref, "append", mergeSchema="true")
    return _last_commit(spark, ref)


def overwrite(df: DataFrame, ref: TableRef) -> WriteResult:
    """Replace the table's content atomically (one Delta commit)."""
    _writer_save(df, ref, "overwrite", overwriteSchema="true")
    return _last_commit(df.sparkSession, ref)


def merge_upsert(df: DataFrame, ref: TableRef, keys: Sequence[str], *,
                 change_col: str | None = "_row_hash", insert_only: bool = False) -> WriteResult:
    """MERGE ``df`` into ``ref`` on ``keys``: insert new rows, update rows whose
    ``change_col`` differs. Running it again with the same input changes nothing.

    Creates the table from ``df`` if it does not exist. ``df`` must be unique on ``keys``.
    """
    spark = df.sparkSession
    if not table_exists(spark, ref):
        _writer_save(df, ref, "append")
        created = _last_commit(spark, ref)
        inserted = created.metric("numOutputRows")
        return WriteResult(created.table, created.version, created.operation,
                           {**created.metrics, "numTargetRowsInserted": inserted})
    cond = " AND ".join(f"t.`{k}` <=> s.`{k}`" for k in keys)
    merge = delta_table(spark, ref).alias("t").merge(df.alias("s"), cond)
    if not insert_only:
        update_cond = f"NOT (t.`{change_col}` <=> s.`{change_col}`)" if change_col else None
        merge = merge.whenMatchedUpdateAll(condition=update_cond)
    with writing(ref):
        merge.whenNotMatchedInsertAll().execute()
    return _last_commit(spark, ref)


# Up to this many keys, merge_delete collects them and runs one DELETE; more, a MERGE. The
# DELETE's cost is one pass over the table whatever the number of keys (a set lookup per
# row); the keys travel to the driver (about 60 bytes each as JSON) and to the Python
# workers in the UDF's command, which PySpark broadcasts once it passes
# ``spark.broadcast.UDFCompressionThreshold`` (1 MiB). The 1M incremental pass's change
# sets (about 55,000 pairs for 1,200 new records) fit.
DELETE_BY_KEYS_MAX = 250_000


#: A DELETE by at most this many keys first keeps the rows whose key hash falls in one of
#: the keys' buckets (:func:`_key_bucket`), natively, so that the pandas UDF's exact test
#: runs on those few rows only, not on every row of the table.
KEY_PREFILTER_MAX_KEYS = 2_000
#: Buckets of the pre-filter: 2**16. The commit log records the keys' bucket numbers (a
#: 16-bit hash of each key, shared by 1/65,536 of all keys: not a value), never the keys.
KEY_BUCKET_BITS = 16


def _key_bucket(cols: Sequence[Column]) -> Column:
    """The bucket of a key: its xxhash64 modulo 2**:data:`KEY_BUCKET_BITS`."""
    return F.pmod(F.xxhash64(*cols), F.lit(1 << KEY_BUCKET_BITS))


def _key_set_condition(keys: Sequence[str], on: Sequence[str],
                       buckets: Collection[int] | None = None) -> Column:
    """True where a row's ``on`` columns (as JSON) are one of ``keys``: a pandas UDF, so
    a DELETE's commit log records its name, not the values it tests for. With ``buckets``
    (the keys' :func:`_key_bucket` over the table's column types), rows outside them are
    dropped first by a native predicate, which Spark evaluates before the UDF: on the
    1M bench's pairs and scores (4M rows, 300 keys) 5.4-5.9 s -> 2.5-3.1 s a DELETE."""
    wanted = frozenset(keys)

    @F.pandas_udf("boolean")  # type: ignore[call-overload]
    def in_key_set(row_keys: pd.Series) -> pd.Series:
        return row_keys.map(wanted.__contains__).astype(bool)

    exact: Column = in_key_set(F.to_json(F.struct(*[F.col(c) for c in on])))
    if buckets is None:
        return exact
    return _key_bucket([F.col(c) for c in on]).isin(*sorted(buckets)) & exact


def table_properties(spark: SparkSession, ref: TableRef) -> dict[str, str]:
    """The table's properties (``delta.*`` settings and features), from its snapshot's
    metadata: no Spark job, where ``DeltaTable.detail()`` runs one (0.5-1.3 s a table at 1M
    source rows against 0.0-0.2 s, measured on the bench lakehouse in session 34)."""
    target = f"delta.`{ref.path}`" if ref.path else ref.name
    return {r[0]: r[1] for r in spark.sql(f"SHOW TBLPROPERTIES {target}").collect()}


def has_deletion_vectors(spark: SparkSession, ref: TableRef) -> bool:
    """Whether the table writes deletion vectors (``delta.enableDeletionVectors``)."""
    return table_properties(spark, ref).get("delta.enableDeletionVectors") == "true"


def merge_delete(keys: DataFrame, ref: TableRef, on: Sequence[str]) -> WriteResult:
    """DELETE the rows of ``ref`` whose ``on`` columns match a row of ``keys`` (nulls match
    nulls), in one commit that never records the values: erasure must not copy what it
    erases into the commit log, which a ``DELETE WHERE col IN (...)`` would.

    On a table with deletion vectors and up to :data:`DELETE_BY_KEYS_MAX` keys, the keys are
    collected and a DELETE tests each row against them in a pandas UDF (the log names the
    UDF): one pass that writes deletion vectors. Measured on ``silver.match_scores`` at 1M
    source rows (4M rows, 283 keys): 6 s against 14-20 s for the MERGE, which joins the
    table with the keys twice. Otherwise that MERGE (the log records its join condition):
    on a table without deletion vectors, Delta 4.4's copy-on-write DELETE with this
    condition was measured to keep 5 of 10 matching rows of ``silver.party_records`` (1M
    source rows), so it is not used there (likely cause: that DELETE finds the files to
    rewrite by ``input_file_name()``, which a Python UDF in the same plan can leave empty;
    the deletion-vector DELETE reads the file and row index from the scan). The result's
    ``numTargetRowsDeleted`` is the rows deleted either way; ``version`` None if the table
    did not change.
    """
    return _delete_keys(keys, ref, on, has_deletion_vectors(keys.sparkSession, ref))


def _delete_keys(keys: DataFrame, ref: TableRef, on: Sequence[str],
                 deletion_vectors: bool) -> WriteResult:
    spark = keys.sparkSession
    before = _commit_info(spark, ref)
    wanted: list[str] | None = None
    buckets: set[int] | None = None
    if deletion_vectors:
        # the bucket of each key as the table's columns hash it (same types as the rows)
        types = {f.name: f.dataType for f in delta_table(spark, ref).toDF().schema.fields}
        encoded = keys.select(F.to_json(F.struct(*[F.col(c) for c in on])).alias("k"),
                              _key_bucket([F.col(c).cast(types[c]) for c in on]).alias("b"))
        rows = encoded.distinct().limit(DELETE_BY_KEYS_MAX + 1).collect()
        wanted = [r[0] for r in rows]
        if not wanted:
            return WriteResult(str(ref), None, "DELETE", {"numTargetRowsDeleted": 0})
        if len(wanted) > DELETE_BY_KEYS_MAX:
            wanted = None
        elif len(wanted) <= KEY_PREFILTER_MAX_KEYS:
            buckets = {int(r[1]) for r in rows}
    with writing(ref):
        if wanted is None:
            cond = " AND ".join(f"t.`{k}` <=> s.`{k}`" for k in on)
            (delta_table(spark, ref).alias("t").merge(
                keys.select(*on).distinct().alias("s"), cond).whenMatchedDelete().execute())
        else:
            delta_table(spark, ref).delete(_key_set_condition(wanted, on, buckets))
    after = _commit_info(spark, ref)
    if after is None or (before is not None and after["version"] == before["version"]):
        return WriteResult(str(ref), None, "DELETE", {"numTargetRowsDeleted": 0})
    res = _last_commit(spark, ref)
    if res.operation == "MERGE":
        return res
    return WriteResult(res.table, res.version, res.operation,
                       {**res.metrics, "numTargetRowsDeleted": res.metric("numDeletedRows")})


def replace_by_keys(changes: DataFrame, ref: TableRef, keys: Sequence[str],
                    columns: Sequence[str], *, action_col: str = "_action",
                    between: Callable[[], None] | None = None) -> WriteResult | None:
    """Apply a change set (``upsert`` and ``delete`` rows, as :func:`merge_changes`) as two
    commits: :func:`merge_delete` of every key it names, then an append of its upserts.

    On a table with deletion vectors the DELETE is one pass writing deletion vectors, where
    a MERGE joins the whole table with the changes twice: measured on
    ``silver.match_scores`` at 1M source rows (4M rows; 172 upserts, 198 deletes) 12.4 and
    14.9 s against 36.7 and 47.6 s for :func:`merge_changes` (alternating, beside another
    job). Pass only upserts that differ from the table's rows (there is no ``change_col``).

    Between the two commits the upserted keys are absent, so only a writer whose next run
    recomputes the same change set from the table after a crash there may use it (``between``
    runs after the DELETE: the crash point). None, with nothing written, when the table has
    no deletion vectors or the change set names more than :data:`DELETE_BY_KEYS_MAX` keys:
    the caller MERGEs. Metrics: ``numTargetRowsInserted`` the rows appended,
    ``numTargetRowsDeleted`` the change set's delete rows (with no upserts, the rows the
    DELETE removed), ``numRowsDeleted`` every row the DELETE removed (the upserts' earlier
    rows too). ``changes`` is read three times: pass it materialised (:func:`checkpoint`),
    as the MERGE the caller falls back to wants it too.
    """
    spark = changes.sparkSession
    if not table_exists(spark, ref) or not has_deletion_vectors(spark, ref):
        return None
    counts = {r[0]: int(r[1]) for r in changes.groupBy(action_col).count().collect()}
    if sum(counts.values()) > DELETE_BY_KEYS_MAX:  # one row per key in a change set
        return None
    removed = _delete_keys(changes.select(*keys), ref, keys, deletion_vectors=True)
    if between is not None:
        between()
    res, upserts = removed, counts.get("upsert", 0)
    if upserts:
        _writer_save(changes.filter(F.col(action_col) == "upsert").select(*columns), ref,
                     "append")
        res = _last_commit(spark, ref)
    return WriteResult(str(ref), res.version if res.version is not None else removed.version,
                       "DELETE+WRITE", {
                           "numTargetRowsInserted": upserts,
                           "numTargetRowsDeleted": counts.get("delete", 0) if upserts
                           else removed.metric("numTargetRowsDeleted"),
                           "numRowsDeleted": removed.metric("numTargetRowsDeleted")})


def append_inserts(changes: DataFrame, ref: TableRef, columns: Sequence[str], *,
                   action_col: str = "_action") -> WriteResult:
    """Apply a change set that only inserts as one append commit: no ``delete`` row, and no
    ``upsert`` of a key the table holds. Only a caller that read the table's rows of every
    key its change set can name knows that (block: the pairs and index rows of the records
    it re-pairs); the append then writes what a MERGE or :func:`replace_by_keys` would,
    without their pass over the table. Idempotent for such a caller: a run that dies after
    the append finds the rows in the table and has nothing left to write. No commit for an
    empty change set. Metrics: ``numTargetRowsInserted``."""
    rows = changes.filter(F.col(action_col) == "upsert").select(*columns)
    if rows.isEmpty():  # nothing to write: no commit
        return WriteResult(str(ref), None, "NONE", {"numTargetRowsInserted": 0})
    _writer_save(rows, ref, "append")
    res = _last_commit(changes.sparkSession, ref)
    return WriteResult(res.table, res.version, res.operation,
                       {"numTargetRowsInserted": res.metric("numOutputRows")})


def only_new_keys(changes: DataFrame, held: DataFrame, keys: Sequence[str], *,
                  action_col: str = "_action") -> bool:
    """True when ``changes`` (``upsert`` / ``delete`` rows) deletes nothing and upserts no key
    of ``held`` (the table's rows of every key the change set can name): then
    :func:`append_inserts` applies it."""
    if not changes.filter(F.col(action_col) != "upsert").isEmpty():
        return False
    return changes.select(*keys).join(held.select(*keys), list(keys), "left_semi").isEmpty()


def in_parallel(tasks: Sequence[Callable[[], R]], workers: int) -> list[R]:
    """Run independent actions (each on its own table) from ``workers`` threads; results in
    the tasks' order. Small Delta actions are mostly driver work (planning, reading the log,
    committing), one at a time per thread: on different tables they overlap. Every task
    runs; then the first failure, if any, is raised."""
    if workers <= 1 or len(tasks) <= 1:
        return [t() for t in tasks]
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="udp-table") as pool:
        futures = [pool.submit(t) for t in tasks]
        wait(futures)
    return [f.result() for f in futures]


@contextlib.contextmanager
def _vacuum_settings(spark: SparkSession, retain_hours: float) -> Iterator[None]:
    # VACUUM lists files in as many tasks as partition discovery's parallelism (10,000 by
    # default: minutes of task overhead even for a small table); the session's is enough.
    settings = {"spark.sql.sources.parallelPartitionDiscovery.parallelism": str(
        max(2, spark.sparkContext.defaultParallelism))}
    if retain_hours < 168:
        settings["spark.databricks.delta.retentionDurationCheck.enabled"] = "false"
    with session_conf(spark, settings):
        yield


def _vacuum_one(spark: SparkSession, ref: TableRef, retain_hours: float,
                purge_deletion_vectors: bool) -> int:
    started = time.perf_counter()
    dt = delta_table(spark, ref)
    if purge_deletion_vectors and has_deletion_vectors(spark, ref):
        target = f"delta.`{ref.path}`" if ref.path else ref.name
        spark.sql(f"REORG TABLE {target} APPLY (PURGE)")
    reorg = time.perf_counter() - started
    dt.vacuum(retain_hours)
    last = dt.history(1).select("operation", "operationMetrics").first()
    n = (int((last["operationMetrics"] or {}).get("numDeletedFiles", 0))
         if last is not None and last["operation"] == "VACUUM END" else 0)
    log.info("%s: %d files vacuumed in %.1fs (purge of deletion vectors %.1fs)", ref, n,
             time.perf_counter() - started, reorg)
    return n


def vacuum(spark: SparkSession, ref: TableRef, retain_hours: float, *,
           purge_deletion_vectors: bool = False) -> int:
    """VACUUM: delete the files (data and change data) that only versions older than
    ``retain_hours`` read; with ``purge_deletion_vectors`` first rewrite files whose rows
    deletion vectors hide (erasure). A retention below Delta's 7-day floor is allowed
    because the caller's config says so. Returns the files deleted."""
    with _vacuum_settings(spark, retain_hours):
        return _vacuum_one(spark, ref, retain_hours, purge_deletion_vectors)


def vacuum_all(spark: SparkSession, refs: Sequence[TableRef], retain_hours: float, *,
               purge_deletion_vectors: bool = False, workers: int = 1) -> dict[str, int]:
    """:func:`vacuum` of each table, ``workers`` at a time (the session settings VACUUM
    needs are set once around them all); table -> files deleted."""
    with _vacuum_settings(spark, retain_hours):
        counts = in_parallel([functools.partial(_vacuum_one, spark, ref, retain_hours,
                                                purge_deletion_vectors) for ref in refs],
                             workers)
    return {str(ref): n for ref, n in zip(refs, counts, strict=True)}


def merge_changes(changes: DataFrame, ref: TableRef, keys: Sequence[str],
                  columns: Sequence[str], *, action_col: str = "_action",
                  change_col: str | None = None) -> WriteResult:
    """Apply a change set in one MERGE: ``upsert`` rows insert or replace the row with their
    keys, ``delete`` rows delete it. Only ``columns`` are written. With ``change_col``, a
    matched row is rewritten only when that column differs (nothing else changes, and the
    change feed stays free of rows that did not change).

    Creates the table from the upsert rows if it does not exist. An empty change set should
    not be passed (it would still make a commit); callers count first.
    """
    spark = changes.sparkSession
    if not table_exists(spark, ref):
        created = changes.filter(F.col(action_col) == "upsert").select(*columns)
        _writer_save(created, ref, "append")
        res = _last_commit(spark, ref)
        return WriteResult(res.table, res.version, res.operation,
                           {**res.metrics, "numTargetRowsInserted":
                            res.metric("numOutputRows")})
    cond = " AND ".join(f"t.`{k}` <=> s.`{k}`" for k in keys)
    with writing(ref):
        (delta_table(spark, ref).alias("t").merge(changes.alias("s"), cond)
         .whenMatchedDelete(condition=f"s.`{action_col}` = 'delete'")
         .whenMatchedUpdate(condition=f"s.`{action_col}` = 'upsert'" + (
             f" AND NOT (t.`{change_col}` <=> s.`{change_col}`)" if change_col else ""),
                            set={f"`{c}`": f"s.`{c}`" for c in columns})
         .whenNotMatchedInsert(condition=f"s.`{action_col}` = 'upsert'",
                               values={f"`{c}`": f"s.`{c}`" for c in columns})
         .execute())
    return _last_commit(spark, ref)


def merge_scd2(changes: DataFrame, ref: TableRef, keys: Sequence[str], columns: Sequence[str],
               *, open_col: str, close_set: Mapping[str, str],
               action_col: str = "_action") -> WriteResult:
    """Apply type-2 changes in one MERGE (one commit).

    ``insert`` rows are added as new open rows, ``close`` rows end the open row with their
    keys (the row whose ``open_col`` is null) by setting ``close_set`` (target column ->
    SQL over the change row ``s``, e.g. ``{"valid_to": "s._at"}``), ``replace`` rows do
    both. Only ``columns`` are inserted. Creates the table from the inserts if missing.
    """
    spark = changes.sparkSession
    inserts = changes.filter(F.col(action_col).isin("insert", "replace"))
    if not table_exists(spark, ref):
        _writer_save(inserts.select(*columns), ref, "append")
        res = _last_commit(spark, ref)
        return WriteResult(res.table, res.version, res.operation,
                           {**res.metrics, "numTargetRowsInserted":
                            res.metric("numOutputRows")})
    # Closing rows carry their keys in _mk_*; inserted rows carry nulls, so they never match.
    closing = changes.filter(F.col(action_col).isin("close", "replace")).select(
        "*", *[F.col(k).alias(f"_mk_{k}") for k in keys])
    staged = closing.unionByName(inserts.select(
        "*", *[F.lit(None).cast(changes.schema[k].dataType).alias(f"_mk_{k}") for k in keys]))
    cond = " AND ".join([f"t.`{k}` = s.`_mk_{k}`" for k in keys] + [f"t.`{open_col}` IS NULL"])
    with writing(ref):
        (delta_table(spark, ref).alias("t").merge(staged.alias("s"), cond)
         .whenMatchedUpdate(set={f"`{c}`": e for c, e in close_set.items()})
         .whenNotMatchedInsert(condition=" AND ".join(f"s.`_mk_{k}` IS NULL" for k in keys),
                               values={f"`{c}`": f"s.`{c}`" for c in columns})
         .execute())
    return _last_commit(spark, ref)


# --------------------------------------------------------------------------- sources


def batch_id_for_file(source: str, path: str, length: int, modified: object) -> str:
    """Stable id of one landed file: same file, same size and mtime -> same batch."""
    raw = f"{source}|{path}|{length}|{modified}"
    return hashlib.sha256(raw.encode()).hexdigest()[:20]


def empty_source_files(spark: SparkSession, cfg: PipelineConfig,
                       source: SourceConfig) -> list[str]:
    """The 0-byte files at a file-based source's path (Spark's own listing leaves them out).

    Uses the Hadoop file system of the session, so it sees local disks and object stores;
    under Spark Connect (no JVM at hand) it returns nothing.
    """
    jvm = getattr(spark, "_jvm", None)
    jsc = getattr(spark, "_jsc", None)
    if jvm is None or jsc is None:
        return []
    try:
        pattern = jvm.org.apache.hadoop.fs.Path(cfg.source_path(source))
        fs = pattern.getFileSystem(jsc.hadoopConfiguration())
        found: list[str] = []
        for status in fs.globStatus(pattern) or []:
            children = fs.listStatus(status.getPath()) if status.isDirectory() else [status]
            found += [str(c.getPath()) for c in children if c.isFile() and c.getLen() == 0]
    except Exception as exc:  # listing is best effort: the read itself reports real problems
        log.debug("source %s: could not list empty files: %s", source.name, exc)
        return []
    return sorted(found)


def list_source_files(spark: SparkSession, cfg: PipelineConfig,
                      source: SourceConfig, *, allow_none: bool = False
                      ) -> list[tuple[str, str]]:
    """``(path, batch_id)`` of every non-empty file a file-based source currently has.

    Uses the ``binaryFile`` source for listing only (content is never read), so it works on
    local disks, object stores and Spark Connect alike. With ``allow_none`` a path that
    matches only empty files gives ``[]`` instead of an error.
    """
    path = cfg.source_path(source)
    reader = spark.read.format("binaryFile")
    if source.format == "parquet":
        reader = reader.option("pathGlobFilter", "*.parquet").option("recursiveFileLookup",
                                                                      "true")
    try:
        listing = reader.load(path).select("path", "length", "modificationTime").collect()
    except Exception as exc:  # AnalysisException: path does not exist
        if "PATH_NOT_FOUND" in str(exc) or "does not exist" in str(exc):
            raise SourceReadError(
                f"source {source.name!r}: no files at {path!r} (path {source.path!r} under "
                f"data_root {cfg.data_root!r}); check 'path' in its YAML or --data-root"
            ) from None
        raise
    files = sorted((r["path"], batch_id_for_file(source.name, r["path"], r["length"],
                                                 r["modificationTime"])) for r in listing)
    if not files and not allow_none:
        raise SourceReadError(f"source {source.name!r}: {path!r} matched no files")
    return files


def csv_headers(spark: SparkSession, source: SourceConfig, paths: Sequence[str]
                ) -> dict[str, tuple[str, ...]]:
    """The column names of each CSV file's header, as Spark reads them with the source's
    options (one small job per file: only the first line is read)."""
    opts = {"header": "true", **source.options}
    return {p: tuple(spark.read.options(**opts).csv(p).columns) for p in paths}


def read_source_files(spark: SparkSession, source: SourceConfig,
                      files: Sequence[tuple[str, str]],
                      headers: Mapping[str, tuple[str, ...]] | None = None) -> DataFrame:
    """Read the given files of a source with every value as it arrived (as strings).

    Adds ``_file``, ``_batch_id`` and ``_landed_at`` (the file's modification time, see
    :data:`LANDED_COL`). Malformed CSV/JSON rows are kept, with the raw line
    in ``_corrupt_record``; nothing is dropped. CSV files are matched by their own headers
    (``headers``: path -> columns, as :func:`csv_headers` gives them; read when not given).
    """
    paths = [p for p, _ in files]
    fmt = source.format
    opts = dict(source.options)
    if fmt == "csv":
        opts.setdefault("header", "true")
        # Spark reads every file by the schema's positions (the header is skipped, not
        # checked): a file whose columns are in another order, or one more or fewer, would
        # land its values under the wrong names. Files are read in groups of equal headers.
        groups: dict[tuple[str, ...], list[str]] = {}
        for path, header in (headers or csv_headers(spark, source, paths)).items():
            groups.setdefault(header, []).append(path)
        frames = []
        for header, group in groups.items():
            schema = T.StructType([T.StructField(c, T.StringType()) for c in header]
                                  + [T.StructField(CORRUPT_COL, T.StringType())])
            frames.append(spark.read.options(**opts).option("mode", "PERMISSIVE")
                          .option("columnNameOfCorruptRecord", CORRUPT_COL).schema(schema)
                          .csv(group).withColumn("_file", F.col("_metadata.file_path"))
                          .withColumn(LANDED_COL, F.col("_metadata.file_modification_time")))
        df = functools.reduce(lambda a, b: a.unionByName(b, allowMissingColumns=True), frames)
    elif fmt == "json":
        df = (spark.read.options(**opts).option("mode", "PERMISSIVE")
              .option("primitivesAsString", "true")
              .option("columnNameOfCorruptRecord", CORRUPT_COL).json(paths))
    elif fmt == "parquet":
        df = spark.read.options(**opts).parquet(*paths)
    else:  # pragma: no cover - guarded by the caller
        raise SourceReadError(f"source {source.name!r}: {fmt} is not file-based")
    batch_map = F.create_map(*[F.lit(x) for pair in files for x in pair])
    if "_file" not in df.columns:  # CSV frames carry it already (a union has no _metadata)
        df = df.withColumn("_file", F.col("_metadata.file_path")).withColumn(
            LANDED_COL, F.col("_metadata.file_modification_time"))
    return df.withColumn("_batch_id", F.element_at(batch_map, F.col("_file")))


def read_source_table(spark: SparkSession, source: SourceConfig, batch_id: str) -> DataFrame:
    """Read a Delta or JDBC source as one batch with the given id (a Delta source's rows
    with ``_landed_at``: the time of the source version read; a JDBC source has none)."""
    if source.format == "delta":
        reader = spark.read.format("delta")
        df = reader.load(source.path) if source.path else reader.table(source.table)  # type: ignore[arg-type]
        dt = (DeltaTable.forPath(spark, source.path) if source.path
              else DeltaTable.forName(spark, source.table))  # type: ignore[arg-type]
        commit = dt.history(1).select("timestamp").first()
        assert commit is not None
        df = df.withColumn(LANDED_COL, F.lit(commit["timestamp"]).cast("timestamp"))
    elif source.format == "jdbc":
        reader = spark.read.format("jdbc").options(**source.options)
        if source.table:
            reader = reader.option("dbtable", source.table)
        df = reader.load()
    else:  # pragma: no cover
        raise SourceReadError(f"source {source.name!r}: {source.format} is file-based")
    where = source.path or source.table or source.options.get("dbtable", "query")
    return df.withColumn("_file", F.lit(where)).withColumn("_batch_id", F.lit(batch_id))


KAFKA_BATCH_PREFIX = "kafka"  # bronze batch id: kafka:<topic>:<partition>:<first>-<last>


def kafka_next_offsets(topic: str, landed: Sequence[str]) -> dict[int, int]:
    """Per partition, the first offset not yet in bronze, from its landed batch ids."""
    nxt: dict[int, int] = {}
    prefix = f"{KAFKA_BATCH_PREFIX}:{topic}:"
    for batch in landed:
        if batch.startswith(prefix):
            partition, span = batch[len(prefix):].rsplit(":", 1)
            last = int(span.split("-", 1)[1])
            nxt[int(partition)] = max(nxt.get(int(partition), 0), last + 1)
    return nxt


def kafka_options(source: SourceConfig) -> dict[str, str]:
    """Reader options of a ``format: kafka`` source (batch and streaming alike)."""
    assert source.topic is not None
    return {"subscribe": source.topic, **source.options}


def read_kafka_source(spark: SparkSession, source: SourceConfig,
                      landed: Sequence[str]) -> tuple[DataFrame, int] | None:
    """The messages of a ``format: kafka`` source not yet landed, one row per message: its
    JSON value's fields as columns (nested objects as structs, like a JSON file), ``_file``
    (``kafka://topic/partition/offset``) and ``_batch_id`` (one per partition and offset
    range, see :data:`KAFKA_BATCH_PREFIX`); with the number of batches. None when there is
    nothing new.

    Where to start comes from bronze itself (the batch ids landed), not from the consumer
    group or a checkpoint: landing is one Delta commit, so a run that dies before it lands
    nothing and the next one reads the same messages again. A value that is not a JSON
    object lands in ``_corrupt_record``, like a malformed line of a file.
    """
    assert source.topic is not None
    start = kafka_next_offsets(source.topic, landed)
    reader = spark.read.format("kafka").options(**kafka_options(source))
    starting = ({source.topic: {str(p): o for p, o in start.items()}} if start else None)
    reader = reader.option("startingOffsets", json.dumps(starting) if starting else "earliest")
    # Partitions not named in startingOffsets start at earliest (a partition added later).
    messages = reader.option("endingOffsets", "latest").load().select(
        "partition", "offset", F.col("value").cast("string").alias("value"),
        F.col("timestamp").alias(LANDED_COL)).transform(checkpoint)
    spans = messages.groupBy("partition").agg(F.min("offset").alias("first"),
                                              F.max("offset").alias("last")).collect()
    if not spans:
        return None
    batch = F.concat_ws(":", F.lit(KAFKA_BATCH_PREFIX), F.lit(source.topic), "partition",
                        F.concat_ws("-", "first", "last"))
    tagged = messages.join(F.broadcast(spark.createDataFrame(spans)), "partition").select(
        "value", batch.alias("_batch_id"), LANDED_COL,
        F.format_string(f"kafka://{source.topic}/%d/%d", "partition", "offset").alias("_file"))
    schema = spark.read.json(tagged.select("value").rdd.map(lambda r: r[0] or "")).schema
    fields = [f for f in schema.fields if f.name != CORRUPT_COL]
    parsed_schema = T.StructType([*fields, T.StructField(CORRUPT_COL, T.StringType())])
    parsed = tagged.select(F.from_json("value", parsed_schema, {
        "mode": "PERMISSIVE", "columnNameOfCorruptRecord": CORRUPT_COL}).alias("v"),
        "value", "_batch_id", "_file", LANDED_COL)
    return parsed.select(*[F.col("v").getField(f.name).alias(f.name) for f in fields],
                         F.when(F.col("v").isNull() | F.col(f"v.{CORRUPT_COL}").isNotNull(),
                                F.col("value")).alias(CORRUPT_COL),
                         "_file", "_batch_id", LANDED_COL), len(spans)


def delta_source_version(spark: SparkSession, source: SourceConfig) -> int:
    """Current version of a Delta source table (its natural batch id)."""
    dt = (DeltaTable.forPath(spark, source.path) if source.path
          else DeltaTable.forName(spark, source.table))  # type: ignore[arg-type]
    row = dt.history(1).select("version").first()
    assert row is not None
    return int(row["version"])
