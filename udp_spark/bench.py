"""Benchmark harness (``make bench``): stage timings, throughput and peak memory by size.

Each repetition runs the pipeline in a fresh Python process (fresh JVM, empty lakehouse) on
the same generated data, while a sampler records the peak resident memory of that process
tree. Figures are medians over repetitions, because the machine is shared and noisy.

Environment / options: ``--sizes 100000,1000000`` (target source rows: all rows of all source
files, the generator's unit), ``--repeats 3``, ``--out bench-results``.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

ROWS_PER_PERSON = 12.26  # source rows per generated person at default settings (measured)


def _tree_rss_kb(root_pid: int) -> int:
    """Resident memory of a process and all its descendants (Linux /proc)."""
    children: dict[int, list[int]] = {}
    rss: dict[int, int] = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            with open(f"/proc/{entry.name}/status") as fh:
                status = fh.read()
        except OSError:
            continue
        fields = dict(line.split(":", 1) for line in status.splitlines() if ":" in line)
        pid, ppid = int(entry.name), int(fields.get("PPid", "0").strip() or 0)
        children.setdefault(ppid, []).append(pid)
        rss[pid] = int(fields.get("VmRSS", "0 kB").split()[0]) if "VmRSS" in fields else 0
    total, stack = 0, [root_pid]
    while stack:
        pid = stack.pop()
        total += rss.get(pid, 0)
        stack.extend(children.get(pid, []))
    return total


def _run_measured(cmd: list[str], env: dict[str, str]) -> tuple[dict[str, float], float]:
    """Run ``cmd``; return its JSON timings (last stdout line) and peak tree RSS in MiB."""
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, env=env, text=True)
    peak = 0
    stop = threading.Event()

    def sample() -> None:
        nonlocal peak
        while not stop.is_set():
            peak = max(peak, _tree_rss_kb(proc.pid))
            stop.wait(0.5)

    t = threading.Thread(target=sample, daemon=True)
    t.start()
    out, _ = proc.communicate()
    stop.set()
    t.join()
    if proc.returncode != 0:
        raise SystemExit(f"benchmark step failed ({proc.returncode}): {' '.join(cmd)}")
    return json.loads(out.strip().splitlines()[-1]), peak / 1024


def _pipeline_once(data_dir: str, lakehouse: str) -> None:
    """One pipeline pass in this process; prints one JSON line of stage seconds."""
    from udp_spark.config import load_config
    from udp_spark.pipeline.context import StageContext
    from udp_spark.pipeline.ingest import run_ingest
    from udp_spark.pipeline.standardize import run_standardize
    from udp_spark.session import get_session

    timings: dict[str, float] = {}
    t0 = time.perf_counter()
    cfg = load_config("conf/pipeline.yaml", data_root=data_dir, lakehouse_root=lakehouse)
    spark = get_session(cfg.spark)
    timings["spark_start"] = time.perf_counter() - t0
    ctx = StageContext(spark, cfg)
    for stage, fn in (("ingest", run_ingest), ("standardize", run_standardize)):
        t0 = time.perf_counter()
        fn(ctx)
        timings[stage] = time.perf_counter() - t0
    spark.stop()
    sys.stdout.write(json.dumps(timings) + "\n")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sizes", default=os.environ.get("BENCH_SIZES", "100000"))
    parser.add_argument("--repeats", type=int, default=int(os.environ.get("BENCH_REPEATS", 3)))
    parser.add_argument("--out", default="bench-results")
    parser.add_argument("--work", default="bench-work")
    parser.add_argument("--_once", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args._once:
        _pipeline_once(*args._once)
        return

    from udp_spark.generate import generate

    results = []
    for size in [int(s) for s in args.sizes.split(",")]:
        data_dir = Path(args.work) / f"data-{size}"
        if data_dir.exists():
            shutil.rmtree(data_dir)
        t0 = time.perf_counter()
        report = generate(data_dir, people=max(1, round(size / ROWS_PER_PERSON)), seed=7)
        gen_s = time.perf_counter() - t0
        runs, peaks = [], []
        for i in range(args.repeats):
            lake = Path(args.work) / f"lake-{size}-{i}"
            if lake.exists():
                shutil.rmtree(lake)
            timings, peak = _run_measured(
                [sys.executable, "-m", "udp_spark.bench", "--_once", str(data_dir), str(lake)],
                dict(os.environ))
            runs.append(timings)
            peaks.append(peak)
            shutil.rmtree(lake, ignore_errors=True)
        med = {k: statistics.median(r[k] for r in runs) for k in runs[0]}
        row = {"target_source_rows": size, "party_records": report.party_records,
               "source_rows": report.source_rows, "people": report.people,
               "generate_s": round(gen_s, 1), "repeats": args.repeats,
               "median_s": {k: round(v, 1) for k, v in med.items()},
               "all_runs_s": runs, "peak_rss_mib_median": round(statistics.median(peaks)),
               "source_rows_per_s_ingest_standardize": round(
                   report.source_rows / (med["ingest"] + med["standardize"]))}
        results.append(row)
        sys.stdout.write(json.dumps(row) + "\n")
    out = Path(args.out)
    out.mkdir(exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S")
    (out / f"bench-{stamp}.json").write_text(json.dumps(results, indent=2))
    sys.stdout.write(f"\n{'records':>10} {'rows':>10} {'gen s':>7} {'ingest s':>9} "
                     f"{'std s':>7} {'rows/s':>8} {'peak MiB':>9}\n")
    for r in results:
        m = r["median_s"]
        sys.stdout.write(f"{r['party_records']:>10,} {r['source_rows']:>10,} "
                         f"{r['generate_s']:>7} {m['ingest']:>9} {m['standardize']:>7} "
                         f"{r['source_rows_per_s_ingest_standardize']:>8,} "
                         f"{r['peak_rss_mib_median']:>9,}\n")


if __name__ == "__main__":
    main()
