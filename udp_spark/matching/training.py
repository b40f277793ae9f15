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
from udp_spark.matching.scoring import FULL_NAME


def random_pairs(records: DataFrame, n_records: int, max_pairs: int, seed: int) -> DataFrame:
    """About ``max_pairs`` random distinct record pairs (a cross join of a sample).

    The sample is the ``k`` records with the smallest seeded hash of their id, so it does
    not depend on how the records happen to be partitioned or ordered: the same records
    give the same u, and the same model, on every run.
    """
    k = min(n_records, int(math.sqrt(2 * max_pairs)) + 1)
    sample = (records.select("record_id")
              .orderBy(F.xxhash64("record_id", F.lit(seed)), "record_id").limit(k))
    left = sample.select(F.col("record_id").alias("record_id_l"))
    right = sample.select(F.col("record_id").alias("record_id_r"))
    return left.crossJoin(right).filter(F.col("record_id_l") < F.col("record_id_r"))


def vector_counts(vectors: DataFrame, comparisons: Sequence[Comparison]) -> pd.DataFrame:
    """Distinct comparison vectors with their counts (small: bounded by the level grid)."""
    names = [c.name for c in comparisons]
    return vectors.groupBy(*names).agg(F.count("*").alias("n")).toPandas()


# EM training sessions, as in Splink: each runs on pairs that agree exactly on some columns,
# with the comparisons on those columns left out (they carry no information there). Sessions
# are chosen so that the non-matches inside them look like random pairs on the comparisons
# being estimated (people sharing a birth date, namesakes), which is what the u estimated
# from random pairs assumes. Each session sees a biased slice of the matches (pairs sharing a
# birth date come from the sources that hold one, which also hold full names), so a
# comparison's m is the average over every session that estimates it, as Splink does.
TRAINING_SESSIONS: tuple[tuple[tuple[str, ...], tuple[str, ...]], ...] = (
    (("date_of_birth",), ("date_of_birth",)),
    (("given_name_norm", "family_name_norm"), ("given_name", "family_name")),
    (("email_canonical",), ("email",)),
)
MAX_TRAINING_BLOCK = 50


def session_pairs(records: DataFrame, columns: Sequence[str], max_pairs: int,
                  seed: int) -> DataFrame:
    """Pairs agreeing exactly on ``columns`` (blocks above MAX_TRAINING_BLOCK skipped)."""
    present = records.filter(F.greatest(*[F.col(c).isNull() for c in columns]) == F.lit(False)) \
        if len(columns) > 1 else records.filter(F.col(columns[0]).isNotNull())
    key = F.concat_ws("|", *[F.col(c).cast("string") for c in columns])
    keyed = present.select("record_id", key.alias("_k"))
    sizes = keyed.groupBy("_k").agg(F.count("*").alias("_n")).filter(
        (F.col("_n") >= 2) & (F.col("_n") <= MAX_TRAINING_BLOCK))
    keyed = keyed.join(sizes, "_k")
    pairs = (keyed.select(F.col("record_id").alias("record_id_l"), "_k")
             .join(keyed.select(F.col("record_id").alias("record_id_r"), "_k"), "_k")
             .filter(F.col("record_id_l") < F.col("record_id_r"))
             .select("record_id_l", "record_id_r"))
    return pairs.orderBy(F.xxhash64("record_id_l", "record_id_r", F.lit(seed))).limit(max_pairs)


def train_fellegi_sunter(records: DataFrame, pairs: DataFrame, comparisons: Sequence[Comparison],
                         n_records: int, settings: ModelSettings) -> FSModel:
    """u from random pairs; m by EM sessions (see TRAINING_SESSIONS); then the prior match
    rate of the candidate ``pairs`` by EM with m and u held."""
    names = [c.name for c in comparisons]
    levels = {c.name: [MISSING, *range(0, c.top_level + 1)] for c in comparisons}
    labels = {c.name: c.level_labels for c in comparisons}
    tops = {c.name: c.top_level for c in comparisons}
    tf_cols = {c.name: c.tf_column for c in comparisons if c.tf_column}
    rand = random_pairs(records, n_records, settings.random_pairs, settings.seed)
    rand_counts = vector_counts(
        pair_frame(records, rand).transform(comparison_vectors(comparisons)), comparisons)
    u = estimate_u(rand_counts, names, levels)

    estimates: dict[str, list[dict[int, float]]] = {n: [] for n in names}
    for columns, fixed in TRAINING_SESSIONS:
        sp = session_pairs(records, columns, settings.random_pairs, settings.seed)
        counts = vector_counts(pair_frame(records, sp).transform(comparison_vectors(comparisons)),
                               comparisons)
        if counts["n"].sum() < 100:
            continue  # too little data in this session (e.g. no birth dates at all)
        est = [n for n in names if n not in fixed]
        session = fit_em(counts, est, levels, u, labels=labels, top_levels=tops, prior=0.5,
                         max_iterations=settings.em_max_iterations)
        for n in est:
            estimates[n].append(session.m[n])
    m = {n: {lv: sum(e[lv] for e in estimates[n]) / len(estimates[n]) for lv in estimates[n][0]}
         for n in names if estimates[n]}
    cand_counts = vector_counts(
        pair_frame(records, pairs).transform(comparison_vectors(comparisons)), comparisons)
    model = fit_em(cand_counts, names, levels, u, labels=labels, top_levels=tops,
                   tf_columns=tf_cols, max_iterations=settings.em_max_iterations, fixed_m=m)
    # EM gives the match rate among candidate pairs. Scores use the rate among *all* record
    # pairs, so that the evidence needed grows with the data: with a million records two
    # "John Smith"s are less likely the same person than with a thousand.
    n_candidates = float(cand_counts["n"].sum())
    all_pairs = max(n_records * (n_records - 1) / 2, 1.0)
    if {"given_name", "family_name"} <= set(tf_cols):
        model.joint_tf = {FULL_NAME: ["given_name", "family_name"]}
    model.candidate_prior = model.prior
    model.prior = min(max(model.prior * n_candidates / all_pairs, 1e-12), 0.5)
    return model
