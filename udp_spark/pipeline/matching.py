"""Identity-resolution stages: block, train, score, resolve, evaluate, explain."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import reduce
from pathlib import Path

from pyspark import StorageLevel
from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from udp_spark import io
from udp_spark.graph import connected_components
from udp_spark.matching.blocking import (
    block_keys,
    candidate_pairs,
    check_blocking,
    oversized_blocks,
)
from udp_spark.matching.clustering import conflict_flag, split_components
from udp_spark.matching.comparisons import (
    comparison_vectors,
    comparisons_for,
    comparisons_named,
    pair_frame,
    with_identifier_columns,
)
from udp_spark.matching.comparisons import email as email_cmp
from udp_spark.matching.comparisons import loyalty_id as loyalty_cmp
from udp_spark.matching.evaluation import (
    attainable_metrics,
    blocking_metrics,
    cluster_metrics,
    linkable_truth,
)
from udp_spark.matching.fellegi_sunter import FSModel
from udp_spark.matching.identity import assign_customer_ids
from udp_spark.matching.scoring import contributions, score, tf_tables, weight_columns
from udp_spark.matching.supervised import SupervisedMatcher, supervised_scores
from udp_spark.matching.training import train_fellegi_sunter
from udp_spark.pipeline.context import StageContext, audited_run
from udp_spark.tables import (
    GOLD_IDENTITY_EVENTS,
    GOLD_IDENTITY_XREF,
    SILVER_CANDIDATE_PAIRS,
    SILVER_MATCH_LABELS,
    SILVER_MATCH_SCORES,
    SILVER_MATCH_TERM_FREQUENCIES,
    SILVER_PARTY_RECORDS,
)

log = logging.getLogger(__name__)


def _records(ctx: StageContext) -> DataFrame:
    ref = ctx.lakehouse.ref(SILVER_PARTY_RECORDS)
    if not io.table_exists(ctx.spark, ref):
        raise ValueError(f"{ref} does not exist: run `udp ingest` and `udp standardize` first")
    return io.read_table(ctx.spark, ref).transform(
        with_identifier_columns(ctx.cfg.matching.identifiers))


def read_truth(ctx: StageContext, path: str) -> DataFrame:
    """A truth file: CSV with ``record_id,entity_id`` or ``source,source_key,person_id``."""
    df = ctx.spark.read.option("header", "true").csv(path)
    if {"record_id", "entity_id"} <= set(df.columns):
        return df.select("record_id", "entity_id")
    if {"source", "source_key", "person_id"} <= set(df.columns):
        return df.select(F.concat_ws(":", "source", "source_key").alias("record_id"),
                         F.col("person_id").alias("entity_id"))
    raise ValueError(f"truth file {path}: needs columns record_id,entity_id or "
                     f"source,source_key,person_id; has {df.columns}")


# --------------------------------------------------------------------------- block


@dataclass
class BlockReport:
    run_id: str
    records: int
    candidate_pairs: int
    largest_block: int
    oversized_blocks: list[tuple[str, int]]
    metrics: dict[str, float]


def run_block(ctx: StageContext, truth: str | None = None) -> BlockReport:
    """Candidate pairs from keys, rules and LSH into ``silver.candidate_pairs``."""
    settings = ctx.cfg.matching.blocking
    with audited_run(ctx, "block") as run, io.commit_metadata(
            ctx.spark, {"run_id": run.run_id, "stage": "block"}):
        records = _records(ctx)
        check_blocking(settings, records)
        run.input_versions["silver.party_records"] = io.table_version(
            ctx.spark, ctx.lakehouse.ref(SILVER_PARTY_RECORDS)) or 0
        keys = records.transform(block_keys(settings)).persist(StorageLevel.MEMORY_AND_DISK)
        try:
            big = oversized_blocks(keys, settings.max_block_size).orderBy(
                F.desc("size")).limit(20).collect()
            sizes = io.one_row(keys.groupBy("block").count().filter(
                F.col("count") <= settings.max_block_size).agg(F.max("count")))
            pairs = keys.transform(candidate_pairs(settings.max_block_size))
            res = io.overwrite(pairs.withColumn("_run_id", F.lit(run.run_id)),
                               ctx.lakehouse.ref(SILVER_CANDIDATE_PAIRS))
        finally:
            keys.unpersist()
        n_records = records.count()
        n_pairs = res.metric("numOutputRows")
        metrics = {"records": float(n_records), "candidate_pairs": float(n_pairs),
                   "reduction_ratio": 1 - n_pairs / max(n_records * (n_records - 1) / 2, 1)}
        if truth:
            stored = io.read_table(ctx.spark, ctx.lakehouse.ref(SILVER_CANDIDATE_PAIRS))
            metrics.update(blocking_metrics(stored, read_truth(ctx, truth), n_records))
        run.metrics.update(metrics)
        run.row_counts["silver.candidate_pairs"] = n_pairs
        if res.version is not None:
            run.output_versions["silver.candidate_pairs"] = res.version
        return BlockReport(run.run_id, n_records, n_pairs, int(sizes[0] or 0),
                           [(r["block"], int(r["size"])) for r in big], metrics)


# --------------------------------------------------------------------------- train


@dataclass
class TrainReport:
    run_id: str
    model_version: str
    mlflow_run_id: str
    model: FSModel | SupervisedMatcher
    kind: str = "fellegi_sunter"
    metrics: dict[str, float] = field(default_factory=dict)

    @property
    def summary(self) -> str:
        """One line about the fitted model (for the demo and logs)."""
        if isinstance(self.model, FSModel):
            return (f"prior {self.model.prior:.3g} ({self.model.prior_method}), "
                    f"{self.model.em_iterations} EM iterations")
        f1 = self.metrics.get("holdout_f1")
        return (f"supervised ({self.model.model.algorithm})"
                + (f", held-out F1 {f1:.4f}" if f1 is not None else ""))


def _train_kind(ctx: StageContext) -> str:
    """The configured kind, with ``auto`` resolved: supervised when labels are ready."""
    kind = ctx.cfg.matching.model.kind
    if kind != "auto":
        return kind
    from udp_spark.pipeline.supervised import labels_ready

    ready, why = labels_ready(ctx)
    log.info("kind auto: %s -> %s", why, "supervised" if ready else "fellegi_sunter")
    return "supervised" if ready else "fellegi_sunter"


def _current_fs_model(ctx: StageContext) -> tuple[FSModel, str] | None:
    """The Fellegi-Sunter model to compare a supervised one with: the one behind the alias,
    else the newest registered Fellegi-Sunter version."""
    from udp_spark.platform import mlflow_store

    mcfg = ctx.cfg.matching.model
    return mlflow_store.latest_fellegi_sunter(ctx.cfg.mlflow, mcfg.registered_name, mcfg.alias)


def run_train(ctx: StageContext) -> TrainReport:
    """Fit the matcher and register it in MLflow: Fellegi-Sunter (no labels) by default, or
    the supervised matcher on ``silver.match_labels`` (``matching.model.kind``)."""
    from udp_spark.platform import mlflow_store

    mcfg = ctx.cfg.matching.model
    kind = _train_kind(ctx)
    if kind == "supervised":
        return _run_train_supervised(ctx)
    with audited_run(ctx, "train") as run:
        records = _records(ctx).persist(StorageLevel.MEMORY_AND_DISK)
        pairs = io.read_table(ctx.spark, ctx.lakehouse.ref(SILVER_CANDIDATE_PAIRS)).select(
            "record_id_l", "record_id_r")
        n_records = records.count()
        comps = comparisons_for(ctx.cfg.matching.identifiers)
        model = train_fellegi_sunter(records, pairs, comps, n_records, mcfg)
        records.unpersist()
        metrics = {"prior": model.prior, "em_iterations": float(model.em_iterations),
                   "em_converged": float(model.converged), "records": float(n_records)}
        reg = mlflow_store.log_and_register(
            model, settings=ctx.cfg.mlflow, name=mcfg.registered_name, alias=mcfg.alias,
            params={"kind": "fellegi_sunter", "comparisons": ",".join(model.comparisons),
                    "random_pairs": mcfg.random_pairs, "prior_method": model.prior_method,
                    "udp_run_id": run.run_id,
                    "config_hash": ctx.cfg.config_hash},
            metrics=metrics)
        run.mlflow_run_id = reg.run_id
        run.metrics.update(metrics)
        return TrainReport(run.run_id, reg.version, reg.run_id, model, "fellegi_sunter",
                           metrics)


def _run_train_supervised(ctx: StageContext) -> TrainReport:
    from udp_spark.pipeline.supervised import read_labels, train_supervised
    from udp_spark.platform import mlflow_store

    mcfg = ctx.cfg.matching.model
    read_labels(ctx)  # fails with the fix before anything else runs when there are none
    fs = _current_fs_model(ctx)
    with audited_run(ctx, "train") as run:
        records = _records(ctx).persist(StorageLevel.MEMORY_AND_DISK)
        try:
            comps = comparisons_for(ctx.cfg.matching.identifiers)
            trained = train_supervised(ctx, run, records, comps, fs[0] if fs else None)
        finally:
            records.unpersist()
        if fs:
            trained.params["fs_compared_version"] = fs[1]
        reg = mlflow_store.log_and_register_supervised(
            trained.matcher, settings=ctx.cfg.mlflow, name=mcfg.registered_name,
            alias=mcfg.alias,
            params={"kind": "supervised", "configured_kind": mcfg.kind,
                    "comparisons": ",".join(trained.matcher.comparisons),
                    "udp_run_id": run.run_id, "config_hash": ctx.cfg.config_hash,
                    **trained.params},
            metrics=trained.metrics)
        run.mlflow_run_id = reg.run_id
        run.metrics.update(trained.metrics)
        return TrainReport(run.run_id, reg.version, reg.run_id, trained.matcher, "supervised",
                           trained.metrics)


# --------------------------------------------------------------------------- score


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
            F.col("model_version") == model_version).localCheckpoint(eager=True)

    frozen = stored() if io.table_exists(ctx.spark, ref) else None
    if frozen is None or frozen.isEmpty():
        fresh = reduce(DataFrame.unionByName, [
            table.select(
                F.lit(model_version).alias("model_version"), F.lit(comparison).alias(
                    "comparison"), F.col("value").cast("string").alias("value"), "tf")
            for comparison, table in tf_tables(records, model).items()])
        io.append_new_batches(fresh, ref, batch_col="model_version")
        frozen = stored()
    return {c: frozen.filter(F.col("comparison") == c).select("value", "tf")
            for c in [*model.tf_columns, *model.joint_tf]}


def score_pairs(records: DataFrame, pairs: DataFrame, model: FSModel | SupervisedMatcher,
                *, checkpoint: bool = False, tf: dict[str, DataFrame] | None = None
                ) -> DataFrame:
    """Pairs -> levels, per-comparison weights, match weight and probability.

    ``checkpoint``: materialize the comparison vectors first (a supervised matcher reads them
    twice: distinct vectors to score, then all of them to join the scores back).
    ``tf``: term-frequency tables (:func:`frozen_tf_tables`); computed from ``records``
    when not given.
    """
    comps = comparisons_named(model.comparisons)
    vectors = pair_frame(records, pairs).transform(comparison_vectors(comps))
    if isinstance(model, SupervisedMatcher):
        if checkpoint:
            vectors = vectors.localCheckpoint(eager=True)
        return vectors.transform(supervised_scores(model))
    if tf is None:
        tf = tf_tables(records, model)
    return vectors.transform(weight_columns(model, tf)).transform(score(model))


def run_score(ctx: StageContext) -> dict[str, float]:
    """Score every candidate pair with the model behind the configured alias."""
    from udp_spark.platform import mlflow_store

    mcfg = ctx.cfg.matching.model
    with audited_run(ctx, "score") as run, io.commit_metadata(
            ctx.spark, {"run_id": run.run_id, "stage": "score"}):
        model, version = mlflow_store.load_by_alias(ctx.cfg.mlflow, mcfg.registered_name,
                                                    mcfg.alias)
        records = _records(ctx)
        pairs = io.read_table(ctx.spark, ctx.lakehouse.ref(SILVER_CANDIDATE_PAIRS))
        label = f"{mcfg.registered_name}/{version}"
        tf = frozen_tf_tables(ctx, records, model, label)
        scored = score_pairs(records, pairs.select("record_id_l", "record_id_r", "methods"),
                             model, checkpoint=True, tf=tf)
        out = scored.select(
            "record_id_l", "record_id_r", "methods", *model.comparisons,
            contributions(model).alias("contributions"), "match_weight",
            "match_probability", F.lit(label).alias("model_version"),
            F.lit(run.run_id).alias("_run_id"))
        res = io.overwrite(out, ctx.lakehouse.ref(SILVER_MATCH_SCORES))
        run.row_counts["silver.match_scores"] = res.metric("numOutputRows")
        run.metrics["model_version"] = float(version)
        return {"pairs_scored": float(res.metric("numOutputRows")), "model_version": float(version)}


# --------------------------------------------------------------------------- resolve


@dataclass
class ResolveReport:
    run_id: str
    records: int
    customers: int
    largest_cluster: int
    events: dict[str, int]
    ids_changed: int


MANUAL_WEIGHT = 1e6  # a manual link is merged before any scored one


def cluster_records(records: DataFrame, scores: DataFrame, threshold: float, *,
                    dob: bool = True, given_name: bool = True, loyalty_id: bool = True,
                    identifiers: Sequence[str] = (), backend: str = "auto",
                    manual: DataFrame | None = None) -> DataFrame:
    """``(record_id, cluster_id)`` for every record: components over accepted edges, split
    where strong conflicts say two members are different people (``identifiers``: names
    of identifier comparisons whose disagreement is a conflict).

    ``manual``: ``(record_id_l, record_id_r, is_match)`` decisions of a person, which
    override the matcher: a match is a link merged before any other (and not a conflict),
    a non-match is a conflict whatever the score.
    """
    conflict = conflict_flag(dob=dob, given_name=given_name, loyalty_id=loyalty_id,
                             identifiers=[i for i in identifiers if i in scores.columns])
    # Deterministic links: the same (canonical) email or loyalty card, unless conflicting.
    key_link = ((F.col("email") == email_cmp().top_level)
                | (F.col("loyalty_id") == loyalty_cmp().top_level))
    flagged = scores.select(
        "record_id_l", "record_id_r", "match_weight",
        (((F.col("match_probability") >= threshold) | key_link) & ~conflict).alias("is_edge"),
        conflict.alias("is_conflict"))
    if manual is not None:
        ids = records.select("record_id")
        decided = (manual.join(ids.withColumnRenamed("record_id", "record_id_l"), "record_id_l")
                   .join(ids.withColumnRenamed("record_id", "record_id_r"), "record_id_r")
                   .select("record_id_l", "record_id_r", F.col("is_match").alias("_m")))
        flagged = flagged.join(decided, ["record_id_l", "record_id_r"], "full_outer").select(
            "record_id_l", "record_id_r",
            F.when(F.col("_m"), F.lit(MANUAL_WEIGHT)).otherwise(
                F.coalesce("match_weight", F.lit(0.0))).alias("match_weight"),
            F.coalesce("_m", "is_edge").alias("is_edge"),
            F.coalesce(~F.col("_m"), "is_conflict").alias("is_conflict"))
    edges = flagged.filter("is_edge").select(F.col("record_id_l").alias("src"),
                                              F.col("record_id_r").alias("dst"))
    vertices = edges.select(F.col("src").alias("id")).unionByName(
        edges.select(F.col("dst").alias("id"))).distinct()
    cc = connected_components(vertices, edges, backend=backend)  # type: ignore[arg-type]
    split = flagged.transform(split_components(cc)).select("record_id", "cluster_id")
    return records.select("record_id").join(split, "record_id", "left").select(
        "record_id", F.coalesce("cluster_id", "record_id").alias("cluster_id"))


def manual_decisions(ctx: StageContext) -> DataFrame | None:
    """``(record_id_l, record_id_r, is_match)`` from ``silver.match_labels`` whose source is
    one of ``resolve.manual_label_sources`` (clerical review), or None if there are none."""
    sources = ctx.cfg.matching.resolve.manual_label_sources
    ref = ctx.lakehouse.ref(SILVER_MATCH_LABELS)
    if not sources or not io.table_exists(ctx.spark, ref):
        return None
    labels = (io.read_table(ctx.spark, ref).filter(F.col("label_source").isin(*sources))
              .select("record_id_l", "record_id_r", "is_match").localCheckpoint(eager=True))
    return None if labels.isEmpty() else labels


def run_resolve(ctx: StageContext) -> ResolveReport:
    """Clusters and stable customer ids into ``gold.identity_xref`` and ``identity_events``."""
    rcfg = ctx.cfg.matching.resolve
    spark, lake = ctx.spark, ctx.lakehouse
    with audited_run(ctx, "resolve") as run, io.commit_metadata(
            spark, {"run_id": run.run_id, "stage": "resolve"}):
        records = _records(ctx)
        scores = io.read_table(spark, lake.ref(SILVER_MATCH_SCORES))
        manual = manual_decisions(ctx)
        clusters = cluster_records(
            records, scores, rcfg.threshold, dob=rcfg.conflict_on_dob,
            given_name=rcfg.conflict_on_given_name, loyalty_id=rcfg.conflict_on_loyalty_id,
            identifiers=[i.name for i in ctx.cfg.matching.identifiers if i.conflict],
            backend=rcfg.graph_backend, manual=manual).localCheckpoint(eager=True)
        xref_ref = lake.ref(GOLD_IDENTITY_XREF)
        previous = (io.read_table(spark, xref_ref).select("record_id", "customer_id")
                    .localCheckpoint(eager=True) if io.table_exists(spark, xref_ref) else None)
        ids, events = assign_customer_ids(clusters, previous, run.run_id)
        sizes = clusters.groupBy("cluster_id").agg(F.count("*").alias("cluster_size"))
        # Why a record is where it is: a manual match inside its cluster ("manual"), else a
        # model link at or over the threshold inside its cluster ("model_score"), else only
        # a deterministic link ("key"), else "singleton".
        cl_l = clusters.select(F.col("record_id").alias("record_id_l"),
                               F.col("cluster_id").alias("_c_l"))
        cl_r = clusters.select(F.col("record_id").alias("record_id_r"),
                               F.col("cluster_id").alias("_c_r"))

        def in_cluster(pairs: DataFrame, value: str) -> DataFrame:
            return (pairs.join(cl_l, "record_id_l").join(cl_r, "record_id_r")
                    .filter(F.col("_c_l") == F.col("_c_r"))
                    .select(F.explode(F.array("record_id_l", "record_id_r")).alias("record_id"),
                            value))

        best = in_cluster(scores.filter(F.col("match_probability") >= rcfg.threshold),
                          "match_probability").groupBy("record_id").agg(
            F.max("match_probability").alias("best_link_probability"))
        manual_linked = (in_cluster(manual.filter("is_match"), "is_match")
                         .groupBy("record_id").agg(F.lit(True).alias("_manual"))
                         if manual is not None else
                         spark.createDataFrame([], "record_id string, _manual boolean"))
        xref = (clusters.join(ids, "cluster_id").join(sizes, "cluster_id")
                .join(best, "record_id", "left").join(manual_linked, "record_id", "left")
                .select("record_id", "customer_id", "cluster_size",
                        F.when(F.col("cluster_size") == 1, F.lit("singleton"))
                        .when(F.col("_manual"), F.lit("manual"))
                        .when(F.col("best_link_probability").isNotNull(),
                              F.lit("model_score"))
                        .otherwise(F.lit("key")).alias("reason"),
                        "best_link_probability",
                        F.lit(run.run_id).alias("run_id"))
                .withColumn("_row_hash", F.sha2(F.concat_ws("|", "customer_id", "reason"),
                                                256))).localCheckpoint(eager=True)
        res = io.merge_upsert(xref, xref_ref, ["record_id"])
        changed = res.metric("numTargetRowsUpdated") + (
            res.metric("numTargetRowsInserted") if previous is not None else 0)
        ev = events.localCheckpoint(eager=True)
        ev_counts = {r["event_type"]: int(r["n"]) for r in
                     ev.groupBy("event_type").agg(F.count("*").alias("n")).collect()}
        if ev_counts:
            io.append_new_batches(
                ev.withColumn("run_id", F.lit(run.run_id))
                .withColumn("event_at", F.current_timestamp()),
                lake.ref(GOLD_IDENTITY_EVENTS), batch_col="run_id", known_batches=())
        stats = io.one_row(xref.agg(F.count("*").alias("n"),
                                    F.countDistinct("customer_id").alias("c"),
                                    F.max("cluster_size").alias("big")))
        run.row_counts.update({"identity_xref_changed": changed,
                               **{f"events_{k}": v for k, v in ev_counts.items()}})
        run.metrics.update({"customers": float(stats["c"]), "largest_cluster":
                            float(stats["big"])})
        return ResolveReport(run.run_id, int(stats["n"]), int(stats["c"]), int(stats["big"]),
                             ev_counts, changed)


# --------------------------------------------------------------------------- evaluate


def run_evaluate(ctx: StageContext, truth: str, log_to_mlflow: bool = True
                 ) -> dict[str, float]:
    """Clusters in ``gold.identity_xref`` (and blocking) against a truth file."""
    with audited_run(ctx, "evaluate") as run:
        t = read_truth(ctx, truth)
        xref = io.read_table(ctx.spark, ctx.lakehouse.ref(GOLD_IDENTITY_XREF))
        clusters = xref.select("record_id", F.col("customer_id").alias("cluster_id"))
        t = t.join(xref.select("record_id"), "record_id").localCheckpoint(eager=True)
        linkable = linkable_truth(_records(ctx), t).localCheckpoint(eager=True)
        metrics = cluster_metrics(clusters, t)
        metrics.update(attainable_metrics(metrics, clusters, t, linkable))
        pairs_ref = ctx.lakehouse.ref(SILVER_CANDIDATE_PAIRS)
        if io.table_exists(ctx.spark, pairs_ref):
            pairs = io.read_table(ctx.spark, pairs_ref)
            n = int(metrics["records"])
            b = blocking_metrics(pairs, t, n)
            metrics.update({f"blocking_{k}": v for k, v in b.items()})
            lb = blocking_metrics(pairs, linkable, n)
            metrics.update({f"blocking_linkable_{k}": lb[k] for k in (
                "true_pairs", "pair_completeness", "reachable_pair_completeness")})
        if log_to_mlflow:
            from udp_spark.platform import mlflow_store

            run.mlflow_run_id = mlflow_store.log_evaluation(
                ctx.cfg.mlflow, metrics, {"truth": truth, "udp_run_id": run.run_id})
        run.metrics.update(metrics)
        return metrics


# --------------------------------------------------------------------------- explain


def explain_pair(ctx: StageContext, record_a: str, record_b: str) -> dict[str, object]:
    """Comparison levels, weights and probability of two records, and how they were treated."""
    from udp_spark.platform import mlflow_store

    mcfg = ctx.cfg.matching.model
    model, version = mlflow_store.load_by_alias(ctx.cfg.mlflow, mcfg.registered_name,
                                                mcfg.alias)
    records = _records(ctx)
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


def default_truth_path(data_root: str) -> str | None:
    p = Path(data_root) / "truth" / "records.csv"
    return str(p) if p.is_file() else None
