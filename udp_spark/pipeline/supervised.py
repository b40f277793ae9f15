"""Training the supervised matcher from ``silver.match_labels`` (called by ``run_train``)."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass

from pyspark import StorageLevel
from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from udp_spark import io
from udp_spark.audit import RunRecord
from udp_spark.matching.comparisons import (
    Comparison,
    comparison_settings,
    comparison_vectors,
    pair_frame,
)
from udp_spark.matching.fellegi_sunter import FSModel
from udp_spark.matching.labels import effective_labels
from udp_spark.matching.supervised import (
    LabelsError,
    SupervisedMatcher,
    class_counts,
    classification_metrics,
    fit_supervised,
    fs_anchors,
    holdout_flag,
    supervised_scores,
)
from udp_spark.pipeline.context import StageContext
from udp_spark.tables import SILVER_MATCH_LABELS, SILVER_MATCH_SCORES

log = logging.getLogger(__name__)


@dataclass
class SupervisedTraining:
    matcher: SupervisedMatcher
    params: dict[str, object]
    metrics: dict[str, float]


def labels_ready(ctx: StageContext) -> tuple[bool, str]:
    """Whether ``silver.match_labels`` has enough labels of each class, and why not."""
    ref = ctx.lakehouse.ref(SILVER_MATCH_LABELS)
    if not io.table_exists(ctx.spark, ref):
        return False, f"{ref} does not exist"
    p, n = class_counts(_effective(ctx, io.read_table(ctx.spark, ref)))
    minimum = ctx.cfg.matching.model.supervised.min_labels_per_class
    if p < minimum or n < minimum:
        return False, f"{ref} has {p} matching / {n} non-matching labels (< {minimum})"
    return True, f"{ref} has {p} matching / {n} non-matching labels"


def _effective(ctx: StageContext, labels: DataFrame) -> DataFrame:
    return effective_labels(labels, ctx.cfg.matching.resolve.manual_label_sources)


def read_labels(ctx: StageContext) -> DataFrame:
    """One label per pair of ``silver.match_labels``: a clerical decision outranks any
    other, then the newest (:func:`effective_labels`).

    Raises:
        LabelsError: the table does not exist.
    """
    ref = ctx.lakehouse.ref(SILVER_MATCH_LABELS)
    if not io.table_exists(ctx.spark, ref):
        raise LabelsError(
            f"{ref} does not exist, and matching.model.kind 'supervised' trains on labelled "
            f"pairs: import them with `udp labels import PAIRS.csv` (record_id_a,record_id_b,"
            f"is_match) or `udp labels import --from-truth truth/records.csv`, or set "
            f"matching.model.kind: fellegi_sunter (or auto)")
    return _effective(ctx, io.read_table(ctx.spark, ref))


def _holdout_metrics(scored: DataFrame, threshold: float, prefix: str) -> dict[str, float]:
    return {f"{prefix}_{k}": v for k, v in classification_metrics(scored, threshold).items()}


def _anchors(ctx: StageContext, comparisons: Sequence[Comparison], fs_model: FSModel | None
             ) -> list[tuple[tuple[int, ...], bool]]:
    """The Fellegi-Sunter model's confident patterns among the scored candidate pairs
    (:func:`fs_anchors`); none without a Fellegi-Sunter model, scores or anchor weight."""
    scfg = ctx.cfg.matching.model.supervised
    ref = ctx.lakehouse.ref(SILVER_MATCH_SCORES)
    if fs_model is None or scfg.anchor_weight <= 0 or not io.table_exists(ctx.spark, ref):
        log.info("no anchors: %s", "no Fellegi-Sunter model" if fs_model is None else
                 "anchor_weight 0" if scfg.anchor_weight <= 0 else f"{ref} does not exist")
        return []
    names = [c.name for c in comparisons]
    if fs_model.comparison_settings != comparison_settings(comparisons):
        # its levels are numbered otherwise (address with or without the moved level)
        log.warning("no anchors: the Fellegi-Sunter model's comparisons were built with %s, "
                    "these with %s (retrain it: udp train, udp score)",
                    fs_model.comparison_settings, comparison_settings(comparisons))
        return []
    scores = io.read_table(ctx.spark, ref)
    missing = [c for c in names if c not in scores.columns]
    if missing:
        log.warning("no anchors: %s lacks the comparisons %s (scored by another "
                    "configuration; run udp score first)", ref, missing)
        return []
    # distinct comparison vectors: a few thousand whatever the number of pairs
    patterns = [r.asDict() for r in scores.select(*names).distinct().collect()]
    anchors = fs_anchors(patterns, fs_model, names, scfg.anchor_confidence)
    log.info("anchors: %d of %d patterns (%d match, %d non-match) at confidence %s",
             len(anchors), len(patterns), sum(1 for _, m in anchors if m),
             sum(1 for _, m in anchors if not m), scfg.anchor_confidence)
    return anchors


def train_supervised(ctx: StageContext, run: RunRecord, records: DataFrame,
                     comparisons: Sequence[Comparison],
                     fs_model: FSModel | None = None) -> SupervisedTraining:
    """Fit the supervised matcher on the labels not held out; measure it on the held-out ones.

    ``fs_model``: the current Fellegi-Sunter model, if any, measured on the same held-out
    pairs for comparison (metrics ``fs_holdout_*``).

    Raises:
        LabelsError: no labels table, or too few labels of a class.
    """
    from udp_spark.matching.scoring import score_pairs

    mcfg = ctx.cfg.matching.model
    scfg = mcfg.supervised
    threshold = ctx.cfg.matching.resolve.threshold
    labels = read_labels(ctx)
    run.input_versions["silver.match_labels"] = io.table_version(
        ctx.spark, ctx.lakehouse.ref(SILVER_MATCH_LABELS)) or 0
    labelled = (pair_frame(records, labels.select("record_id_l", "record_id_r", "is_match"))
                .transform(comparison_vectors(comparisons))
                .withColumn("_holdout", holdout_flag(scfg.holdout_fraction, mcfg.seed))
                .persist(StorageLevel.MEMORY_AND_DISK))
    anchors = _anchors(ctx, comparisons, fs_model)
    try:
        train = labelled.filter(~F.col("_holdout"))
        matcher = fit_supervised(train, comparisons, scfg, mcfg.seed, anchors)
        counts = io.one_row(labelled.agg(F.count("*").alias("n"),
                                         F.sum(F.col("_holdout").cast("long")).alias("h")))
        metrics: dict[str, float] = {
            "labels_used": float(counts["n"]), "holdout_pairs": float(counts["h"] or 0),
            "train_positives": float(matcher.model.train_positives),
            "train_negatives": float(matcher.model.train_negatives),
            "prior_weight": matcher.model.prior_weight,
            "anchor_patterns_match": float(sum(1 for _, m in anchors if m)),
            "anchor_patterns_non_match": float(sum(1 for _, m in anchors if not m))}
        holdout = labelled.filter(F.col("_holdout"))
        if scfg.holdout_fraction > 0 and (counts["h"] or 0) > 0:
            scored = holdout.transform(supervised_scores(matcher))
            metrics.update(_holdout_metrics(scored, threshold, "holdout"))
            if fs_model is not None:
                fs_scored = score_pairs(records, holdout.select(
                    "record_id_l", "record_id_r", "is_match"), fs_model)
                metrics.update(_holdout_metrics(fs_scored, threshold, "fs_holdout"))
        else:
            log.warning("no held-out labels (holdout_fraction %s): metrics are on the "
                        "training labels", scfg.holdout_fraction)
            metrics.update(_holdout_metrics(train.transform(supervised_scores(matcher)),
                                            threshold, "train"))
    finally:
        labelled.unpersist()
    params: dict[str, object] = {
        "algorithm": scfg.algorithm, "holdout_fraction": scfg.holdout_fraction,
        "reg_param": scfg.reg_param, "elastic_net_param": scfg.elastic_net_param,
        "max_iter": scfg.max_iter, "max_depth": scfg.max_depth, "step_size": scfg.step_size,
        "anchor_weight": scfg.anchor_weight, "anchor_confidence": scfg.anchor_confidence,
        "seed": mcfg.seed, "evaluation_threshold": threshold,
        "features": len(matcher.model.features),
        "fs_compared": fs_model is not None}
    return SupervisedTraining(matcher, params, metrics)
