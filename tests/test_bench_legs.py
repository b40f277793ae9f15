"""The bench legs' pure helpers on a real Delta table (written by delta-rs: no Spark)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pyarrow as pa
from deltalake import DeltaTable, write_deltalake

from udp_spark.bench import (
    MemorySampler,
    _tree_memory_kb,
    format_legs_median,
    legs_median,
)
from udp_spark.bench_legs import (
    commit_phases,
    delta_commits,
    delta_tables,
    delta_version,
    file_changes,
    latency_summary,
)


def test_file_changes_from_the_delta_log(tmp_path: Path) -> None:
    lake = tmp_path / "lake"
    t = lake / "silver" / "records"
    write_deltalake(str(t), pa.table({"id": [1, 2], "v": ["a", "b"]}))
    write_deltalake(str(t), pa.table({"id": [3], "v": ["c"]}), mode="append")
    before = {"silver/records": delta_version(t)}
    assert before["silver/records"] == 1
    started = time.time()
    # What an erasure does: delete rows (files rewritten), and a new table appears.
    DeltaTable(str(t)).delete("id = 2")
    write_deltalake(str(lake / "privacy" / "requests"), pa.table({"r": ["x"]}))

    assert [str(p.relative_to(lake)) for p in delta_tables(lake)] == [
        "privacy/requests", "silver/records"]
    commits = delta_commits(t, before["silver/records"])
    assert [c["version"] for c in commits] == [2]
    assert commits[0]["operation"] == "DELETE" and commits[0]["timestamp_ms"] >= started * 1000 - 1
    changes = file_changes(lake, before)
    rewritten = changes["tables"]["silver/records"]
    # the file holding id 2 is removed and rewritten without it
    assert rewritten["files_removed"] == 1 and rewritten["files_added"] == 1
    assert changes["tables"]["privacy/requests"]["files_added"] == 1
    assert changes["total"] == {"tables": 2, "commits": 2, "files_added": 2,
                                "files_removed": 1, "dv_added": 0, "cdc_files": 0,
                                "vacuum_deleted": 0}
    phases = commit_phases(lake, before, started)
    assert [p["phase"] for p in phases] == ["start", "erase"] and phases[1]["commits"] == 2
    assert DeltaTable(str(t)).to_pyarrow_table().column("id").to_pylist() != []


def test_latency_summary_nearest_rank() -> None:
    assert latency_summary([]) == {"n": 0, "p50_s": None, "p95_s": None, "max_s": None}
    s = latency_summary([30.0, 10.0, None, 20.0])
    assert s == {"n": 3, "p50_s": 20.0, "p95_s": 30.0, "max_s": 30.0}
    s = latency_summary(float(x) for x in range(1, 21))
    assert (s["p50_s"], s["p95_s"], s["max_s"]) == (10.0, 19.0, 20.0)


def test_legs_median_over_repetitions_leaves_failed_legs_out() -> None:
    runs = [
        {"erase": {"erase_s": 310.0, "wall_s": 320.0},
         "stream": {"latency": {"100": {"p50_s": 9.0, "p95_s": 12.0}}}},
        {"erase": {"error": "killed"},
         "stream": {"latency": {"100": {"p50_s": None, "p95_s": None}}}},
        {"erase": {"erase_s": 280.0, "wall_s": 290.0},
         "stream": {"latency": {"100": {"p50_s": 11.0, "p95_s": 20.0}}}},
        {"erase": {"erase_s": 290.0, "wall_s": 305.0}},
    ]
    med = legs_median(runs)
    assert med["erase"] == {"runs": 3, "failed": 1, "erase_s_all": [310.0, 280.0, 290.0],
                            "wall_s_all": [320.0, 290.0, 305.0], "erase_s_median": 290.0,
                            "wall_s_median": 305.0}
    assert med["stream"]["100"]["runs"] == 2
    assert med["stream"]["100"]["p50_s_median"] == 10.0
    assert med["stream"]["100"]["p95_s_median"] == 16.0
    text = format_legs_median(med)
    assert "median of 3" in text and "290.0 s (310.0, 280.0, 290.0)" in text
    assert "1 failed" in text


def test_tree_memory_counts_the_pages_forked_processes_share_once() -> None:
    """PySpark's Python workers are forked from one daemon: an RSS sum over the tree counts
    the pages they share once per process, PSS once in all."""
    code = ("import os, sys, time\n"
            "buf = b'x' * (200 * 2**20)\n"  # 200 MiB written by the parent
            "for _ in range(3):\n"
            "    if os.fork() == 0:\n"
            "        time.sleep(60); os._exit(0)\n"
            "print('ready', flush=True); time.sleep(60)\n")
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True,
                            start_new_session=True)
    try:
        assert proc.stdout is not None and proc.stdout.readline() == "ready\n"
        time.sleep(0.5)  # the forks have started
        rss, pss = (kb / 1024 for kb in _tree_memory_kb(proc.pid))
        sampler = MemorySampler(proc.pid, interval=0.1)
        sampler.phase("held")
        sampler.stop()
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    assert rss > 4 * 190, rss  # four processes map the 200 MiB
    assert 190 < pss < 300, pss  # held once
    assert 190 < sampler.phase_pss_mib["held"] < 300 and sampler.peak_rss_mib > 4 * 190
