"""The Databricks Asset Bundle is well-formed: the batch job's tasks are the stage graph of
``udp run``, every task runs an entry point of jobs/ with options its command accepts, every
job of jobs/ is in some task, and every ``${var.*}`` is defined."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import typer
import yaml

from udp_spark.cli import app
from udp_spark.pipeline.run import stage_graph

REPO = Path(__file__).resolve().parents[1]


def _bundle() -> tuple[dict[str, Any], dict[str, dict[str, Any]]]:
    root = yaml.safe_load((REPO / "databricks.yml").read_text())
    jobs: dict[str, dict[str, Any]] = {}
    for pattern in root["include"]:
        for path in sorted(REPO.glob(pattern)):
            jobs.update(yaml.safe_load(path.read_text())["resources"]["jobs"])
    return root, jobs


def _job_command(path: Path) -> list[str]:
    """The ``udp`` subcommand words a jobs/ entry point runs."""
    m = re.search(r"main\(\[((?:\"[a-z-]+\", )+)\*sys\.argv", path.read_text())
    assert m, f"{path} is not a thin entry point over udp_spark.cli.main"
    return re.findall(r'"([a-z-]+)"', m.group(1))


def _command(words: list[str]) -> Any:
    """The click command (typer's) behind ``udp <words>``."""
    cmd: Any = typer.main.get_command(app)
    for w in words:
        assert hasattr(cmd, "commands"), words
        cmd = cmd.commands[w]
    return cmd


def test_targets_and_variables() -> None:
    root, _ = _bundle()
    assert set(root["targets"]) == {"dev", "prod"}
    assert root["targets"]["dev"].get("default") is True
    assert root["targets"]["prod"]["mode"] == "production"
    defined = set(root["variables"])
    text = (REPO / "databricks.yml").read_text() + "".join(
        p.read_text() for p in (REPO / "resources").glob("*.yml"))
    used = set(re.findall(r"\$\{var\.([a-z_]+)\}", text))
    assert used <= defined, used - defined
    assert defined <= used, f"defined but never used: {defined - used}"
    for target in root["targets"].values():
        assert set(target.get("variables", {})) <= defined


def test_the_batch_job_is_the_stage_graph_and_is_scheduled_with_retries() -> None:
    _, jobs = _bundle()
    job = jobs["udp_pipeline"]
    assert job["schedule"]["quartz_cron_expression"] and job["max_concurrent_runs"] == 1
    assert job["email_notifications"]["on_failure"]
    graph = {t["task_key"]: tuple(sorted(d["task_key"] for d in t.get("depends_on", [])))
             for t in job["tasks"]}
    # evaluate needs a truth file: it is in the retrain job, not the scheduled one
    want = {k: tuple(sorted(v)) for k, v in stage_graph().items() if k != "evaluate"}
    assert graph == want
    assert all(t.get("max_retries", 0) >= 1 for t in job["tasks"])
    assert all(any("whl" in lib for lib in t["libraries"]) for t in job["tasks"])
    assert jobs["udp_stream"]["continuous"]["pause_status"] == "UNPAUSED"
    assert jobs["udp_maintenance"]["schedule"]["quartz_cron_expression"]


def test_every_task_runs_an_entry_point_with_options_its_command_has() -> None:
    _, jobs = _bundle()
    seen: set[str] = set()
    for name, job in jobs.items():
        for task in job["tasks"]:
            if "condition_task" in task:
                continue
            spt = task["spark_python_task"]
            path = (REPO / "resources" / spt["python_file"]).resolve()
            assert path.is_file(), (name, task["task_key"], spt["python_file"])
            seen.add(path.name)
            cmd = _command(_job_command(path))
            opts = {o for p in cmd.params for o in p.opts}
            given = [a for a in spt.get("parameters", []) if a.startswith("--")]
            assert set(given) <= opts, (name, task["task_key"], set(given) - opts)
            for dep in task.get("depends_on", []):
                assert dep["task_key"] in {t["task_key"] for t in job["tasks"]}
    entry_points = {p.name for p in (REPO / "jobs").glob("*.py")}
    assert entry_points == seen, f"jobs not in the bundle: {entry_points - seen}"
