"""The ways the pipeline is run besides ``udp <stage>``, on one set of generated data:

- every notebook of ``notebooks/``, executed cell by cell in order as Databricks would
  (a minimal ``dbutils.widgets`` and ``display``) against local Spark: the local-mode
  result;
- the README's "Running on a cluster" commands: ``spark-submit $(udp submit-args)
  jobs/run.py`` on a Spark standalone cluster (a master and two workers, executors in their
  own JVMs), SIGKILLed right after resolve's xref commit and started again: it resumes at
  resolve and ends with the same partition of records into customers and the same profiles
  as local mode; a further ``udp run`` on unchanged input runs no stage.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shlex
import subprocess
import sys
import types
from dataclasses import dataclass
from datetime import date
from io import StringIO
from pathlib import Path

import pandas as pd
import pytest
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from udp_spark import io
from udp_spark.config import load_config
from udp_spark.faults import CRASH_AT, CRASH_MODE
from udp_spark.generate import generate
from udp_spark.pipeline.context import StageContext
from udp_spark.platform.standalone import LocalStandaloneCluster
from udp_spark.profile.build import CONTENT_COLUMNS
from udp_spark.session import SHORT_RUN_JAVA_OPTIONS
from udp_spark.tables import GOLD_CUSTOMER_PROFILE, GOLD_IDENTITY_XREF

REPO = Path(__file__).resolve().parents[1]
CONFIG = REPO / "conf" / "pipeline.yaml"
NOTEBOOKS = sorted((REPO / "notebooks").glob("*.py"))
BIN = Path(sys.executable).parent
pytestmark = pytest.mark.slow
# The test session's settings, given to the cluster's jobs too: the same data in the same
# partitions, so that EM draws the same sample of pairs.
SAME_AS_TESTS = ["--conf", "spark.sql.shuffle.partitions=2", "--conf",
                 "spark.default.parallelism=2", "--conf", "spark.sql.adaptive.enabled=false",
                 "--conf", "spark.sql.codegen.wholeStage=false",
                 "--conf", "spark.sql.codegen.factoryMode=NO_CODEGEN"]


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


def _run_notebook(path: Path, spark: SparkSession, values: dict[str, str]) -> list[object]:
    """Execute a source notebook's code cells in order; returns what it displayed
    (DataFrames collected, so a broken query fails here)."""
    shown: list[object] = []

    def display(obj: object) -> None:
        if isinstance(obj, DataFrame):
            obj = obj.collect()
        elif isinstance(obj, pd.DataFrame):
            obj = obj.to_dict("records")
        shown.append(obj)

    namespace = {"spark": spark, "display": display, "__name__": "__main__",
                 "dbutils": types.SimpleNamespace(widgets=_Widgets(values))}
    text = path.read_text().removeprefix("# Databricks notebook source\n")
    for i, cell in enumerate(text.split("\n# COMMAND ----------\n")):
        if cell.strip().startswith("# MAGIC"):
            continue  # markdown
        exec(compile(cell, f"{path.name} cell {i}", "exec"), namespace)
    return shown


@dataclass
class Workspace:
    data: Path
    lake: Path  # built by the notebooks, in local mode
    base: Path
    shown: dict[str, list[object]]
    printed: dict[str, str]


@pytest.fixture(scope="module")
def workspace(spark: SparkSession, tmp_path_factory: pytest.TempPathFactory
              ) -> Workspace:
    base = tmp_path_factory.mktemp("workflows")
    generate(base / "data", people=120, seed=7)
    values = {"config": str(CONFIG), "data_root": str(base / "data"),
              "lakehouse": str(base / "lake"),
              "truth": str(base / "data" / "truth" / "records.csv")}
    shown, printed = {}, {}
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("UDP_MLFLOW_TRACKING_URI", f"sqlite:///{base / 'mlflow.db'}")
        for p in NOTEBOOKS:
            out = StringIO()
            with contextlib.redirect_stdout(out):
                shown[p.name] = _run_notebook(p, spark, values)
            printed[p.name] = out.getvalue()
    return Workspace(base / "data", base / "lake", base, shown, printed)


def test_every_notebook_executes_in_order_on_small_data(workspace: Workspace) -> None:
    names = [p.name for p in NOTEBOOKS]
    assert names == sorted(names) and len(names) >= 10
    shown = workspace.shown
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
    # the stages had all run (notebook by notebook): `udp run` finds nothing to do
    assert "nothing changed since the last run" in workspace.printed["09_run.py"]
    sizes, weights, waterfall, segments, quality, quarantine = shown["10_explore.py"]
    assert sum(r["customers"] for r in sizes) == resolved["customers"]
    assert weights and waterfall and segments and quarantine
    assert {r["source"] for r in quality} >= {"crm", "webshop_customers"}


def _env(**extra: str) -> dict[str, str]:
    # spark-submit finds its Spark home through the python on PATH: the venv's
    return {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}", **extra}


def _submit(master: str, data: Path, lake: Path, cwd: Path, **env: str
            ) -> subprocess.CompletedProcess[str]:
    args = subprocess.run([str(BIN / "udp"), "submit-args", "--config", str(CONFIG)],
                          capture_output=True, text=True, check=True, env=_env()).stdout
    # small data in short-lived JVMs: C1 only, serial GC (udp_spark.session)
    driver = "spark.driver.extraJavaOptions="
    argv = [f"{a} {SHORT_RUN_JAVA_OPTIONS}" if a.startswith(driver) else a
            for a in shlex.split(args)]
    assert any(a.startswith(driver) for a in argv), argv
    cmd = [str(BIN / "spark-submit"), "--master", master, *argv, *SAME_AS_TESTS,
           "--conf", f"spark.executor.extraJavaOptions={SHORT_RUN_JAVA_OPTIONS}",
           str(REPO / "jobs" / "run.py"), "--config", str(CONFIG), "--data-root", str(data),
           "--lakehouse", str(lake)]
    cwd.mkdir(parents=True, exist_ok=True)  # MLflow's sqlite:///mlflow.db lives here
    return subprocess.run(cmd, cwd=cwd, capture_output=True, text=True,
                          env=_env(**env, UDP_MLFLOW_TRACKING_URI="sqlite:///mlflow.db"),
                          timeout=1200)


def _summary(out: subprocess.CompletedProcess[str]) -> dict[str, str]:
    """Stage -> status from the run's summary lines."""
    rows = [line.split() for line in out.stdout.splitlines() if line.startswith("  ")]
    return {r[0]: r[1] for r in rows if len(r) > 1}


def _by_records(spark: SparkSession, lake: Path) -> dict[frozenset[str], str]:
    """Each customer's profile content (no ids, run ids or times), keyed by its records."""
    ctx = StageContext(spark, load_config(CONFIG, lakehouse_root=str(lake)))
    xref = io.read_table(spark, ctx.lakehouse.ref(GOLD_IDENTITY_XREF)).groupBy(
        "customer_id").agg(F.sort_array(F.collect_list("record_id")).alias("records"))
    content = [c for c in CONTENT_COLUMNS if c != "customer_id"]
    profiles = io.read_table(spark, ctx.lakehouse.ref(GOLD_CUSTOMER_PROFILE)).select(
        "customer_id", F.to_json(F.struct(*content)).alias("content"))
    # when a record was landed (a value's last_seen_at without a source time) differs
    # between two runs by design: it is the one thing not compared
    landed = re.compile(f'"{date.today().isoformat()}[T ][0-9:.]+Z?"')
    return {frozenset(r["records"]): landed.sub('"<landing time>"', r["content"] or "")
            for r in xref.join(profiles, "customer_id", "left").collect()}


def test_pipeline_on_a_standalone_cluster_resumes_after_kill_and_equals_local_mode(
        spark: SparkSession, workspace: Workspace) -> None:
    from udp_spark.pipeline.run import run_pipeline

    base = workspace.base / "cluster"
    lake = base / "lake"
    with LocalStandaloneCluster(base / "spark", workers=2) as cluster:
        killed = _submit(cluster.master_url, workspace.data, lake, base,
                         **{CRASH_AT: "resolve:after_identity_xref", CRASH_MODE: "kill"})
        assert killed.returncode != 0, killed.stdout
        assert (lake / "gold" / "identity_xref").exists()  # resolve had committed it
        assert not (lake / "gold" / "customer_profile").exists()  # publish never started
        assert cluster.status()["aliveworkers"] == 2
        resumed = _submit(cluster.master_url, workspace.data, lake, base)
        assert resumed.returncode == 0, resumed.stderr[-3000:]
        # executors ran in the workers' own JVMs (one folder per executor in each work dir)
        for i in range(2):
            assert list((base / "spark" / f"worker-{i}" / "work").glob("app-*/*/stderr")), \
                f"worker {i} ran no executor"
    # resumed where it died: the stages before resolve had saved their watermarks
    assert _summary(resumed) == {
        "ingest": "skipped", "standardize": "skipped", "block": "skipped",
        "train": "skipped", "score": "skipped", "resolve": "ran", "evaluate": "skipped",
        "publish": "ran"}, resumed.stdout

    got, want = _by_records(spark, lake), _by_records(spark, workspace.lake)
    assert len(want) > 50
    assert set(got) == set(want)  # the same partition of records into customers
    diff = [k for k in want if got[k] != want[k]]
    assert not diff, json.dumps([(sorted(k), want[k], got[k]) for k in diff[:2]])[:2000]

    # `udp run` again on unchanged input: every stage is up to date
    cfg = load_config(CONFIG, data_root=str(workspace.data), lakehouse_root=str(lake))
    cfg = cfg.model_copy(update={"mlflow": cfg.mlflow.model_copy(update={
        "tracking_uri": f"sqlite:///{base / 'mlflow.db'}"})})
    again = run_pipeline(StageContext(spark, cfg))
    assert again.ran() == [] and not again.failed, again.lines()
    assert "nothing changed since the last run" in again.lines()[-1]
