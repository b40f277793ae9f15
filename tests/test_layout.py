"""The code layout a newcomer relies on: one runner module per stage, a job per stage, the
logic in the area packages, and no import cycles."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
LIB = ROOT / "udp_spark"
STAGES = ("ingest", "standardize", "block", "train", "score", "resolve", "evaluate",
          "publish", "labels")
AREAS = ("matching", "standardize", "profile", "generate", "platform")


def _module(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path, *, top_level_only: bool) -> set[str]:
    """udp_spark modules imported by ``path`` (at module level only, when asked: a
    function-level import cannot make an import cycle)."""
    tree = ast.parse(path.read_text())
    nodes = tree.body if top_level_only else list(ast.walk(tree))
    found: set[str] = set()
    for node in nodes:
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith(
                "udp_spark"):
            # ``from pkg import submodule`` depends on the submodule, not on the package
            subs = {f"{node.module}.{a.name}" for a in node.names} & set(MODULES)
            found.update(subs if len(subs) == len(node.names) else {node.module, *subs})
        elif isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name.startswith("udp_spark"))
    return found


MODULES = {_module(p): p for p in LIB.rglob("*.py")}


def test_no_import_cycles() -> None:
    graph = {m: {i for i in _imports(p, top_level_only=True) if i in MODULES and i != m}
             for m, p in MODULES.items()}
    done: set[str] = set()

    def visit(m: str, path: tuple[str, ...]) -> None:
        if m in path:
            pytest.fail("import cycle: " + " -> ".join((*path[path.index(m):], m)))
        if m in done:
            return
        for dep in sorted(graph[m]):
            visit(dep, (*path, m))
        done.add(m)

    for m in sorted(graph):
        visit(m, ())


@pytest.mark.parametrize("area", AREAS)
def test_area_packages_never_import_a_runner(area: str) -> None:
    offenders = {_module(p): sorted(i for i in _imports(p, top_level_only=False)
                                    if i.startswith(("udp_spark.pipeline", "udp_spark.cli")))
                 for p in (LIB / area).rglob("*.py")}
    assert not {m: i for m, i in offenders.items() if i}


@pytest.mark.parametrize("stage", STAGES)
def test_each_stage_has_its_runner_module_and_job(stage: str) -> None:
    runner = LIB / "pipeline" / f"{stage}.py"
    assert runner.is_file(), f"no runner module {runner}"
    tree = ast.parse(runner.read_text())
    runs = [n.name for n in tree.body if isinstance(n, ast.FunctionDef)
            and n.name.startswith("run_")]
    assert runs, f"{runner} defines no run_* function"
    jobs = {p.stem for p in (ROOT / "jobs").glob("*.py")}
    assert stage in jobs or f"{stage}_matcher" in jobs or f"import_{stage}" in jobs, jobs


def test_every_job_calls_a_cli_command_that_exists() -> None:
    import typer

    from udp_spark.cli import app

    commands = set(typer.main.get_command(app).commands)  # type: ignore[attr-defined]
    for job in (ROOT / "jobs").glob("*.py"):
        text = job.read_text()
        tree = ast.parse(text)
        calls = [n for n in ast.walk(tree) if isinstance(n, ast.Call)
                 and getattr(n.func, "id", None) == "main"]
        assert calls, f"{job.name} does not call udp_spark.cli.main"
        first = calls[0].args[0]
        assert isinstance(first, ast.List) and isinstance(first.elts[0], ast.Constant)
        assert first.elts[0].value in commands, (job.name, first.elts[0].value, commands)
