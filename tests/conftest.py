"""One SparkSession for the whole test run (starting Spark costs 4-7 s on 2 cores)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from pyspark.sql import SparkSession


@pytest.fixture(scope="session")
def spark(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SparkSession]:
    from udp_spark.config import INTERPRETED_EXPRESSIONS, SparkProfile
    from udp_spark.session import get_session

    base = tmp_path_factory.mktemp("spark")
    conf = {
        # Tests use tiny frames: 2 shuffle partitions keep every join a few tasks.
        "spark.sql.shuffle.partitions": "2",
        "spark.default.parallelism": "2",
        # No web UI: saves start-up time and avoids port clashes between parallel runs.
        "spark.ui.enabled": "false",
        # Deterministic timestamps whatever the machine's zone.
        "spark.sql.session.timeZone": "UTC",
        # Managed tables and the Derby metastore go to a throw-away folder, not the repo.
        "spark.sql.warehouse.dir": str(base / "warehouse"),
        "spark.driver.extraJavaOptions": f"-Dderby.system.home={base / 'derby'}",
        # AQE coalescing adds planning time and nothing at this size.
        "spark.sql.adaptive.enabled": "false",
        "spark.driver.memory": "2g",
        # Tests run many small plans once each: compiling generated Java for every plan cost
        # more than running it. Interpreted evaluation took a 40-person batch run from 69 s
        # to 41 s (measured). Elsewhere only the stages that gain do it (spark.stage_conf).
        **INTERPRETED_EXPRESSIONS,
    }
    # Two cores even when `make test` runs two test processes: measured, one core each made
    # the long end-to-end files slower (1622 s against 1277 s for the suite).
    session = get_session(SparkProfile(app_name="udp-spark-tests", master="local[2]"), conf)
    session.sparkContext.setCheckpointDir(str(base / "checkpoints"))
    yield session
    session.stop()


@pytest.fixture()
def workdir(tmp_path: Path) -> Path:
    """A scratch folder; also the current directory so relative paths stay inside it."""
    old = os.getcwd()
    os.chdir(tmp_path)
    try:
        yield tmp_path
    finally:
        os.chdir(old)


# The longest files, longest first, by their `--durations` on a fresh clone (docs/testing.md:
# privacy at least 550 s, workflows 517, incremental 380, chaos 372, resource faults 247,
# end-to-end at least 219, bad input at least 166; serve, publish, supervised and the Splink
# one after). Handed out first (`make test` passes --no-loadscope-reorder: xdist otherwise
# orders files by their number of tests), so that no long file starts last and runs alone.
LONGEST_FIRST = ("test_workflows.py", "test_privacy.py", "test_incremental.py",
                 "test_chaos.py", "test_serve.py", "test_pipeline_e2e.py",
                 "test_resource_faults.py", "test_bad_input.py", "test_publish.py",
                 "test_supervised.py", "test_bench_splink.py")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Longest files first, then the other slow (end-to-end) ones, then the rest: with
    ``make test``'s two workers (pytest-xdist, whole files per worker) the long files start
    at once and the quick ones fill in around them, instead of one long file running alone
    at the end."""
    def rank(item: pytest.Item) -> tuple[int, int]:
        name = item.path.name
        if name in LONGEST_FIRST:
            return (0, LONGEST_FIRST.index(name))
        return (1, 0) if item.get_closest_marker("slow") else (2, 0)

    items.sort(key=rank)
