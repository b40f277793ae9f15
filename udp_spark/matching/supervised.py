"""Supervised matcher: a Spark ML classifier on comparison levels, fitted on labelled pairs.

Features are one indicator per (comparison, level), built inside the fitted pipeline from the
level columns that :func:`~udp_spark.matching.comparisons.comparison_vectors` produces. The
``missing`` level is the reference (all of a comparison's indicators 0), so, as in
Fellegi-Sunter, a comparison without information adds nothing. With logistic regression (the
default) the coefficient of a level *is* its match weight: the log odds a pair gains by showing
that level; divided by ln 2 it is in the same log2 units as a Fellegi-Sunter weight.
Gradient-boosted trees (``algorithm: gbt``) are the non-linear option.

Scores keep the Fellegi-Sunter shape: a level per comparison, ``w_<comparison>`` (its
contribution), ``match_weight`` (log2 odds) and ``match_probability``. Because the model only
sees levels, it is evaluated once per *distinct* comparison vector (a few thousand, whatever
the number of pairs) and joined back. Contributions are path attributions in comparison order:
comparison k's contribution is the change in log2 odds when its level is revealed after those
before it (the rest missing); they add up exactly to ``match_weight - prior_weight``, and for
logistic regression each equals the level's coefficient / ln 2.

Example::

    vectors = pair_frame(records, labelled).transform(comparison_vectors(comparisons))
    matcher = fit_supervised(vectors, comparisons, settings.supervised, seed=42)
    scored = candidate_vectors.transform(supervised_scores(matcher))
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import cast

import pandas as pd
from pyspark.ml import Pipeline, PipelineModel
from pyspark.ml.classification import (
    GBTClassificationModel,
    GBTClassifier,
    LogisticRegression,
    LogisticRegressionModel,
)
from pyspark.ml.feature import SQLTransformer, VectorAssembler
from pyspark.ml.functions import vector_to_array
from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

from udp_spark.config import SupervisedSettings
from udp_spark.matching.comparisons import MISSING, Comparison, comparison_settings
from udp_spark.matching.fellegi_sunter import FSModel, match_probability

Transform = Callable[[DataFrame], DataFrame]

LN2 = math.log(2.0)
RAW_COL = "_raw_prediction"
LABEL_COL = "_label"
WEIGHT_COL = "_weight"  # a human label weighs 1, an anchor settings.anchor_weight


class LabelsError(ValueError):
    """Labels are missing or unusable for training; the message says what to do."""


def feature_name(comparison: str, level: int) -> str:
    return f"_lv_{comparison}_{level}"


@dataclass
class SupervisedModel:
    """What a fitted supervised matcher is, as JSON: features, coefficients or importances.

    ``coefficients`` (lr only) are natural-log odds per level (missing = 0, the reference);
    ``importances`` (gbt only) are Spark's feature importances per level. ``raw_scale`` turns
    the classifier's raw margin into natural-log odds (1 for lr, 2 for gbt's log loss).
    """

    algorithm: str
    comparisons: list[str]
    levels: dict[str, list[int]]
    labels: dict[str, dict[int, str]]
    intercept: float = 0.0
    coefficients: dict[str, dict[int, float]] = field(default_factory=dict)
    importances: dict[str, dict[int, float]] = field(default_factory=dict)
    raw_scale: float = 1.0
    prior_weight: float = 0.0  # log2 odds of a pair with every comparison missing
    train_positives: int = 0
    train_negatives: int = 0
    #: as ``FSModel.comparison_settings``: the settings the comparisons were built with
    comparison_settings: dict[str, dict[str, int]] = field(default_factory=dict)

    @property
    def features(self) -> list[str]:
        return [feature_name(c, lv) for c in self.comparisons for lv in self.levels[c]
                if lv != MISSING]

    def to_json(self) -> str:
        return json.dumps(self.__dict__, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> SupervisedModel:
        d = json.loads(text)
        for key in ("labels", "coefficients", "importances"):
            d[key] = {c: {int(k): v for k, v in lv.items()} for c, lv in d[key].items()}
        return cls(**d)

    def weights_table(self) -> pd.DataFrame:
        """One row per comparison level: label and weight (lr: coefficient in log2 odds, the
        equivalent of a Fellegi-Sunter match weight; gbt: feature importance)."""
        rows = []
        for c in self.comparisons:
            for lv in sorted(self.levels[c], reverse=True):
                if self.algorithm == "lr":
                    w = self.coefficients[c].get(lv, 0.0) / LN2
                else:
                    w = self.importances[c].get(lv, 0.0)
                rows.append({"comparison": c, "level": lv, "label": self.labels[c][lv],
                             "weight": w})
        return pd.DataFrame(rows)


@dataclass
class SupervisedMatcher:
    """A fitted supervised matcher: its description and the Spark ML pipeline that scores.

    The pipeline maps level columns (one per comparison) to ``_raw_prediction``.
    """

    model: SupervisedModel
    pipeline: PipelineModel

    @property
    def comparisons(self) -> list[str]:
        return self.model.comparisons

    @property
    def labels(self) -> dict[str, dict[int, str]]:
        return self.model.labels

    @property
    def prior_weight(self) -> float:
        return self.model.prior_weight

    @property
    def comparison_settings(self) -> dict[str, dict[str, int]]:
        return self.model.comparison_settings


def _indicator_sql(comparisons: Sequence[str], levels: dict[str, list[int]]) -> str:
    cols = [f"CAST(coalesce(`{c}`, {MISSING}) = {lv} AS DOUBLE) AS `{feature_name(c, lv)}`"
            for c in comparisons for lv in levels[c] if lv != MISSING]
    return f"SELECT *, {', '.join(cols)} FROM __THIS__"


def build_pipeline(comparisons: Sequence[str], levels: dict[str, list[int]],
                   settings: SupervisedSettings, seed: int) -> Pipeline:
    """Level columns -> indicator features -> classifier (``_raw_prediction``)."""
    features = [feature_name(c, lv) for c in comparisons for lv in levels[c] if lv != MISSING]
    stages: list = [SQLTransformer(statement=_indicator_sql(comparisons, levels)),
                    VectorAssembler(inputCols=features, outputCol="_features")]
    clf: LogisticRegression | GBTClassifier
    if settings.algorithm == "lr":
        # Indicators are on one scale already; unstandardized, the penalty treats every
        # level alike and the coefficients read directly as log odds.
        clf = LogisticRegression(regParam=settings.reg_param,
                                 elasticNetParam=settings.elastic_net_param,
                                 maxIter=settings.max_iter, standardization=False)
    else:
        clf = GBTClassifier(maxDepth=settings.max_depth, maxIter=settings.max_iter,
                            stepSize=settings.step_size, seed=seed)
    clf.setFeaturesCol("_features").setLabelCol(LABEL_COL).setRawPredictionCol(RAW_COL)
    clf.setWeightCol(WEIGHT_COL)
    clf.setProbabilityCol("_probability").setPredictionCol("_prediction")
    stages.append(clf)
    return Pipeline(stages=stages)


def log2_odds(raw_scale: float) -> Column:
    """The classifier's raw margin as log2 odds of a match."""
    return vector_to_array(F.col(RAW_COL))[1] * F.lit(raw_scale / LN2)


def holdout_flag(fraction: float, seed: int) -> Column:
    """True for the held-out share of pairs: a seeded hash of the pair, so the split is the
    same on every run and does not depend on partitioning."""
    bucket = F.pmod(F.xxhash64("record_id_l", "record_id_r", F.lit(seed)), F.lit(10_000))
    return bucket < F.lit(round(fraction * 10_000))


def class_counts(labelled: DataFrame) -> tuple[int, int]:
    """``(positives, negatives)`` of labelled vectors (one small aggregate)."""
    row = labelled.agg(F.sum(F.col("is_match").cast("long")).alias("p"),
                       F.sum((~F.col("is_match")).cast("long")).alias("n")).first()
    return (int(row["p"] or 0), int(row["n"] or 0)) if row else (0, 0)


def check_labels(positives: int, negatives: int, minimum: int) -> None:
    """Raise :class:`LabelsError` naming the fix when a class has too few labels."""
    if positives < minimum or negatives < minimum:
        raise LabelsError(
            f"silver.match_labels has {positives} matching and {negatives} non-matching "
            f"labelled pairs usable for training; kind 'supervised' needs at least {minimum} "
            f"of each: import more with `udp labels import FILE` (or `--from-truth` in the "
            f"demo), lower matching.model.supervised.min_labels_per_class, or set "
            f"matching.model.kind: fellegi_sunter")


def fs_anchors(patterns: Sequence[Mapping[str, int | None]], fs: FSModel,
               comparisons: Sequence[str], confidence: float
               ) -> list[tuple[tuple[int, ...], bool]]:
    """The comparison patterns the Fellegi-Sunter model ``fs`` decides with at least
    ``confidence``, with its decision: ``[(levels in comparisons' order, is_match)]``.

    A pattern's probability is the model's prior and level weights, without term-frequency
    adjustments (a pattern stands for all its pairs). Review labels come from the uncertain
    band only; fitted on them alone, a classifier misjudges the easy pairs it never saw (100
    review labels took pairwise precision from 0.96 to 0.64 on the generator). Anchors say
    what those pairs are.
    """
    out = []
    for row in patterns:
        levels = tuple(MISSING if (v := row[c]) is None else int(v) for c in comparisons)
        w = fs.prior_weight + sum(fs.weight(c, lv) for c, lv in zip(comparisons, levels,
                                                                    strict=True)
                                  if c in fs.comparisons)
        p = match_probability(w)
        if p >= confidence:
            out.append((levels, True))
        elif p <= 1.0 - confidence:
            out.append((levels, False))
    return out


def fit_supervised(labelled: DataFrame, comparisons: Sequence[Comparison],
                   settings: SupervisedSettings, seed: int,
                   anchors: Sequence[tuple[tuple[int, ...], bool]] = ()) -> SupervisedMatcher:
    """Fit the classifier on labelled comparison vectors.

    Args:
        labelled: one row per labelled pair: a level column per comparison and ``is_match``.
        comparisons: the comparisons whose levels are features.
        anchors: ``(levels, is_match)`` patterns (:func:`fs_anchors`) added to the labels
            with ``settings.anchor_weight`` each; a pattern some label shows is left to the
            labels.

    Raises:
        LabelsError: too few positive or negative labels (anchors do not count).
    """
    names = [c.name for c in comparisons]
    levels = {c.name: [MISSING, *range(0, c.top_level + 1)] for c in comparisons}
    positives, negatives = class_counts(labelled)
    check_labels(positives, negatives, settings.min_labels_per_class)
    train = labelled.select(*names, F.col("is_match").cast("double").alias(LABEL_COL),
                            F.lit(1.0).alias(WEIGHT_COL))
    if anchors and settings.anchor_weight > 0:
        spark = labelled.sparkSession
        seen = {tuple(MISSING if r[c] is None else int(r[c]) for c in names)
                for r in labelled.select(*names).distinct().collect()}
        rows = [(*lv, 1.0 if is_match else 0.0, float(settings.anchor_weight))
                for lv, is_match in anchors if lv not in seen]
        if rows:
            schema = ", ".join([*(f"`{c}` int" for c in names), f"{LABEL_COL} double",
                                f"{WEIGHT_COL} double"])
            train = train.unionByName(spark.createDataFrame(rows, schema))
    pipeline = build_pipeline(names, levels, settings, seed).fit(train)
    fitted = pipeline.stages[-1]
    model = SupervisedModel(
        algorithm=settings.algorithm, comparisons=names, levels=levels,
        labels={c.name: c.level_labels for c in comparisons},
        raw_scale=1.0 if settings.algorithm == "lr" else 2.0,
        train_positives=positives, train_negatives=negatives,
        comparison_settings=comparison_settings(comparisons))
    feats = model.features
    if settings.algorithm == "lr":
        lr = cast(LogisticRegressionModel, fitted)
        coef = lr.coefficients.toArray()
        by_name = dict(zip(feats, coef, strict=True))
        model.intercept = float(lr.intercept)
        model.coefficients = {c: {lv: (float(by_name[feature_name(c, lv)]) if lv != MISSING
                                       else 0.0) for lv in levels[c]} for c in names}
    else:
        gbt = cast(GBTClassificationModel, fitted)
        imp = dict(zip(feats, gbt.featureImportances.toArray(), strict=True))
        model.importances = {c: {lv: float(imp.get(feature_name(c, lv), 0.0))
                                 for lv in levels[c]} for c in names}
    spark = labelled.sparkSession
    all_missing = spark.createDataFrame([tuple(MISSING for _ in names)],
                                        ", ".join(f"`{c}` int" for c in names))
    base = pipeline.transform(all_missing).select(log2_odds(model.raw_scale).alias("w")).first()
    model.prior_weight = float(base["w"]) if base else 0.0
    return SupervisedMatcher(model, pipeline)


def supervised_scores(matcher: SupervisedMatcher) -> Transform:
    """comparison vectors -> adds ``w_<comparison>``, ``match_weight`` and
    ``match_probability`` (see the module docstring for how contributions are attributed).

    The pipeline runs on the distinct vectors only, with each prefix of comparisons revealed
    (n + 1 variants per vector), and the results are joined back on the level columns.
    """
    names = matcher.comparisons
    n = len(names)

    def transform(vectors: DataFrame) -> DataFrame:
        orig = [f"_o_{c}" for c in names]
        distinct = vectors.select(*[F.col(c).alias(o) for c, o in zip(names, orig, strict=True)]
                                  ).distinct()
        steps = vectors.sparkSession.range(n + 1).select(F.col("id").cast("int").alias("_k"))
        variants = distinct.crossJoin(steps).select(
            *orig, "_k",
            *[F.when(F.lit(i) < F.col("_k"), F.col(o)).otherwise(F.lit(MISSING)).alias(c)
              for i, (c, o) in enumerate(zip(names, orig, strict=True))])
        predicted = matcher.pipeline.transform(variants).select(
            *orig, "_k", log2_odds(matcher.model.raw_scale).alias("_w"))
        table = predicted.groupBy(*orig).pivot("_k", list(range(n + 1))).agg(F.first("_w"))
        weight = F.col(str(n))
        probability = F.lit(1.0) / (F.lit(1.0) + F.pow(F.lit(2.0), -weight))
        table = table.select(
            *[F.col(o).alias(c) for c, o in zip(names, orig, strict=True)],
            *[(F.col(str(i + 1)) - F.col(str(i))).alias(f"w_{c}") for i, c in enumerate(names)],
            weight.alias("match_weight"), probability.alias("match_probability"))
        return vectors.join(table, names)

    return transform


def classification_metrics(scored: DataFrame, threshold: float) -> dict[str, float]:
    """Precision, recall, F1 at ``threshold`` and ROC AUC of scored labelled pairs.

    Args:
        scored: ``is_match`` and ``match_probability`` per labelled pair.
    """
    from pyspark.ml.evaluation import BinaryClassificationEvaluator

    pred = F.col("match_probability") >= F.lit(threshold)
    truth = F.col("is_match")
    row = scored.agg(F.sum((pred & truth).cast("long")).alias("tp"),
                     F.sum((pred & ~truth).cast("long")).alias("fp"),
                     F.sum((~pred & truth).cast("long")).alias("fn"),
                     F.count("*").alias("n")).first()
    tp, fp, fn = (float(row[k] or 0) if row else 0.0 for k in ("tp", "fp", "fn"))
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / (tp + fn) if tp + fn else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    n = float(row["n"]) if row else 0.0
    auc = float("nan")  # undefined unless both classes are present
    if 0 < tp + fn < n:
        auc = BinaryClassificationEvaluator(
            rawPredictionCol="match_probability", labelCol=LABEL_COL,
            metricName="areaUnderROC").evaluate(
            scored.select("match_probability", truth.cast("double").alias(LABEL_COL)))
    return {"precision": precision, "recall": recall, "f1": f1, "auc": float(auc),
            "pairs": n, "positives": tp + fn}
