"""A stage killed mid-run leaves its MLflow run RUNNING; the next MLflow use closes it."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from mlflow import MlflowClient

from udp_spark.config import MlflowSettings
from udp_spark.platform.mlflow_store import HOST_TAG, PID_TAG, _process_tags, configure


def test_runs_of_dead_processes_are_marked_killed(tmp_path: Path) -> None:
    settings = MlflowSettings(tracking_uri=f"sqlite:///{tmp_path / 'mlflow.db'}",
                              experiment="abandoned")
    configure(settings)
    client = MlflowClient()
    exp = client.get_experiment_by_name("abandoned")
    assert exp is not None
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True)
    here = _process_tags()[HOST_TAG]
    killed = client.create_run(exp.experiment_id,
                               tags={HOST_TAG: here, PID_TAG: dead.stdout.strip()})
    alive = client.create_run(exp.experiment_id, tags=_process_tags())
    elsewhere = client.create_run(exp.experiment_id,
                                  tags={HOST_TAG: "another-host", PID_TAG: "1"})
    untagged = client.create_run(exp.experiment_id)
    assert os.getpid() == int(_process_tags()[PID_TAG])

    configure(settings)  # what every train / evaluate does first

    def status(run) -> str:
        return client.get_run(run.info.run_id).info.status

    assert status(killed) == "KILLED"
    # A live process's run, another machine's and one of unknown origin are left alone.
    assert [status(r) for r in (alive, elsewhere, untagged)] == ["RUNNING"] * 3
