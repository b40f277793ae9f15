"""Notebooks are Databricks source files that must parse and only call the library."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

NOTEBOOKS = sorted((Path(__file__).resolve().parents[1] / "notebooks").glob("*.py"))


def test_there_are_notebooks() -> None:
    assert NOTEBOOKS


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_parses_and_imports_only_udp_spark(path: Path) -> None:
    text = path.read_text()
    assert text.startswith("# Databricks notebook source\n")
    tree = ast.parse(text)
    modules = {n.module.split(".")[0] for n in ast.walk(tree)
               if isinstance(n, ast.ImportFrom) and n.module}
    modules |= {a.name.split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.Import)
                for a in n.names}
    assert modules <= {"udp_spark", "pyspark"}, modules
    # no function or class definitions: logic belongs in the library
    assert not [n for n in ast.walk(tree) if isinstance(n, ast.FunctionDef | ast.ClassDef)]


class _Widgets:
    """The part of ``dbutils.widgets`` the notebooks use; ``values`` are what a job passes."""

    def __init__(self, values: dict[str, str]) -> None:
        self.values, self.defaults = values, {}

    def text(self, name: str, default: str, label: str | None = None) -> None:
        self.defaults[name] = default

    def dropdown(self, name: str, default: str, choices: list[str],
                 label: str | None = None) -> None:
        assert default in choices
        self.defaults[name] = default

    def get(self, name: str) -> str:
        if name not in self.defaults:  # as on Databricks: a widget must be defined first
            raise ValueError(f"no widget named {name}")
        return self.values.get(name, self.defaults[name])


def _run_notebook(path: Path, spark: object, values: dict[str, str]) -> list[object]:
    """Execute a source notebook's code cells in order, as Databricks would; returns what
    it displayed (DataFrames collected, so a broken query fails here)."""
    import types

    import pandas as pd
    from pyspark.sql import DataFrame

    shown: list[object] = []

    def display(obj: object) -> None:
        if isinstance(obj, DataFrame):
            obj = obj.collect()
        elif isinstance(obj, pd.DataFrame):
            obj = obj.to_dict("records")
        shown.append(obj)

    dbutils = types.SimpleNamespace(widgets=_Widgets(values))
    namespace = {"spark": spark, "dbutils": dbutils, "display": display,
                 "__name__": "__main__"}
    text = path.read_text().removeprefix("# Databricks notebook source\n")
    for i, cell in enumerate(text.split("\n# COMMAND ----------\n")):
        if cell.strip().startswith("# MAGIC"):
            continue  # markdown
        exec(compile(cell, f"{path.name} cell {i}", "exec"), namespace)
    return shown


@pytest.mark.slow
def test_every_notebook_executes_in_order_on_small_data(
        spark: object, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    from udp_spark.generate import generate

    generate(tmp_path / "data", people=100, seed=13)
    monkeypatch.setenv("UDP_MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'mlflow.db'}")
    values = {"config": str(NOTEBOOKS[0].parents[1] / "conf" / "pipeline.yaml"),
              "data_root": str(tmp_path / "data"), "lakehouse": str(tmp_path / "lake"),
              "truth": str(tmp_path / "data" / "truth" / "records.csv")}
    names = [p.name for p in NOTEBOOKS]
    assert names == sorted(names) and len(names) >= 10
    shown, printed = {}, {}
    for p in NOTEBOOKS:
        shown[p.name] = _run_notebook(p, spark, values)
        printed[p.name] = capsys.readouterr().out

    ingest = shown["01_ingest_standardize.py"][0]
    assert isinstance(ingest, list) and sum(s["rows_written"] for s in ingest) > 300
    assert shown["02_block.py"][0][0]["candidate_pairs"] > 0
    assert shown["02_block.py"][0][0]["pair_completeness"] > 0.5
    assert any(r["weight"] > 0 for r in shown["03_train.py"][0])
    assert shown["04_score.py"][0][0]["pairs_scored"] > 0
    resolved = shown["05_resolve.py"][0][0]
    assert 0 < resolved["customers"] < resolved["records"]
    assert shown["06_evaluate.py"][0][0]["bcubed_f1"] > 0.8
    assert shown["07_publish.py"][0][0]["inserted"] == resolved["customers"]
    assert shown["08_stream.py"][0][0]["rows"] == 0  # everything had landed already
    assert "nothing changed since the last run" in printed["09_run.py"]
    sizes, weights, waterfall, segments, quality, quarantine = shown["10_explore.py"]
    assert sum(r["customers"] for r in sizes) == resolved["customers"]
    assert weights and waterfall and segments and quarantine
    assert {r["source"] for r in quality} >= {"crm", "webshop_customers"}
