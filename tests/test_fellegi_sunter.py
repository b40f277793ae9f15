"""EM recovers known m, u and prior from simulated comparison vectors (no Spark)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from udp_spark.matching.fellegi_sunter import MISSING, FSModel, estimate_u, fit_em

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


def test_model_json_round_trip() -> None:
    cand, rand = _simulate(20_000, prior=0.2, seed=3)
    u = estimate_u(rand, COMPS, LEVELS)
    labels = {c: {2: "exact", 1: "close", 0: "else", -1: "missing"} for c in COMPS}
    model = fit_em(cand, COMPS, LEVELS, u, labels=labels, top_levels={c: 2 for c in COMPS})
    again = FSModel.from_json(model.to_json())
    assert again.m == model.m and again.u == model.u and again.prior == model.prior
    table = again.weights_table()
    assert set(table["comparison"]) == set(COMPS) and len(table) == 12
