"""Fitting the unsupervised Fellegi-Sunter matcher on Spark data.

u comes from comparison vectors of random record pairs, m and the prior from EM sessions
(pairs agreeing exactly on a few columns); all reach the driver only as distinct-vector
counts.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from udp_spark.config import ModelSettings
from udp_spark.matching.comparisons import (
    FULL_NAME,
    Comparison,
    comparison_settings,
    comparison_vectors,
    pair_frame,
)
from udp_spark.matching.fellegi_sunter import MISSING, FSModel, estimate_u, fit_em, posteriors

log = logging.getLogger(__name__)


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
# from random pairs assumes. Each session sees a slice of the matches (pairs sharing a birth
# date come from the sources that hold one), so a comparison's m is pooled over every session
# that estimates it, each weighted by the matches it holds with that comparison (pooled_m).
TRAINING_SESSIONS: tuple[tuple[tuple[str, ...], tuple[str, ...]], ...] = (
    (("date_of_birth",), ("date_of_birth",)),
    (("given_name_norm", "family_name_norm"), ("given_name", "family_name")),
    (("email_canonical",), ("email",)),
)
MAX_TRAINING_BLOCK = 50
#: a session holding fewer estimated matches than this does not estimate the prior
MIN_SESSION_MATCHES = 50.0


def _session_blocks(records: DataFrame, columns: Sequence[str]) -> tuple[DataFrame, DataFrame]:
    """``(record_id, _k)`` of records holding every column, and ``(_k, _n)`` of the blocks
    of 2 to MAX_TRAINING_BLOCK records agreeing exactly on them."""
    present = records.filter(F.greatest(*[F.col(c).isNull() for c in columns]) == F.lit(False)) \
        if len(columns) > 1 else records.filter(F.col(columns[0]).isNotNull())
    key = F.concat_ws("|", *[F.col(c).cast("string") for c in columns])
    keyed = present.select("record_id", key.alias("_k"))
    sizes = keyed.groupBy("_k").agg(F.count("*").alias("_n")).filter(
        (F.col("_n") >= 2) & (F.col("_n") <= MAX_TRAINING_BLOCK))
    return keyed, sizes


def session_pairs(records: DataFrame, columns: Sequence[str], max_pairs: int,
                  seed: int) -> DataFrame:
    """Pairs agreeing exactly on ``columns`` (blocks above MAX_TRAINING_BLOCK skipped)."""
    keyed, sizes = _session_blocks(records, columns)
    keyed = keyed.join(sizes, "_k")
    pairs = (keyed.select(F.col("record_id").alias("record_id_l"), "_k")
             .join(keyed.select(F.col("record_id").alias("record_id_r"), "_k"), "_k")
             .filter(F.col("record_id_l") < F.col("record_id_r"))
             .select("record_id_l", "record_id_r"))
    return pairs.orderBy(F.xxhash64("record_id_l", "record_id_r", F.lit(seed))).limit(max_pairs)


def session_population(records: DataFrame, columns: Sequence[str]) -> float:
    """How many pairs :func:`session_pairs` samples from (before its ``max_pairs`` limit)."""
    _, sizes = _session_blocks(records, columns)
    row = sizes.agg(F.sum(F.col("_n") * (F.col("_n") - 1) / 2).alias("p")).first()
    return float(row["p"] or 0.0) if row else 0.0


@dataclass
class SessionFit:
    """One EM session: its pairs' comparison-vector counts and what EM made of them."""

    fixed: dict[str, int]  # the session's own comparisons -> their exact (top) level
    population: float  # pairs in the session's blocks
    counts: pd.DataFrame
    model: FSModel
    estimated: list[str]  # the comparisons the session estimates

    @property
    def matches(self) -> float:
        """Estimated matching pairs among the session's population."""
        return self.population * self.model.prior

    def matches_holding(self, comparison: str) -> float:
        """Estimated matches among the session's population with ``comparison`` present on
        both sides: how much the session's m of it rests on."""
        n = self.counts["n"].to_numpy(dtype=float)
        w = n * posteriors(self.counts, self.estimated, self.model.m, self.model.u,
                           self.model.prior)
        present = self.counts[comparison].to_numpy(dtype=int) != MISSING
        sampled = float(n.sum())
        return float(w[present].sum()) * self.population / sampled if sampled > 0 else 0.0

    def share_agreeing(self, levels: dict[str, int]) -> float:
        """Estimated share of this session's matches at ``levels`` on every comparison named
        there (a missing value counts as not agreeing)."""
        w = self.counts["n"].to_numpy(dtype=float) * posteriors(
            self.counts, self.estimated, self.model.m, self.model.u, self.model.prior)
        agree = np.ones(len(self.counts), dtype=bool)
        for c, lv in levels.items():
            agree &= self.counts[c].to_numpy(dtype=int) == lv
        total = float(w.sum())
        return float(w[agree].sum()) / total if total > 0 else 0.0


def matches_from_sessions(fits: Sequence[SessionFit]) -> float | None:
    """Estimated matching pairs among *all* record pairs, from two EM sessions; None when
    fewer than two sessions hold enough matches.

    Session A (pairs agreeing exactly on A's columns) holds ``N_A * prior_A`` matches: the
    share ``q`` of all matches that agree on A's columns. ``q`` is read off session B, as
    the share of B's matches that also agree on A's columns (B estimates those comparisons,
    so they are free there). So all matches = ``N_A * prior_A / q``; the estimate is the
    geometric mean of it both ways round. The two sessions holding the most matches are used:
    they are the least biased slice of the matches (a session on a value few sources hold,
    such as a birth date, sees mostly those sources).

    Inside a session the non-matches look like random pairs, so EM there is well posed; EM
    over the candidate pairs is not (blocked households and namesakes agree on much more
    than random pairs do, and read as matches), and overstates the matches by a factor that
    grows with the data.
    """
    usable = sorted((f for f in fits if f.matches >= MIN_SESSION_MATCHES),
                    key=lambda f: f.matches, reverse=True)[:2]
    if len(usable) < 2:
        return None
    a, b = usable
    q_a, q_b = b.share_agreeing(a.fixed), a.share_agreeing(b.fixed)
    if q_a <= 0 or q_b <= 0:
        return None
    return math.sqrt(a.matches / q_a * b.matches / q_b)


def pooled_m(fits: Sequence[SessionFit], names: Sequence[str]) -> dict[str, dict[int, float]]:
    """m of each comparison over the sessions that estimate it, each session's estimate
    weighted by the matches it holds with the comparison present on both sides
    (:meth:`SessionFit.matches_holding`).

    An unweighted average let a session holding few matches with a value weigh as much as
    one holding most of them: with an electoral roll (name and address, no birth date or
    e-mail), the birth-date session held 105 matches with an address on both sides and the
    name session 5,817, and the average put an address differing between records years
    apart at m 0.067 where the truth was 0.155 (pooled: 0.141).
    """
    m: dict[str, dict[int, float]] = {}
    for n in names:
        held = [(f.model.m[n], f.matches_holding(n)) for f in fits if n in f.estimated]
        if not held:
            continue
        total = sum(w for _, w in held)
        share = [(e, w / total if total > 0 else 1.0 / len(held)) for e, w in held]
        m[n] = {lv: sum(e[lv] * w for e, w in share) for lv in held[0][0]}
    return m


def not_estimated(random_counts: pd.DataFrame, session_counts: Sequence[pd.DataFrame],
                  names: Sequence[str]) -> list[str]:
    """The comparisons no pair has data for on both sides, neither among the random pairs
    (u) nor in any EM session (m): a field no source carries, or only sources whose records
    never meet. Their m and u would be placeholders (equal), so they are marked instead."""
    def present(counts: pd.DataFrame, c: str) -> bool:
        return bool(counts.loc[counts[c] != MISSING, "n"].sum() > 0)

    return [c for c in names if not present(random_counts, c)
            and not any(present(sc, c) for sc in session_counts)]


def train_fellegi_sunter(records: DataFrame, pairs: DataFrame, comparisons: Sequence[Comparison],
                         n_records: int, settings: ModelSettings) -> FSModel:
    """u from random pairs; m by EM sessions (see TRAINING_SESSIONS); the prior match rate
    among all record pairs from two sessions (:func:`matches_from_sessions`), or, when the
    data has too few, by EM over the candidate ``pairs`` with m and u held."""
    names = [c.name for c in comparisons]
    levels = {c.name: [MISSING, *range(0, c.top_level + 1)] for c in comparisons}
    labels = {c.name: c.level_labels for c in comparisons}
    tops = {c.name: c.top_level for c in comparisons}
    tf_cols = {c.name: c.tf_column for c in comparisons if c.tf_column}
    rand = random_pairs(records, n_records, settings.random_pairs, settings.seed)
    rand_counts = vector_counts(
        pair_frame(records, rand).transform(comparison_vectors(comparisons)), comparisons)
    u = estimate_u(rand_counts, names, levels)

    sessions: list[tuple[str, dict[str, int], float, pd.DataFrame, list[str]]] = []
    for columns, fixed in TRAINING_SESSIONS:
        sp = session_pairs(records, columns, settings.random_pairs, settings.seed)
        counts = vector_counts(pair_frame(records, sp).transform(comparison_vectors(comparisons)),
                               comparisons)
        if counts["n"].sum() < 100:
            continue  # too little data in this session (e.g. no birth dates at all)
        sessions.append((f"session on {'+'.join(columns)}",
                         {c: tops[c] for c in fixed if c in tops},
                         session_population(records, columns), counts,
                         [n for n in names if n not in fixed]))
    unseen = not_estimated(rand_counts, [s[3] for s in sessions], names)
    if unseen:
        log.info("no record pair carries %s on both sides: not estimated, weighing nothing",
                 ", ".join(unseen))

    def fit_sessions(u: dict[str, dict[int, float]]) -> tuple[list[SessionFit],
                                                               dict[str, dict[int, float]]]:
        fits = [SessionFit(fixed, population, counts, fit_em(
            counts, est, levels, u, labels=labels, top_levels=tops, prior=0.5,
            max_iterations=settings.em_max_iterations, name=name), est)
            for name, fixed, population, counts, est in sessions]
        return fits, pooled_m(fits, names)

    fits, m = fit_sessions(u)
    all_pairs = max(n_records * (n_records - 1) / 2, 1.0)
    matches = matches_from_sessions(fits) if settings.prior == "sessions" else None
    if matches is not None:
        # Once m and the match rate are known, u is re-estimated among non-matches only
        # (estimate_u) and the sessions are fitted again with it: one round settles it.
        u = estimate_u(rand_counts, names, levels, m=m, prior=matches / all_pairs)
        fits, m = fit_sessions(u)
        matches = matches_from_sessions(fits) or matches
    if matches is not None:
        model = FSModel(
            comparisons=names, levels={c: sorted(levels[c]) for c in names}, labels=labels,
            m=m, u=u, prior=matches / all_pairs, tf_columns=tf_cols, top_levels=tops,
            em_iterations=max((f.model.em_iterations for f in fits), default=0),
            converged=all(f.model.converged for f in fits), prior_method="sessions")
    else:
        if settings.prior == "sessions":
            log.warning("prior: fewer than two EM sessions hold %d matches; estimating it "
                        "from the candidate pairs instead", int(MIN_SESSION_MATCHES))
        cand_counts = vector_counts(
            pair_frame(records, pairs).transform(comparison_vectors(comparisons)), comparisons)
        model = fit_em(cand_counts, names, levels, u, labels=labels, top_levels=tops,
                       tf_columns=tf_cols, max_iterations=settings.em_max_iterations,
                       fixed_m=m)
        # EM gives the match rate among candidate pairs; scores use the rate among *all*
        # record pairs, so that the evidence needed grows with the data.
        model.candidate_prior = model.prior
        model.prior = model.prior * float(cand_counts["n"].sum()) / all_pairs
    # With a million records two "John Smith"s are less likely the same person than with a
    # thousand: the prior is the match rate among all pairs.
    model.prior = min(max(model.prior, 1e-12), 0.5)
    model.not_estimated = unseen
    model.comparison_settings = comparison_settings(comparisons)
    if {"given_name", "family_name"} <= set(tf_cols):
        model.joint_tf = {FULL_NAME: ["given_name", "family_name"]}
    model.shared_tf = {c.name: c.tf_table for c in comparisons
                       if c.tf_table and c.tf_table in model.joint_tf}
    return model
