"""EM recovers known m, u and prior from simulated comparison vectors; the match count from
two EM sessions (no Spark)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from udp_spark.matching.fellegi_sunter import MISSING, FSModel, estimate_u, fit_em
from udp_spark.matching.training import SessionFit, matches_from_sessions, not_estimated

COMPS = ["a", "b", "c"]
LEVELS = {c: [MISSING, 0, 1, 2] for c in COMPS}
TRUE_M = {"a": {0: 0.05, 1: 0.15, 2: 0.80}, "b": {0: 0.1, 1: 0.2, 2: 0.7},
          "c": {0: 0.02, 1: 0.08, 2: 0.9}}
TRUE_U = {"a": {0: 0.90, 1: 0.08, 2: 0.02}, "b": {0: 0.8, 1: 0.15, 2: 0.05},
          "c": {0: 0.95, 1: 0.04, 2: 0.01}}


def _simulate(n: int, prior: float, seed: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    rng = np.random.default_rng(seed)
    is_match = rng.random(n) < prior
    data = {}
    for c in COMPS:
        m = [TRUE_M[c][k] for k in (0, 1, 2)]
        u = [TRUE_U[c][k] for k in (0, 1, 2)]
        lv = np.where(is_match, rng.choice(3, n, p=m), rng.choice(3, n, p=u))
        lv[rng.random(n) < 0.1] = MISSING  # missing is its own level
        data[c] = lv
    cand = pd.DataFrame(data).value_counts().rename("n").reset_index()
    rand = pd.DataFrame({c: np.random.default_rng(seed + 1).choice(
        3, n, p=[TRUE_U[c][k] for k in (0, 1, 2)]) for c in COMPS}).value_counts().rename(
        "n").reset_index()
    return cand, rand


def test_em_recovers_parameters() -> None:
    cand, rand = _simulate(200_000, prior=0.3, seed=1)
    u = estimate_u(rand, COMPS, LEVELS)
    for c in COMPS:
        for k in (0, 1, 2):
            assert u[c][k] == pytest.approx(TRUE_U[c][k], abs=0.01)
    labels = {c: {2: "exact", 1: "close", 0: "else", -1: "missing"} for c in COMPS}
    model = fit_em(cand, COMPS, LEVELS, u, labels=labels, top_levels={c: 2 for c in COMPS})
    assert model.converged
    assert model.prior == pytest.approx(0.3, abs=0.02)
    for c in COMPS:
        for k in (0, 1, 2):
            assert model.m[c][k] == pytest.approx(TRUE_M[c][k], abs=0.03)
    assert model.weight("c", 2) > model.weight("c", 1) > 0 > model.weight("c", 0)


def test_u_is_estimated_among_non_matches() -> None:
    """Random pairs hold matches at the prior rate; for a strong level they are most of the
    random pairs at it, and u counted over all of them overstates it."""
    u_true = {0: 0.98, 1: 0.0199, 2: 0.0001}
    m_true = {0: 0.05, 1: 0.15, 2: 0.8}
    prior, pairs = 2e-4, 1_000_000
    counts = pd.DataFrame({"c": [0, 1, 2], "n": [
        pairs * (1 - prior) * u_true[k] + pairs * prior * m_true[k] for k in (0, 1, 2)]})
    levels = {"c": [-1, 0, 1, 2]}
    raw = estimate_u(counts, ["c"], levels)["c"]
    net = estimate_u(counts, ["c"], levels, m={"c": m_true}, prior=prior)["c"]
    assert raw[2] > 2.5 * u_true[2]  # 100 non-matches and 160 matches share the value
    assert net[2] == pytest.approx(u_true[2], rel=0.02)
    assert net[0] == pytest.approx(u_true[0], rel=1e-3)
    assert sum(net.values()) == pytest.approx(1.0)
    # a level the matches fully explain is still possible, as rare as one unseen pair
    over = estimate_u(counts, ["c"], levels, m={"c": {0: 0.0, 1: 0.0, 2: 1.0}}, prior=0.01)["c"]
    assert 0 < over[2] < 1e-5


def test_model_json_round_trip() -> None:
    cand, rand = _simulate(20_000, prior=0.2, seed=3)
    u = estimate_u(rand, COMPS, LEVELS)
    labels = {c: {2: "exact", 1: "close", 0: "else", -1: "missing"} for c in COMPS}
    model = fit_em(cand, COMPS, LEVELS, u, labels=labels, top_levels={c: 2 for c in COMPS})
    again = FSModel.from_json(model.to_json())
    assert again.m == model.m and again.u == model.u and again.prior == model.prior
    table = again.weights_table()
    assert set(table["comparison"]) == set(COMPS) and len(table) == 12


def test_em_at_its_iteration_cap_warns(caplog: pytest.LogCaptureFixture) -> None:
    cand, rand = _simulate(20_000, prior=0.2, seed=3)
    u = estimate_u(rand, COMPS, LEVELS)
    labels = {c: {2: "exact", 1: "close", 0: "else", -1: "missing"} for c in COMPS}
    with caplog.at_level("WARNING", logger="udp_spark.matching.fellegi_sunter"):
        model = fit_em(cand, COMPS, LEVELS, u, labels=labels, max_iterations=2,
                       top_levels={c: 2 for c in COMPS}, name="session on dob")
    assert not model.converged and model.em_iterations == 2
    assert any("session on dob" in r.message and "iteration cap (2)" in r.message
               for r in caplog.records)


def test_comparisons_no_pair_carries_are_not_estimated_nor_listed() -> None:
    """A source set without any loyalty card: every random and session pair is missing
    there, so its m and u would be equal placeholders."""
    rand = pd.DataFrame({"a": [2, 0, MISSING], "c": [MISSING] * 3, "n": [5, 90, 5]})
    session = pd.DataFrame({"a": [2, 1], "c": [MISSING, MISSING], "n": [50, 3]})
    assert not_estimated(rand, [session], ["a", "c"]) == ["c"]
    assert not_estimated(rand, [session.assign(c=[2, MISSING])], ["a", "c"]) == []
    cand, rand3 = _simulate(20_000, prior=0.2, seed=3)
    u = estimate_u(rand3, COMPS, LEVELS)
    labels = {c: {2: "exact", 1: "close", 0: "else", -1: "missing"} for c in COMPS}
    model = fit_em(cand, COMPS, LEVELS, u, labels=labels, top_levels={c: 2 for c in COMPS})
    model.not_estimated = ["c"]
    again = FSModel.from_json(model.to_json())
    assert set(again.weights_table()["comparison"]) == {"a", "b"}
    assert again.weight("c", 2) == 0.0 and again.weight("a", 2) > 0


def _session(pop: pd.DataFrame, fixed: str, u: dict[str, dict[int, float]]) -> SessionFit:
    """An EM session over the simulated pairs agreeing exactly (level 2) on ``fixed``."""
    inside = pop[pop[fixed] == 2]
    counts = inside[COMPS].value_counts().rename("n").reset_index()
    est = [c for c in COMPS if c != fixed]
    labels = {c: {2: "exact", 1: "close", 0: "else", -1: "missing"} for c in COMPS}
    model = fit_em(counts, est, LEVELS, u, labels=labels, top_levels={c: 2 for c in COMPS},
                   prior=0.5)
    return SessionFit({fixed: 2}, float(len(inside)), counts, model, est)


def _population(n: int, true_matches: int, seed: int) -> pd.DataFrame:
    """``n`` record pairs, the first ``true_matches`` matches, levels drawn from TRUE_M and
    TRUE_U; comparison c missing on 10% of them."""
    rng = np.random.default_rng(seed)
    is_match = np.zeros(n, dtype=bool)
    is_match[:true_matches] = True
    pop = pd.DataFrame({c: np.where(
        is_match, rng.choice(3, n, p=[TRUE_M[c][k] for k in (0, 1, 2)]),
        rng.choice(3, n, p=[TRUE_U[c][k] for k in (0, 1, 2)])) for c in COMPS})
    pop.loc[rng.random(n) < 0.1, "c"] = MISSING
    return pop


def test_matches_are_estimated_from_two_sessions_not_the_candidates() -> None:
    # 3M record pairs, 3,000 of them matches: the rate among all pairs a million records
    # give. Each session sees pairs agreeing on one comparison; EM there is well posed.
    true_matches = 3_000
    pop = _population(3_000_000, true_matches, seed=7)
    u = {c: dict(TRUE_U[c]) for c in COMPS}
    fits = [_session(pop, "a", u), _session(pop, "c", u)]
    # pairs agreeing on a: 0.8 of the matches; on c: 0.9 of the 90% with c present
    assert fits[0].matches == pytest.approx(0.8 * true_matches, rel=0.1)
    assert fits[1].share_agreeing({"a": 2}) == pytest.approx(0.8, abs=0.05)
    assert matches_from_sessions(fits) == pytest.approx(true_matches, rel=0.1)
    # One session alone cannot say what share of the matches it holds.
    assert matches_from_sessions(fits[:1]) is None
    # A session holding too few matches (10 pairs) does not count.
    empty = SessionFit({"b": 2}, 10.0, fits[0].counts, fits[0].model, ["b", "c"])
    assert matches_from_sessions([fits[0], empty]) is None


def test_m_is_pooled_over_sessions_by_the_matches_each_holds() -> None:
    """A session holding few matches with a comparison present moves its m little: an
    unweighted average let it weigh as much as a session holding thousands."""
    from dataclasses import replace

    from udp_spark.matching.training import pooled_m

    true_matches = 3_000
    pop = _population(1_000_000, true_matches, seed=11)
    u = {c: dict(TRUE_U[c]) for c in COMPS}
    big = _session(pop, "a", u)
    # the session on a holds 0.8 of the matches, 90% of them with c present
    assert big.matches_holding("c") == pytest.approx(0.8 * 0.9 * true_matches, rel=0.1)
    assert big.matches_holding("b") == pytest.approx(0.8 * true_matches, rel=0.1)
    # a small session whose m of b is far off: 50 pairs, so about 2 matches
    skewed = replace(big.model, m={**big.model.m, "b": {0: 0.9, 1: 0.05, 2: 0.05}})
    small = SessionFit({"x": 2}, 50.0, big.counts, skewed, ["b", "c"])
    m = pooled_m([big, small], ["a", "b", "c"])
    assert set(m) == {"b", "c"}  # no session estimates a
    assert m["b"][2] == pytest.approx(TRUE_M["b"][2], abs=0.03)
    assert sum(m["b"].values()) == pytest.approx(1.0)
