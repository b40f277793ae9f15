"""What changed since a stage last ran: Delta change data feed read from per-stage watermarks.

Every change-driven stage keeps, in its ``audit.runs`` row (``watermarks``,
``watermark_params``), the version of each input table it has processed and a fingerprint
of the settings its output depends on (the blocking rules,
the model version, the threshold...). A run asks :func:`changes_since` for each input:

- no watermark, a different fingerprint, or a feed that cannot be read (the table was
  re-created, change data feed was off at some version, the versions were vacuumed): the
  answer is ``full`` and the stage treats every row as changed. A full run is the same code
  as an incremental one, starting from no state.
- otherwise the rows inserted, updated or deleted in the versions after the watermark (Delta
  change data feed: ``_change_type``, ``_commit_version``).

The stage writes its outputs, then its audit row with the new watermarks (last): a run
that dies in between finds the same changes again, and the stage's writes are MERGEs that
are no-ops the second time (or, for the pair and score tables, a DELETE of the changed keys
and an append, which a second run recomputes from the table as it finds it). Change data
feed is on for every table this project creates (session default, and
:func:`enable_change_feed` for tables created before it was).

Example::

    ch = changes_since(spark, lake, "block", lake.ref(SILVER_PARTY_RECORDS), params=fp)
    changed = records if ch.full else ch.latest_rows(["record_id"])
    ...
    save_watermarks(run, {ch.table: ch.version}, params=fp)  # written with the audit row
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql.window import Window

from udp_spark import io
from udp_spark.audit import RunRecord
from udp_spark.tables import AUDIT_RUNS, Lakehouse, TableRef

log = logging.getLogger(__name__)

CDF_COLUMNS = ("_change_type", "_commit_version", "_commit_timestamp")
# change rows showing a key's state before a commit, and after it
BEFORE_IMAGES = ("update_preimage", "delete")
AFTER_IMAGES = ("insert", "update_postimage")


def fingerprint(*parts: object) -> str:
    """A short stable hash of settings (JSON-serialisable parts)."""
    text = json.dumps(parts, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


@dataclass(frozen=True)
class Changes:
    """The changes of one input table since a stage's watermark.

    ``version`` is the table version read up to (None: the table does not exist); read the
    current state at it (``io.read_table(..., version=ch.version)``) so that state and
    changes agree. When ``full`` is set ``rows`` is None: everything counts as changed.
    """

    table: str
    version: int | None
    full: bool
    reason: str
    rows: DataFrame | None = None
    since: int | None = None

    @property
    def empty(self) -> bool:
        """True when nothing changed (and the run is not full)."""
        return not self.full and (self.rows is None or self.since == self.version)

    def keys(self, *cols: str) -> DataFrame:
        """Distinct ``cols`` of every changed row (inserted, updated: both images, deleted)."""
        assert self.rows is not None, "a full change set has no rows"
        return self.rows.select(*cols).distinct()

    def content_changed(self, key: str) -> DataFrame:
        """Distinct ``key`` of the rows whose content differs between before the changes
        and after them: inserted, deleted, or updated in a column whose name does not start
        with ``_``. A row rewritten with only its lineage changed (``_batch_ids``,
        ``_row_hash``, ``_ingested_at``: the same rows landed again in a file of another
        name) is not in it, nor is one changed and changed back.

        Before is the key's first change row in the window (its pre-image or deleted row; an
        insert means it was absent), after its last (post-image or insert; a delete means
        absent). Contents are compared by a 64-bit hash of their JSON.
        """
        assert self.rows is not None, "a full change set has no rows"
        kind = F.col("_change_type")
        old, new = kind.isin(*BEFORE_IMAGES), kind.isin(*AFTER_IMAGES)
        content = F.xxhash64(F.to_json(F.struct(*[
            F.col(c) for c in self.rows.columns if not c.startswith("_")])))
        states = self.rows.groupBy(key).agg(
            # within one commit a MERGE's delete and insert of a key: the delete is first
            F.min_by(F.when(old, content), F.struct(
                "_commit_version", F.when(old, 0).otherwise(1))).alias("_before"),
            F.max_by(F.when(new, content), F.struct(
                "_commit_version", F.when(new, 1).otherwise(0))).alias("_after"))
        return states.filter(~F.col("_before").eqNullSafe(F.col("_after"))).select(key)

    def prior_keys(self, key: str) -> DataFrame:
        """Distinct ``key`` of the rows that existed before their changes in the window (an
        update's pre-image or a deleted row); an inserted row's key is not in it."""
        assert self.rows is not None, "a full change set has no rows"
        return self.rows.filter(F.col("_change_type").isin(*BEFORE_IMAGES)).select(
            key).distinct()

    def latest_rows(self, keys: Sequence[str]) -> DataFrame:
        """The last change of each key: its post-image, or the deleted row (``_change_type``
        tells which)."""
        assert self.rows is not None, "a full change set has no rows"
        rows = self.rows.filter(F.col("_change_type") != "update_preimage")
        order = Window.partitionBy(*keys).orderBy(
            F.desc("_commit_version"),
            # within one commit a MERGE's delete and insert of a key: the insert wins
            F.when(F.col("_change_type") == "delete", 1).otherwise(0))
        return rows.withColumn("_rank", F.row_number().over(order)).filter(
            "_rank = 1").drop("_rank")


def read_watermarks(spark: SparkSession, lake: Lakehouse, stage: str
                    ) -> dict[str, tuple[int, str]]:
    """``{input table: (version, params)}`` of ``stage``'s latest succeeded run."""
    ref = lake.ref(AUDIT_RUNS)
    if not io.table_exists(spark, ref):
        return {}
    runs = io.read_table(spark, ref)
    if "watermarks" not in runs.columns:
        return {}
    row = (runs.filter((F.col("stage") == stage) & (F.col("status") == "succeeded")
                       & F.col("watermarks").isNotNull())
           .orderBy(F.desc("finished_at")).select("watermarks", "watermark_params").first())
    if row is None:
        return {}
    params = row["watermark_params"] or {}
    return {t: (int(v), params.get(t, "")) for t, v in row["watermarks"].items()}


def enable_change_feed(spark: SparkSession, ref: TableRef) -> None:
    """Turn change data feed on for a table created without it (one metadata commit)."""
    if io.table_properties(spark, ref).get("delta.enableChangeDataFeed") == "true":
        return
    target = f"delta.`{ref.path}`" if ref.path else ref.name
    spark.sql(f"ALTER TABLE {target} SET TBLPROPERTIES (delta.enableChangeDataFeed = true)")
    log.info("%s: change data feed enabled (the next runs read only its changes)", ref)


def read_change_feed(spark: SparkSession, ref: TableRef, start: int, end: int) -> DataFrame:
    reader = (spark.read.format("delta").option("readChangeFeed", "true")
              .option("startingVersion", start).option("endingVersion", end))
    return reader.load(ref.path) if ref.path else reader.table(ref.name)  # type: ignore[arg-type]


def changes_since(spark: SparkSession, lake: Lakehouse, stage: str, ref: TableRef, *,
                  params: str = "", force_full: bool = False,
                  marks: Mapping[str, tuple[int, str]] | None = None) -> Changes:
    """The changes of ``ref`` since ``stage`` last saved its watermark (see the module doc).

    ``marks``: the stage's watermarks, when the caller already read them.
    """
    table = str(ref)
    version = io.table_version(spark, ref)
    if version is None:
        return Changes(table, None, False, "table does not exist", None)
    saved = (read_watermarks(spark, lake, stage) if marks is None else marks).get(table)
    if force_full:
        return Changes(table, version, True, "full run requested")
    if saved is None:
        return Changes(table, version, True, "first run")
    since, old_params = saved
    if old_params != params:
        return Changes(table, version, True, "settings changed since the last run")
    if since > version:
        return Changes(table, version, True, f"table is at version {version}, older than the "
                       f"watermark {since} (re-created?)")
    if since == version:
        return Changes(table, version, False, "no change", None, since)
    try:
        rows = read_change_feed(spark, ref, since + 1, version)
        rows.schema  # noqa: B018 - resolves the feed now: a gap in it fails here
    except Exception as exc:  # change data feed off at some version, or files vacuumed
        first = (str(exc).splitlines() or [type(exc).__name__])[0][:300]
        log.warning("%s: its change feed for versions %d..%d cannot be read (%s); %s "
                    "processes the whole table", ref, since + 1, version, first, stage)
        enable_change_feed(spark, ref)
        return Changes(table, io.table_version(spark, ref), True, f"change feed unreadable: "
                       f"{first}")
    return Changes(table, version, False, f"versions {since + 1}..{version}", rows, since)


def save_watermarks(run: RunRecord, versions: Mapping[str, int | None], *,
                    params: str | Mapping[str, str] = "",
                    saved: Mapping[str, tuple[int, str]] | None = None) -> None:
    """Record the input versions the run has processed, with the settings fingerprint (one
    for all inputs or one per input table), on top of ``saved`` (the watermarks it started
    from, so inputs this run did not read keep theirs).

    They are written with the run's ``audit.runs`` row, which :func:`audited_run
    <udp_spark.pipeline.context.audited_run>` appends after the stage's outputs: a run that
    dies before has not moved its watermarks.
    """
    merged = dict(saved or {})
    for t, v in versions.items():
        if v is not None:
            merged[t] = (int(v), params if isinstance(params, str) else params.get(t, ""))
    run.watermarks = {t: v for t, (v, _) in merged.items()}
    run.watermark_params = {t: p for t, (_, p) in merged.items()}
