"""The score stage: every candidate pair scored by the model behind the alias; explain."""

from __future__ import annotations

import logging
from functools import reduce

from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from udp_spark import io, progress
from udp_spark.changes import changes_since, save_watermarks
from udp_spark.faults import crash_point
from udp_spark.matching.fellegi_sunter import FSModel
from udp_spark.matching.scoring import contributions, score_pairs, tf_tables
from udp_spark.matching.supervised import SupervisedMatcher
from udp_spark.pipeline.context import (
    StageContext,
    audited_run,
    mlflow_dfs_tmpdir,
    stage_watermarks,
)
from udp_spark.pipeline.inputs import party_records
from udp_spark.tables import (
    GOLD_IDENTITY_XREF,
    SILVER_CANDIDATE_PAIRS,
    SILVER_MATCH_SCORES,
    SILVER_MATCH_TERM_FREQUENCIES,
)

log = logging.getLogger(__name__)


def frozen_tf_tables(ctx: StageContext, records: DataFrame, model: FSModel | SupervisedMatcher,
                     model_version: str) -> dict[str, DataFrame]:
    """The term-frequency tables of ``model_version``, computed from the records the first
    time that version scores and read back from ``silver.match_term_frequencies`` after.

    Frozen per model version so that landing new records does not move the weight of every
    old pair a little: a pair's score changes only when the model changes or its own
    records do, and customer ids outside the clusters new records touch stay put.
    """
    if not isinstance(model, FSModel) or not model.tf_columns:
        return {}
    ref = ctx.lakehouse.ref(SILVER_MATCH_TERM_FREQUENCIES)

    def stored() -> DataFrame:
        return io.read_table(ctx.spark, ref).filter(
            F.col("model_version") == model_version).transform(io.checkpoint)

    frozen = stored() if io.table_exists(ctx.spark, ref) else None
    if frozen is None or frozen.isEmpty():
        fresh = reduce(DataFrame.unionByName, [
            table.select(
                F.lit(model_version).alias("model_version"), F.lit(comparison).alias(
                    "comparison"), F.col("value").cast("string").alias("value"), "tf")
            for comparison, table in tf_tables(records, model).items()])
        io.append_new_batches(fresh, ref, batch_col="model_version")
        crash_point("score:after_term_frequencies")
        frozen = stored()
    return {c: frozen.filter(F.col("comparison") == c).select("value", "tf")
            for c in [*model.tf_columns, *model.joint_tf]}


SCORE_KEYS = ("record_id_l", "record_id_r")


def run_score(ctx: StageContext, *, full: bool = False) -> dict[str, float]:
    """Score the candidate pairs added or changed since the last run with the model behind
    the configured alias, and drop the scores of retired pairs.

    Every pair is scored when the model version differs from the last run's (on purpose: a
    new model re-scores everything), the first time, or with ``full``.
    """
    from udp_spark.platform import mlflow_store

    mcfg = ctx.cfg.matching.model
    spark, lake = ctx.spark, ctx.lakehouse
    pairs_ref, scores_ref = lake.ref(SILVER_CANDIDATE_PAIRS), lake.ref(SILVER_MATCH_SCORES)
    with audited_run(ctx, "score") as run, io.commit_metadata(
            spark, {"run_id": run.run_id, "stage": "score"}):
        model, version = mlflow_store.load_by_alias(ctx.cfg.mlflow, mcfg.registered_name,
                                                    mcfg.alias, mlflow_dfs_tmpdir(ctx.cfg))
        label = f"{mcfg.registered_name}/{version}"
        if not io.table_exists(spark, pairs_ref):
            raise ValueError(f"{pairs_ref} does not exist: run `udp block` first")
        marks = stage_watermarks(ctx, "score")
        ch = changes_since(spark, lake, "score", pairs_ref, params=label, marks=marks,
                           force_full=full or not io.table_exists(spark, scores_ref))
        run.input_versions[str(pairs_ref)] = ch.version or 0
        run.metrics["model_version"] = float(version)
        if ch.empty:
            log.info("score: no candidate pair changed since the last run")
            return {"pairs_scored": 0.0, "pairs_deleted": 0.0, "model_version": float(version),
                    "full": 0.0}
        progress.step("model loaded, changes found")
        records = party_records(ctx)
        tf = frozen_tf_tables(ctx, records, model, label)
        progress.step("term frequencies")
        if ch.full:
            log.info("score: every pair (%s)", ch.reason)
            todo = io.read_table(spark, pairs_ref, version=ch.version)
            gone = None
        else:
            last = ch.latest_rows(list(SCORE_KEYS)).transform(io.checkpoint)
            todo = last.filter(F.col("_change_type") != "delete")
            gone = last.filter(F.col("_change_type") == "delete").select(*SCORE_KEYS)
            # only the records of these pairs are read for the comparisons
            ids = todo.select(F.explode(F.array(*SCORE_KEYS)).alias("record_id")).distinct()
            records = records.join(ids, "record_id", "left_semi")
            progress.step("changed pairs read")
        scored = score_pairs(records, todo.select(*SCORE_KEYS, "methods"), model,
                             checkpoint=True, tf=tf)
        out = scored.select(
            *SCORE_KEYS, "methods", *model.comparisons,
            contributions(model).alias("contributions"), "match_weight",
            "match_probability", F.lit(label).alias("model_version"),
            F.lit(run.run_id).alias("_run_id"))
        deleted = 0
        if ch.full:
            res = io.overwrite(out, scores_ref)
            n_scored = res.metric("numOutputRows")
        else:
            assert gone is not None
            columns = out.columns
            # a delete row needs only its keys (the MERGE deletes what matches them): no
            # pass over the scores table to fetch the rest
            changes = out.withColumn("_action", F.lit("upsert")).unionByName(
                gone.select(*[F.col(c) if c in SCORE_KEYS
                              else F.lit(None).cast(out.schema[c].dataType).alias(c)
                              for c in columns]).withColumn("_action", F.lit("delete"))
            ).transform(io.checkpoint)
            # a DELETE and an append where the table allows (a run that dies between them
            # reads the same pair changes again and scores them again), else one MERGE
            res = io.replace_by_keys(
                changes, scores_ref, list(SCORE_KEYS), columns,
                between=lambda: crash_point("score:after_match_scores_deleted")
            ) or io.merge_changes(changes, scores_ref, list(SCORE_KEYS), columns)
            n_scored = res.metric("numTargetRowsInserted") + res.metric("numTargetRowsUpdated")
            deleted = res.metric("numTargetRowsDeleted")
        progress.step("scores written", rows=n_scored)
        crash_point("score:after_match_scores")
        save_watermarks(run, {str(pairs_ref): ch.version}, params=label)
        run.row_counts.update({"silver.match_scores": n_scored, "scores_deleted": deleted})
        return {"pairs_scored": float(n_scored), "pairs_deleted": float(deleted),
                "model_version": float(version), "full": float(ch.full)}


def explain_pair(ctx: StageContext, record_a: str, record_b: str) -> dict[str, object]:
    """Comparison levels, weights and probability of two records, and how they were treated."""
    from udp_spark.platform import mlflow_store

    mcfg = ctx.cfg.matching.model
    model, version = mlflow_store.load_by_alias(ctx.cfg.mlflow, mcfg.registered_name,
                                                mcfg.alias, mlflow_dfs_tmpdir(ctx.cfg))
    records = party_records(ctx)
    found = {r["record_id"] for r in records.filter(
        F.col("record_id").isin(record_a, record_b)).select("record_id").collect()}
    for rid in (record_a, record_b):
        if rid not in found:
            raise ValueError(f"record {rid!r} is not in silver.party_records")
    left, right = sorted((record_a, record_b))
    pair = ctx.spark.createDataFrame([(left, right)], "record_id_l string, record_id_r string")
    tf = frozen_tf_tables(ctx, records, model, f"{mcfg.registered_name}/{version}")
    row = score_pairs(records, pair, model, tf=tf).first()
    assert row is not None
    lines = []
    for c in model.comparisons:
        level = int(row[c])
        lines.append({"comparison": c, "level": level,
                      "label": model.labels[c].get(level, str(level)),
                      "weight": float(row[f"w_{c}"])})
    blocked = None
    pairs_ref = ctx.lakehouse.ref(SILVER_CANDIDATE_PAIRS)
    if io.table_exists(ctx.spark, pairs_ref):
        hit = io.read_table(ctx.spark, pairs_ref).join(
            pair, ["record_id_l", "record_id_r"]).select("methods").first()
        blocked = list(hit["methods"]) if hit else []
    same = None
    xref_ref = ctx.lakehouse.ref(GOLD_IDENTITY_XREF)
    if io.table_exists(ctx.spark, xref_ref):
        ids = {r["record_id"]: r["customer_id"] for r in io.read_table(ctx.spark, xref_ref)
               .filter(F.col("record_id").isin(left, right)).collect()}
        same = ids.get(left) is not None and ids.get(left) == ids.get(right)
    return {"record_a": left, "record_b": right, "model_version": version,
            "prior_weight": model.prior_weight, "comparisons": lines,
            "match_weight": float(row["match_weight"]),
            "match_probability": float(row["match_probability"]),
            "threshold": ctx.cfg.matching.resolve.threshold,
            "blocking_methods": blocked, "same_customer": same}
