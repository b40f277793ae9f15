"""The whole pipeline as ``spark-submit jobs/run.py`` on a real Spark standalone cluster (a
master and two workers, executors in their own JVMs), killed with SIGKILL in the middle
and resumed, against the same command in local mode: the same partition of records into
customers and the same profiles. These are the README's "Running on a cluster" commands.
A second ``udp run`` on unchanged input then runs no stage."""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
from datetime import date
from pathlib import Path

import pytest
from pyspark.sql import SparkSession
from pyspark.sql import functions as F

from udp_spark import io
from udp_spark.config import load_config
from udp_spark.faults import CRASH_AT, CRASH_MODE
from udp_spark.generate import generate
from udp_spark.pipeline.context import StageContext
from udp_spark.platform.standalone import LocalStandaloneCluster
from udp_spark.profile.build import CONTENT_COLUMNS
from udp_spark.tables import GOLD_CUSTOMER_PROFILE, GOLD_IDENTITY_XREF

REPO = Path(__file__).resolve().parents[1]
CONFIG = REPO / "conf" / "pipeline.yaml"
BIN = Path(sys.executable).parent
pytestmark = pytest.mark.slow


def _env(**extra: str) -> dict[str, str]:
    # spark-submit finds its Spark home through the python on PATH: the venv's
    return {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}", **extra}


def _submit(master: str, data: Path, lake: Path, cwd: Path, **env: str
            ) -> subprocess.CompletedProcess[str]:
    args = subprocess.run([str(BIN / "udp"), "submit-args", "--config", str(CONFIG)],
                          capture_output=True, text=True, check=True, env=_env()).stdout
    cmd = [str(BIN / "spark-submit"), "--master", master, *shlex.split(args),
           str(REPO / "jobs" / "run.py"), "--config", str(CONFIG), "--data-root", str(data),
           "--lakehouse", str(lake)]
    cwd.mkdir(parents=True, exist_ok=True)  # MLflow's sqlite:///mlflow.db lives here
    return subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, env=_env(**env),
                          timeout=1200)


def _summary(out: subprocess.CompletedProcess[str]) -> dict[str, str]:
    """Stage -> status from the run's summary lines."""
    rows = [line.split() for line in out.stdout.splitlines() if line.startswith("  ")]
    return {r[0]: r[1] for r in rows if len(r) > 1}


def _by_records(spark: SparkSession, lake: Path) -> dict[frozenset[str], str]:
    """Each customer's profile content (no ids, run ids or times), keyed by its records."""
    cfg = load_config(CONFIG, lakehouse_root=str(lake))
    ctx = StageContext(spark, cfg)
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
        spark: SparkSession, tmp_path: Path) -> None:
    data = tmp_path / "data"
    generate(data, people=120, seed=7)

    local = _submit("local[2]", data, tmp_path / "local" / "lake", tmp_path / "local")
    assert local.returncode == 0, local.stderr[-3000:]
    assert set(_summary(local).values()) <= {"ran", "skipped"}, local.stdout

    lake = tmp_path / "cluster" / "lake"
    with LocalStandaloneCluster(tmp_path / "cluster" / "spark", workers=2) as cluster:
        killed = _submit(cluster.master_url, data, lake, tmp_path / "cluster",
                         **{CRASH_AT: "resolve:after_identity_xref", CRASH_MODE: "kill"})
        assert killed.returncode != 0, killed.stdout
        assert not (lake / "gold" / "customer_profile").exists()  # publish never started
        assert cluster.status()["aliveworkers"] == 2
        resumed = _submit(cluster.master_url, data, lake, tmp_path / "cluster")
        assert resumed.returncode == 0, resumed.stderr[-3000:]
        # executors ran in the workers' own JVMs (one folder per executor in each work dir)
        for i in range(2):
            assert list((tmp_path / "cluster" / "spark" / f"worker-{i}" / "work").glob(
                "app-*/*/stderr")), f"worker {i} ran no executor"
    status = _summary(resumed)
    # resumed where it died: the stages before resolve had saved their watermarks
    assert status == {"ingest": "skipped", "standardize": "skipped", "block": "skipped",
                      "train": "skipped", "score": "skipped", "resolve": "ran",
                      "evaluate": "skipped", "publish": "ran"}, resumed.stdout

    got, want = _by_records(spark, lake), _by_records(spark, tmp_path / "local" / "lake")
    assert len(want) > 100
    assert set(got) == set(want)  # the same partition of records into customers
    diff = [k for k in want if got[k] != want[k]]
    assert not diff, json.dumps([(sorted(k), want[k], got[k]) for k in diff[:2]])[:2000]

    # Run again on unchanged input (in this process, against the local-mode lakehouse):
    # every stage is up to date.
    from udp_spark.pipeline.run import run_pipeline

    cfg = load_config(CONFIG, data_root=str(data), lakehouse_root=str(tmp_path / "local" / "lake"))
    cfg = cfg.model_copy(update={"mlflow": cfg.mlflow.model_copy(update={
        "tracking_uri": f"sqlite:///{tmp_path / 'local' / 'mlflow.db'}"})})
    again = run_pipeline(StageContext(spark, cfg))
    assert again.ran() == [] and not again.failed, again.lines()
    assert "nothing changed since the last run" in again.lines()[-1]
