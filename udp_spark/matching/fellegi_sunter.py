"""Fellegi-Sunter matcher: m and u probabilities per comparison level, fitted without labels.

* u (the chance a level is seen on a non-matching pair) from random record pairs, where
  matches are negligibly rare;
* m (the same on matching pairs) and the prior match rate by expectation maximisation over the
  candidate pairs' comparison vectors, with u held fixed (as Splink does).

EM runs on the distinct comparison vectors with their counts (a few thousand rows whatever the
data size), so it is exact and fast on the driver. Scoring is pure Spark column expressions.
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

log = logging.getLogger(__name__)

MISSING = -1
_EPS = 1e-6


@dataclass
class FSModel:
    """Parameters of a fitted Fellegi-Sunter model (JSON-serializable)."""

    comparisons: list[str]
    levels: dict[str, list[int]]
    labels: dict[str, dict[int, str]]
    m: dict[str, dict[int, float]]
    u: dict[str, dict[int, float]]
    prior: float
    tf_columns: dict[str, str] = field(default_factory=dict)
    #: joint term frequencies: name -> the two comparisons whose exact agreement together is
    #: checked against how often their values occur together (see scoring.joint_tf_table)
    joint_tf: dict[str, list[str]] = field(default_factory=dict)
    top_levels: dict[str, int] = field(default_factory=dict)
    em_iterations: int = 0
    converged: bool = False
    candidate_prior: float | None = None
    #: how the prior was estimated: "sessions" (matches_from_sessions in training) or
    #: "candidate_em" (EM over the candidate pairs; every model trained before sessions)
    prior_method: str = "candidate_em"
    #: comparisons no record pair could estimate (no source carries their fields on both
    #: sides): they weigh nothing and the weights table leaves them out
    not_estimated: list[str] = field(default_factory=list)
    #: comparison -> the settings its levels were built with (``address``: ``moved_years``),
    #: so that scoring builds the same levels (``comparisons.comparisons_named``); empty on
    #: models trained before any comparison had settings
    comparison_settings: dict[str, dict[str, int]] = field(default_factory=dict)
    #: comparison -> the term-frequency table its top level is weighed by, where that is
    #: not its own (``email_name``: ``full_name``, the joint table of ``joint_tf``)
    shared_tf: dict[str, str] = field(default_factory=dict)

    def bayes_factor(self, comparison: str, level: int) -> float:
        if level == MISSING or comparison in self.not_estimated:
            return 1.0
        return max(self.m[comparison][level], _EPS) / max(self.u[comparison][level], _EPS)

    def weight(self, comparison: str, level: int) -> float:
        """log2 Bayes factor of a level (its contribution to the match weight)."""
        return math.log2(self.bayes_factor(comparison, level))

    @property
    def prior_weight(self) -> float:
        return math.log2(self.prior / (1 - self.prior))

    def to_json(self) -> str:
        return json.dumps(self.__dict__, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> FSModel:
        d = json.loads(text)
        for key in ("labels", "m", "u"):
            d[key] = {c: {int(k): v for k, v in lv.items()} for c, lv in d[key].items()}
        return cls(**d)

    def weights_table(self) -> pd.DataFrame:
        """One row per comparison level: label, m, u, match weight (for charts and docs);
        comparisons in :attr:`not_estimated` are left out (their m and u would be
        placeholders)."""
        rows = []
        for c in self.comparisons:
            if c in self.not_estimated:
                continue
            for lv in sorted(self.levels[c], reverse=True):
                rows.append({"comparison": c, "level": lv, "label": self.labels[c][lv],
                             "m": self.m[c].get(lv, float("nan")),
                             "u": self.u[c].get(lv, float("nan")),
                             "weight": self.weight(c, lv) if lv != MISSING else 0.0})
        return pd.DataFrame(rows)


def estimate_u(counts: pd.DataFrame, comparisons: Sequence[str],
               levels: Mapping[str, Sequence[int]],
               m: Mapping[str, Mapping[int, float]] | None = None,
               prior: float = 0.0) -> dict[str, dict[int, float]]:
    """u per level from comparison-vector counts of random pairs (missing excluded).

    Random pairs hold matches too, at the rate ``prior``; given ``m`` and ``prior``, their
    expected share of each level (``prior x m``) is taken out first, so u is the rate among
    non-matches. That share is negligible for a weak level but not for a strong one: with a
    match rate of 1e-4 and an exact e-mail in 78% of matches, the matches explain nearly all
    of the random pairs sharing an e-mail, and without this step an exact e-mail alone
    scored p 0.25 where 98.7% of such candidate pairs were matches.
    """
    u: dict[str, dict[int, float]] = {}
    for c in comparisons:
        by_level = counts.groupby(c)["n"].sum()
        present = by_level[by_level.index != MISSING]
        total = float(present.sum())
        n_levels = len([lv for lv in levels[c] if lv != MISSING])
        net = {int(lv): float(present.get(lv, 0.0)) for lv in levels[c] if lv != MISSING}
        if m is not None and c in m and prior > 0:
            net = {lv: max(n - total * prior * m[c].get(lv, 0.0), 0.0) for lv, n in net.items()}
        # Laplace smoothing: a level never seen at random is rare, not impossible.
        denom = sum(net.values()) + n_levels
        u[c] = {lv: (n + 1.0) / denom for lv, n in net.items()}
    return u


M_FLOOR = 0.002  # no level is impossible among matches (typos, marriages, moves)


def _floor(dist: dict[int, float]) -> dict[int, float]:
    raised = {k: max(v, M_FLOOR) for k, v in dist.items()}
    total = sum(raised.values())
    return {k: v / total for k, v in raised.items()}


def _initial_m(levels: Sequence[int], top: int) -> dict[int, float]:
    """Start m with most mass on the strongest level, decreasing geometrically."""
    lv = sorted([x for x in levels if x != MISSING], reverse=True)
    raw = {x: 0.5 ** (top - x) if x > 0 else 0.02 for x in lv}
    s = sum(raw.values())
    return {x: v / s for x, v in raw.items()}


def posteriors(counts: pd.DataFrame, comparisons: Sequence[str],
               m: Mapping[str, Mapping[int, float]], u: Mapping[str, Mapping[int, float]],
               prior: float) -> np.ndarray:
    """P(match) of each comparison vector (row of ``counts``) under m, u and the prior, on
    ``comparisons`` only (a missing level carries no information)."""
    log_m = np.zeros(len(counts))
    log_u = np.zeros(len(counts))
    for c in comparisons:
        lv = counts[c].to_numpy(dtype=int)
        present = lv != MISSING
        mv = np.array([m[c].get(x, _EPS) if x != MISSING else 1.0 for x in lv])
        uv = np.array([u[c].get(x, _EPS) if x != MISSING else 1.0 for x in lv])
        log_m += np.where(present, np.log(np.maximum(mv, _EPS)), 0.0)
        log_u += np.where(present, np.log(np.maximum(uv, _EPS)), 0.0)
    a = np.log(prior) + log_m
    b = np.log(1 - prior) + log_u
    return np.asarray(1.0 / (1.0 + np.exp(np.clip(b - a, -700, 700))))


def fit_em(counts: pd.DataFrame, comparisons: Sequence[str],
           levels: Mapping[str, Sequence[int]], u: Mapping[str, Mapping[int, float]], *,
           labels: Mapping[str, Mapping[int, str]], top_levels: Mapping[str, int],
           tf_columns: Mapping[str, str] | None = None, prior: float = 0.1,
           max_iterations: int = 100, tolerance: float = 1e-5,
           fixed_m: Mapping[str, Mapping[int, float]] | None = None,
           name: str = "candidate pairs") -> FSModel:
    """Fit m and the prior by EM on candidate-pair comparison-vector ``counts`` (u fixed).

    Stopping at ``max_iterations`` before the parameters settle logs a warning (``name``
    says which fit) and leaves ``converged`` false on the model.

    Args:
        counts: one row per distinct comparison vector: a column per comparison with its
            level, and ``n`` (how many pairs have that vector).
    """
    n = counts["n"].to_numpy(dtype=float)
    lv = {c: counts[c].to_numpy(dtype=int) for c in comparisons}
    m = {c: dict(fixed_m[c]) if fixed_m and c in fixed_m else _initial_m(levels[c], top_levels[c])
         for c in comparisons}
    it, converged, change = 0, False, 0.0
    for it in range(1, max_iterations + 1):  # noqa: B007 - `it` is reported
        w = n * posteriors(counts, comparisons, m, u, prior)
        new_prior = float(np.clip(w.sum() / n.sum(), 1e-6, 1 - 1e-6))
        change = abs(new_prior - prior)
        new_m: dict[str, dict[int, float]] = {}
        for c in comparisons:
            present = lv[c] != MISSING
            denom = float(w[present].sum())
            k = len([x for x in levels[c] if x != MISSING])
            new_m[c] = {}
            for x in levels[c]:
                if x == MISSING:
                    continue
                num = float(w[present & (lv[c] == x)].sum())
                new_m[c][x] = (num + 1e-3) / (denom + 1e-3 * k)
            if fixed_m and c in fixed_m:
                new_m[c] = dict(fixed_m[c])
                continue
            new_m[c] = _floor(new_m[c])
            change = max(change, *(abs(v - m[c].get(x, 0.0)) for x, v in new_m[c].items()))
        m, prior = new_m, new_prior
        if change < tolerance:
            converged = True
            break
    if not converged:
        log.warning("EM (%s) stopped at its iteration cap (%d) before converging: the last "
                    "step still moved a parameter by %.2g (tolerance %.2g); raise "
                    "matching.model.em_max_iterations", name, max_iterations, change,
                    tolerance)
    return FSModel(
        comparisons=list(comparisons),
        levels={c: sorted(int(x) for x in levels[c]) for c in comparisons},
        labels={c: {int(k): v for k, v in labels[c].items()} for c in comparisons},
        m=m, u={c: dict(u[c]) for c in comparisons}, prior=prior,
        tf_columns=dict(tf_columns or {}), top_levels=dict(top_levels),
        em_iterations=it, converged=converged,
    )


def match_probability(weight: float) -> float:
    """P(match) of a match weight in log2 odds (no overflow at any weight)."""
    if weight >= 0:
        return 1.0 / (1.0 + 2.0 ** (-weight))
    return 2.0 ** weight / (1.0 + 2.0 ** weight)
