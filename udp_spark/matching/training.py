"""Fitting the unsupervised Fellegi-Sunter matcher on Spark data.

u comes from comparison vectors of random record pairs, m and the prior from EM over the
candidate pairs' vectors; both reach the driver only as distinct-vector counts.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import pandas as pd
from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from udp_spark.config import ModelSettings
from udp_spark.matching.comparisons import Comparison, comparison_vectors, pair_frame
from udp_spark.matching.fellegi_sunter import MISSING, FSModel, estimate_u, fit_em


def random_pairs(records: DataFrame, n_records: int, max_pairs: int, seed: int) -> DataFrame:
    """About ``max_pairs`` random distinct record pairs (a cross join of a sample)."""
    k = min(n_records, int(math.sqrt(2 * max_pairs)) + 1)
    fraction = min(1.0, 1.2 * k / max(n_records, 1))
    sample = (records.select("record_id").sample(False, fraction, seed)
              .orderBy(F.rand(seed)).limit(k))
    left = sample.select(F.col("record_id").alias("record_id_l"))
    right = sample.select(F.col("record_id").alias("record_id_r"))
    return left.crossJoin(right).filter(F.col("record_id_l") < F.col("record_id_r"))


def vector_counts(vectors: DataFrame, comparisons: Sequence[Comparison]) -> pd.DataFrame:
    """Distinct comparison vectors with their counts (small: bounded by the level grid)."""
    names = [c.name for c in comparisons]
    return vectors.groupBy(*names).agg(F.count("*").alias("n")).toPandas()


def train_fellegi_sunter(records: DataFrame, pairs: DataFrame, comparisons: Sequence[Comparison],
                         n_records: int, settings: ModelSettings) -> FSModel:
    """Fit u on random pairs and m + prior by EM on candidate ``pairs``."""
    names = [c.name for c in comparisons]
    levels = {c.name: [MISSING, *range(0, c.top_level + 1)] for c in comparisons}
    labels = {c.name: c.level_labels for c in comparisons}
    tops = {c.name: c.top_level for c in comparisons}
    tf_cols = {c.name: c.tf_column for c in comparisons if c.tf_column}
    rand = random_pairs(records, n_records, settings.random_pairs, settings.seed)
    rand_counts = vector_counts(
        pair_frame(records, rand).transform(comparison_vectors(comparisons)), comparisons)
    u = estimate_u(rand_counts, names, levels)
    cand_counts = vector_counts(
        pair_frame(records, pairs).transform(comparison_vectors(comparisons)), comparisons)
    return fit_em(cand_counts, names, levels, u, labels=labels, top_levels=tops,
                  tf_columns=tf_cols, max_iterations=settings.em_max_iterations)
