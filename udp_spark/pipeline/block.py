"""The block stage: candidate pairs from keys, rule blocks and LSH, kept current by a
blocking index so that only the pairs of changed records are computed again."""

from __future__ import annotations

import logging
from dataclasses import dataclass

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from udp_spark import io, progress
from udp_spark.audit import RunRecord
from udp_spark.changes import changes_since, fingerprint, save_watermarks
from udp_spark.faults import crash_point
from udp_spark.matching.blocking import (
    block_cap,
    block_keys,
    block_methods,
    candidate_pairs_now,
    check_blocking,
    flipped_block_candidates,
    flipped_members,
    pairs_of,
    touched_blocks,
    updated_index,
)
from udp_spark.matching.evaluation import blocking_metrics
from udp_spark.pipeline.context import StageContext, audited_run, stage_watermarks
from udp_spark.pipeline.inputs import party_records, read_truth
from udp_spark.tables import (
    SILVER_BLOCK_KEYS,
    SILVER_CANDIDATE_PAIRS,
    SILVER_PARTY_RECORDS,
    TableRef,
)

log = logging.getLogger(__name__)

PAIR_COLUMNS = ("record_id_l", "record_id_r", "methods", "_row_hash", "_run_id")
INDEX_COLUMNS = ("block", "record_id", "expanded")


@dataclass
class BlockReport:
    run_id: str
    records: int
    candidate_pairs: int
    largest_block: int
    oversized_blocks: list[tuple[str, int]]
    metrics: dict[str, float]
    full: bool = True
    records_changed: int = 0
    pairs_written: int = 0  # pairs inserted or rewritten by this run
    pairs_retired: int = 0
    index_rows_retired: int = 0  # blocking index rows of records that left a block


def _pair_metrics(n_records: int, n_pairs: int) -> dict[str, float]:
    return {"records": float(n_records), "candidate_pairs": float(n_pairs),
            "reduction_ratio": 1 - n_pairs / max(n_records * (n_records - 1) / 2, 1)}


def blocking_fingerprint(ctx: StageContext) -> str:
    """What the pairs depend on: the blocking settings and the identifier columns."""
    return fingerprint(ctx.cfg.matching.blocking.model_dump(mode="json"),
                       [i.model_dump(mode="json") for i in ctx.cfg.matching.identifiers])


def _with_pair_hash(pairs: DataFrame, records: DataFrame) -> DataFrame:
    """A pair's ``_row_hash`` changes when either record's content or its methods change:
    the score stage re-scores exactly those.

    64 bits (16 hex digits, xxHash64): it only tells a pair's new version from its old one,
    where a SHA-256 (64 hex digits) made three quarters of ``silver.candidate_pairs``' bytes
    (250 of 343 MB at 1M source rows) and so of every MERGE's rewrite of its files. A
    lakehouse written with the long form rewrites a pair once, when it is next recomputed.
    """
    h = records.select("record_id", "_row_hash")
    digest = F.xxhash64(F.concat_ws("|", "_h_l", "_h_r", F.array_join("methods", ",")))
    return (pairs.join(h.toDF("record_id_l", "_h_l"), "record_id_l")
            .join(h.toDF("record_id_r", "_h_r"), "record_id_r")
            .select("record_id_l", "record_id_r", "methods",
                    F.lpad(F.hex(digest), 16, "0").alias("_row_hash")))


def _held_pairs(existing: DataFrame, changed: DataFrame, candidates: DataFrame | None
                ) -> DataFrame:
    """The rows of ``existing`` (the pairs table) a run recomputes: pairs with an end in
    ``changed`` (``record_id``) and the ``candidates`` (``record_id_l, record_id_r``), in
    one pass over the table (both are distinct, so the left joins add no rows)."""
    def ends(side: str) -> DataFrame:
        return changed.select(F.col("record_id").alias(f"record_id_{side}"),
                              F.lit(True).alias(f"_{side}"))

    held = existing.join(ends("l"), "record_id_l", "left").join(ends("r"), "record_id_r",
                                                                 "left")
    hit = F.col("_l") | F.col("_r")
    if candidates is not None:
        held = held.join(candidates.withColumn("_c", F.lit(True)),
                         ["record_id_l", "record_id_r"], "left")
        hit = hit | F.col("_c")
    return held.filter(hit).select(*existing.columns)


def _unchanged(spark: SparkSession, run: RunRecord, pairs_ref: TableRef, n_records: int
               ) -> BlockReport:
    """The report of a run that found no record to block again (the same metrics as a run
    that wrote pairs: `udp block` prints the ratio)."""
    run.metrics.update({"records_changed": 0.0, "full": 0.0})
    n_pairs = io.read_table(spark, pairs_ref).count()
    return BlockReport(run.run_id, n_records, n_pairs, 0, [], _pair_metrics(n_records, n_pairs),
                       False)


def run_block(ctx: StageContext, truth: str | None = None, *, full: bool = False
              ) -> BlockReport:
    """Candidate pairs into ``silver.candidate_pairs``, for the records that changed since
    the last run (all records the first time, when the blocking settings change, or with
    ``full``), with the blocking index ``silver.block_keys``.

    A changed record's blocks are replaced in the index; the pairs of changed records are
    computed again against the blocks they touch, and the pairs of unchanged records
    sharing a block that crossed its size cap against all their shared blocks; those pairs
    that no longer exist are deleted. No other pair between unchanged records is
    recomputed. Commits: pairs (one append when the change set only adds:
    :func:`udp_spark.io.append_inserts`; else a DELETE of the changed keys and an append, or
    one MERGE: :func:`udp_spark.io.replace_by_keys`), then index (an append when it only
    adds, else a MERGE), then the watermark.
    """
    settings = ctx.cfg.matching.blocking
    spark, lake = ctx.spark, ctx.lakehouse
    rec_ref, index_ref = lake.ref(SILVER_PARTY_RECORDS), lake.ref(SILVER_BLOCK_KEYS)
    pairs_ref = lake.ref(SILVER_CANDIDATE_PAIRS)
    params = blocking_fingerprint(ctx)
    with audited_run(ctx, "block") as run, io.commit_metadata(
            spark, {"run_id": run.run_id, "stage": "block"}):
        state = io.table_exists(spark, index_ref) and io.table_exists(spark, pairs_ref)
        marks = stage_watermarks(ctx, "block")
        ch = changes_since(spark, lake, "block", rec_ref, params=params,
                           force_full=full or not state, marks=marks)
        records = party_records(ctx, version=ch.version)
        check_blocking(settings, records)
        run.input_versions[str(rec_ref)] = ch.version or 0
        n_records = records.count()
        top = block_cap(settings)
        progress.step("changes read", rows=n_records)
        if ch.empty:
            log.info("block: no record changed since the last run")
            return _unchanged(spark, run, pairs_ref, n_records)
        index = None if ch.full else io.read_table(spark, index_ref)
        if ch.full:
            log.info("block: all records (%s)", ch.reason)
            changed = records.select("record_id")
        else:
            # records whose content changed: one landed again in a file of another name
            # changes only its lineage, and its keys and pairs with it stay as they are
            changed = ch.content_changed("record_id").transform(io.checkpoint)
            if changed.isEmpty():
                log.info("block: records changed only in lineage since the last run")
                save_watermarks(run, {str(rec_ref): ch.version}, params=params)
                return _unchanged(spark, run, pairs_ref, n_records)
        # (a full run keys every record: no join of the records with their own ids; an
        # incremental one materialises its few records first, which each key, rule and LSH
        # index reads again)
        new_keys = (records if ch.full else records.join(changed, "record_id", "left_semi")
                    .transform(io.checkpoint)).transform(block_keys(settings)).transform(
            io.checkpoint)
        old_index = None
        if index is not None:
            # Every row of the blocks a changed record leaves or joins: the only blocks
            # whose members or status can change, and all that the rest of the run reads.
            blocks = new_keys.select("block")
            # Only a record that existed at the last run has index rows in blocks it may
            # have left: an inserted one has none, or (a run killed after its index commit)
            # exactly its new keys. New records alone need no lookup by record id.
            prior = ch.prior_keys("record_id").join(changed, "record_id", "left_semi"
                                                     ).transform(io.checkpoint)
            if not prior.isEmpty():
                blocks = blocks.unionByName(
                    index.join(prior, "record_id", "left_semi").select("block"))
            old_index = index.join(blocks.distinct(), "block", "left_semi").transform(
                io.checkpoint)
            progress.step("blocking index read")
        after = updated_index(old_index, changed, new_keys)
        touched = touched_blocks(old_index, changed, new_keys, after, top).transform(io.checkpoint)
        methods = block_methods(settings)
        pairs = pairs_of(changed, after, top, methods, all_records=ch.full)
        candidates = None
        if index is not None:
            # Unchanged records sharing a block whose status flipped: their pairs with each
            # other, through all their blocks (those outside the touched ones as the index
            # holds them)
            members = flipped_members(changed, after, touched).transform(io.checkpoint)
            if not members.isEmpty():
                candidates = flipped_block_candidates(members, after, touched).transform(
                    io.checkpoint)
                pairs = pairs.unionByName(candidate_pairs_now(candidates, members, touched,
                                                              index, methods))
        progress.step("blocks of the changed records")
        pairs = (_with_pair_hash(pairs, records).withColumn("_run_id", F.lit(run.run_id))
                 .transform(io.checkpoint))
        progress.step("pairs computed")
        retired = 0
        if ch.full:
            res = io.overwrite(pairs, pairs_ref)
            written = res.metric("numOutputRows")
        else:
            existing = io.read_table(spark, pairs_ref)
            mine = _held_pairs(existing, changed, candidates).transform(io.checkpoint)
            stale = mine.join(pairs.select("record_id_l", "record_id_r"),
                              ["record_id_l", "record_id_r"], "left_anti")
            # pairs the table holds as they are now are no change (a MERGE would match them
            # and write nothing): only new and changed ones go in
            pairs = pairs.join(mine.select("record_id_l", "record_id_r", "_row_hash"),
                               ["record_id_l", "record_id_r", "_row_hash"], "left_anti")
            changes = (pairs.withColumn("_action", F.lit("upsert"))
                       .unionByName(stale.select(*PAIR_COLUMNS).withColumn(
                           "_action", F.lit("delete")))).transform(io.checkpoint)
            # Only new pairs (new records, no flipped block, nothing retired: a stream's
            # usual batch): one append, as ``mine`` holds the table's row of any pair the
            # change set names. Else a DELETE and an append where the table allows (a run
            # that dies between them recomputes the same pairs against the table), else one
            # MERGE.
            keys = ["record_id_l", "record_id_r"]
            if io.only_new_keys(changes, mine, keys):
                res = io.append_inserts(changes, pairs_ref, PAIR_COLUMNS)
            else:
                res = io.replace_by_keys(
                    changes, pairs_ref, keys, PAIR_COLUMNS,
                    between=lambda: crash_point("block:after_candidate_pairs_deleted")
                ) or io.merge_changes(changes, pairs_ref, keys, PAIR_COLUMNS,
                                      change_col="_row_hash")
            written = res.metric("numTargetRowsInserted") + res.metric("numTargetRowsUpdated")
            retired = res.metric("numTargetRowsDeleted")
        if res.version is not None:
            run.output_versions[str(pairs_ref)] = res.version
        progress.step("candidate pairs written", rows=written)
        crash_point("block:after_candidate_pairs")
        # The index: every row of a touched block with its status now; rows of changed
        # records that left a block are deleted. Written after the pairs (see module doc of
        # udp_spark.changes): a run that dies in between recomputes the same pairs.
        rows = after.join(touched.select("block", "expanded"), "block").select(*INDEX_COLUMNS)
        index_retired = 0
        if ch.full:
            io.overwrite(rows, index_ref)
        else:
            assert old_index is not None
            gone = (old_index.join(changed, "record_id", "left_semi")
                    .join(after, ["block", "record_id"], "left_anti").select(*INDEX_COLUMNS))
            # only rows the index does not hold as they are now (old_index has every row of
            # the touched blocks): with none, the retired rows go by a one-pass DELETE
            upserts = rows.join(old_index, ["block", "record_id", "expanded"], "left_anti"
                                ).transform(io.checkpoint)
            gone = gone.transform(io.checkpoint)
            index_keys = ["block", "record_id"]
            if upserts.isEmpty():
                res = io.merge_delete(gone, index_ref, index_keys)
            else:
                index_changes = (upserts.withColumn("_action", F.lit("upsert")).unionByName(
                    gone.withColumn("_action", F.lit("delete"))).transform(io.checkpoint))
                # only rows of blocks' new members (no status flipped, no record left a
                # block): one append, the index whole at every commit; else one MERGE
                res = (io.append_inserts(index_changes, index_ref, INDEX_COLUMNS)
                       if io.only_new_keys(index_changes, old_index, index_keys)
                       else io.merge_changes(index_changes, index_ref, index_keys,
                                             INDEX_COLUMNS, change_col="expanded"))
            index_retired = res.metric("numTargetRowsDeleted")
        progress.step("blocking index written")
        crash_point("block:after_block_keys")
        save_watermarks(run, {str(rec_ref): ch.version}, params=params)

        big = touched.filter(F.col("size") > top).orderBy(F.desc("size")).limit(20).collect()
        largest = io.one_row(touched.filter("expanded").agg(F.max("size")))[0]
        n_pairs = (written if ch.full else io.read_table(spark, pairs_ref).count())
        n_changed = n_records if ch.full else changed.count()
        metrics = {**_pair_metrics(n_records, n_pairs), "records_changed": float(n_changed)}
        if truth:
            stored = io.read_table(spark, pairs_ref)
            metrics.update(blocking_metrics(stored, read_truth(ctx, truth), n_records))
        run.metrics.update({**metrics, "full": float(ch.full)})
        run.row_counts.update({"silver.candidate_pairs": n_pairs, "pairs_written": written,
                               "pairs_retired": retired, "records_changed": n_changed})
        return BlockReport(run.run_id, n_records, n_pairs, int(largest or 0),
                           [(r["block"], int(r["size"])) for r in big], metrics, ch.full,
                           n_changed, written, retired, index_retired)
