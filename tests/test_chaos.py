"""The crash-consistency harness (``udp_spark.chaos``, ``make chaos``) on a handful of kill
points: a SIGKILL right after a commit inside ingest and inside resolve, each re-run and
compared, read with delta-rs, with the uninterrupted run. The full sweep (every commit of
every stage, mid-write and random kills, the stream) is run by hand: docs/reliability.md.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from udp_spark.chaos import NOT_SWEPT, POINTS, compare
from udp_spark.faults import CRASH_AT, InjectedCrash, crash_point

PACKAGE = Path(__file__).resolve().parents[1] / "udp_spark"
SUBSET = ("ingest:after_bronze#3", "resolve:after_identity_events")


def test_the_list_of_points_is_the_code_s() -> None:
    """chaos.POINTS names every crash point the stages call, and only those."""
    called = set()
    for path in PACKAGE.rglob("*.py"):
        called |= set(re.findall(r'crash_point\("([a-z_]+:[a-z_]+)"\)', path.read_text()))
    audit = 'crash_point(f"{run.stage}:after_audit_runs")'
    assert audit in (PACKAGE / "pipeline" / "context.py").read_text()
    listed = {p.split("#")[0] for points in POINTS.values() for p in points}
    generic = {p for p in listed if p.endswith(":after_audit_runs")}  # the f-string's
    assert listed | set(NOT_SWEPT) == called | generic


def test_a_crash_point_fires_at_its_nth_visit(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(CRASH_AT, "resolve:after_identity_xref#2")
    crash_point("resolve:after_identity_events")  # another point: nothing
    crash_point("resolve:after_identity_xref")  # first visit: nothing
    with pytest.raises(InjectedCrash):
        crash_point("resolve:after_identity_xref")


@pytest.fixture(scope="module")
def harness(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict, int]:
    work = tmp_path_factory.mktemp("chaos")
    out = subprocess.run(
        [sys.executable, "-m", "udp_spark.chaos", "--workdir", str(work), "--people", "30",
         "--stages", "ingest", "resolve", "--points", *SUBSET, "--random-kills", "0",
         "--stream-parts", "0"], capture_output=True, text=True, timeout=1800, check=False)
    assert out.stdout, out.stderr[-3000:]
    return work, json.loads(out.stdout), out.returncode


@pytest.mark.slow  # about three minutes: a generated lakehouse, six processes
def test_killed_stages_rerun_to_the_uninterrupted_state(harness) -> None:
    _, report, rc = harness
    points = {p["point"]: p for p in report["points"]}
    assert set(points) == set(SUBSET), report
    for name, p in points.items():
        assert p["killed"], f"{name} was never reached: {p}"
        assert p["rerun_rc"] == 0, p.get("rerun_error")
        assert p["ok"], p
        assert p["rows_lost"] == {} and p["rows_duplicated"] == {}, p
        assert p["partition_equal"] and p["identity_events_lost"] == 0, p
    assert report["summary"]["kill_points"] == len(SUBSET)
    assert rc == 0


@pytest.mark.slow
def test_the_comparison_sees_lost_and_duplicated_rows(harness) -> None:
    """The harness's yardstick is not blind: the state before ingest against the one after it
    lacks every late row; resolve's state has every identity event of its run more."""
    work, _, _ = harness
    snaps = work / "snapshots"
    before = compare(snaps / "landed", snaps / "ingest")
    assert before["rows_lost"].get("bronze.webshop_customers", 0) > 0, before
    assert not before["ok"]
    extra = compare(snaps / "resolve", snaps / "score")
    assert extra["rows_duplicated"].get("gold.identity_events", 0) > 0, extra
    assert extra["identity_events_extra"] > 0 and not extra["ok"]
    assert compare(snaps / "resolve", snaps / "resolve")["ok"]
