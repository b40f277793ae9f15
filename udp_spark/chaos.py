"""Kill -9 the stream and restart it: nothing lost, nothing doubled, the same clusters.

``python -m udp_spark.chaos --kills 10`` (``make chaos``) builds a small lakehouse with the
batch stages, then lands held-out rows in ``--kills`` micro-batches. Each micro-batch is
first run by ``udp stream --available-now`` that dies: every other one SIGKILLs itself at
one of the named crash points (``UDP_CRASH_AT``, ``UDP_CRASH_MODE=kill``: right after a
commit, nothing after it runs), the others have their whole process tree (Python and
Spark's JVM) SIGKILLed at a random moment; then a clean restart runs it. At the end it
checks that every row of every late file is in bronze once, that no profile event, segment
spell or open history row is doubled, and that the clusters equal those of a full run of
every stage over a copy of the lakehouse, and prints
a JSON report (exit 1 if any check fails).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

POINTS = (
    "standardize:after_party_records",
    "block:after_candidate_pairs",
    "resolve:after_identity_events",
    "resolve:after_identity_xref",
    "publish:after_profile_events",
    "publish:after_profile",
    "stream:before_batch_commit",
)
REPO = Path(__file__).resolve().parents[1]


def _udp(*args: str, env: dict[str, str] | None = None, check: bool = True,
         cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    cmd = [sys.executable, "-m", "udp_spark.cli", *args]
    out = subprocess.run(cmd, env={**os.environ, **(env or {})}, text=True, cwd=cwd,
                         capture_output=True, check=False)
    if check and out.returncode != 0:
        raise RuntimeError(f"{' '.join(args)} failed ({out.returncode}):\n{out.stderr[-3000:]}")
    return out


def _split_late(data: Path, parts: int) -> list[list[tuple[Path, str]]]:
    """The held-out files cut into ``parts`` batches of whole lines (header kept)."""
    from udp_spark.generate.holdout import HELD_DIR

    batches: list[list[tuple[Path, str]]] = [[] for _ in range(parts)]
    for path in sorted((data / HELD_DIR).glob("*/*")):
        lines = path.read_text(encoding="utf-8").splitlines(keepends=True)
        header = lines[:1] if path.suffix == ".csv" else []
        body = lines[len(header):]
        for i in range(parts):
            chunk = body[i::parts]
            if chunk:
                target = data / path.parent.name / f"{path.stem}_{i:02d}{path.suffix}"
                batches[i].append((target, "".join(header + chunk)))
    return batches


def run(workdir: Path, people: int, kills: int, seed: int) -> dict[str, object]:
    from udp_spark.generate import generate
    from udp_spark.generate.holdout import hold_out

    shutil.rmtree(workdir, ignore_errors=True)
    data, lake = workdir / "data", workdir / "lake"
    generate(data, people=people, seed=seed)
    hold_out(data, 0.3, seed=seed)
    common = ["--config", str(REPO / "conf" / "pipeline.yaml"), "--data-root", str(data),
              "--lakehouse", str(lake)]
    env = {"UDP_AS_OF": "2026-06-30"}  # fixed: new rows do not move recency for everyone
    t0 = time.time()
    for stage in ("ingest", "standardize", "block", "train", "score", "resolve", "publish"):
        _udp(stage, *common, env=env, cwd=workdir)
    report: dict[str, object] = {"people": people, "batch_seconds": round(time.time() - t0)}
    stream_env = env
    kills_done: list[dict[str, object]] = []
    written: list[tuple[Path, int]] = []
    rng = random.Random(seed)
    clean_seconds = 40.0  # a clean micro-batch's time, measured as the harness goes
    for i, batch in enumerate(_split_late(data, kills)):
        for target, text in batch:
            target.write_text(text, encoding="utf-8")
            lines = text.count("\n") - (1 if target.suffix == ".csv" else 0)
            written.append((target, lines))
        t1 = time.time()
        if i % 2 == 0:  # right after a named commit
            point = POINTS[(i // 2) % len(POINTS)]
            killed = _udp("stream", "--available-now", *common, check=False, cwd=workdir,
                          env={**stream_env, "UDP_CRASH_AT": point, "UDP_CRASH_MODE": "kill"})
            kill: dict[str, object] = {"point": point, "killed_rc": killed.returncode}
        else:  # at a random moment of the micro-batch, the whole process tree
            after = rng.uniform(3.0, max(4.0, 0.9 * clean_seconds))
            kill = {"point": f"random {after:.1f}s", "killed_rc": _kill_after(
                ["stream", "--available-now", *common], after, stream_env, workdir)}
        t2 = time.time()
        _udp("stream", "--available-now", *common, env=stream_env, cwd=workdir)
        clean_seconds = time.time() - t2
        kills_done.append({**kill, "seconds": round(time.time() - t1)})
    report["kills"] = kills_done
    report["checks"] = _check(workdir, data, lake, env, written)
    return report


def _kill_after(args: list[str], seconds: float, env: dict[str, str], cwd: Path) -> int | None:
    """Run ``udp ARGS`` and SIGKILL its whole process tree (Python and Spark's JVM) after
    ``seconds``; its exit code, or None if it finished first (no kill happened)."""
    proc = subprocess.Popen([sys.executable, "-m", "udp_spark.cli", *args],
                            env={**os.environ, **env}, cwd=cwd, start_new_session=True,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        proc.wait(timeout=seconds)
        return None
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        return proc.wait()


def _check(workdir: Path, data: Path, lake: Path, env: dict[str, str],
           written: list[tuple[Path, int]]) -> dict[str, object]:
    from pyspark.sql import functions as F

    from udp_spark import io
    from udp_spark.config import load_config
    from udp_spark.pipeline.context import StageContext
    from udp_spark.session import get_session
    from udp_spark.tables import (
        GOLD_CUSTOMER_PROFILE,
        GOLD_CUSTOMER_PROFILE_HISTORY,
        GOLD_IDENTITY_XREF,
        GOLD_PROFILE_EVENTS,
        GOLD_SEGMENT_MEMBERSHIP,
    )

    copy = workdir / "lake_full"
    shutil.copytree(lake, copy)
    common = ["--config", str(REPO / "conf" / "pipeline.yaml"), "--data-root", str(data),
              "--lakehouse", str(copy)]
    for stage in ("standardize", "block", "score", "resolve"):
        _udp(stage, *common, "--full", env=env, cwd=workdir)
    os.environ.update(env)
    cfg = load_config(REPO / "conf" / "pipeline.yaml", data_root=str(data),
                      lakehouse_root=str(lake))
    spark = get_session(cfg.spark)
    ctx = StageContext(spark, cfg)

    def partition(root: Path) -> set[frozenset[str]]:
        c = StageContext(spark, load_config(REPO / "conf" / "pipeline.yaml",
                                            lakehouse_root=str(root)))
        rows = io.read_table(spark, c.lakehouse.ref(GOLD_IDENTITY_XREF)).groupBy(
            "customer_id").agg(F.collect_list("record_id").alias("r")).collect()
        return {frozenset(r["r"]) for r in rows}

    def table(t: tuple[str, str]):  # type: ignore[no-untyped-def]
        return io.read_table(spark, ctx.lakehouse.ref(t))

    files_twice = sum(
        io.read_table(spark, ctx.lakehouse.bronze(n)).groupBy("_batch_id").agg(
            F.countDistinct("_run_id").alias("n")).filter("n > 1").count()
        for n in cfg.sources)
    landed: dict[str, int] = {}
    for n in cfg.sources:
        for r in io.read_table(spark, ctx.lakehouse.bronze(n)).groupBy("_file").count().collect():
            name = r["_file"].rsplit("/", 1)[-1]
            landed[name] = landed.get(name, 0) + r["count"]
    rows_lost = sum(max(0, lines - landed.get(p.name, 0)) for p, lines in written)
    rows_extra = sum(max(0, landed.get(p.name, 0) - lines) for p, lines in written)
    events = table(GOLD_PROFILE_EVENTS)
    spells = table(GOLD_SEGMENT_MEMBERSHIP).groupBy("customer_id", "segment").count()
    open_rows = table(GOLD_CUSTOMER_PROFILE_HISTORY).filter(F.col("valid_to").isNull())
    checks = {
        "late_rows_written": sum(lines for _, lines in written),
        "late_rows_lost": rows_lost,
        "late_rows_duplicated": rows_extra,
        "files_landed_twice": files_twice,
        "duplicate_profile_events": events.count() - events.select("event_id").distinct()
        .count(),
        "segments_entered_twice": spells.filter("count > 1").count(),
        "customers_with_not_one_open_history_row": open_rows.groupBy("customer_id").count()
        .filter("count != 1").count(),
        "profiles": table(GOLD_CUSTOMER_PROFILE).count(),
        "open_history_rows": open_rows.count(),
        "clusters_equal_full_run": partition(lake) == partition(copy),
    }
    return checks


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/udp-chaos"))
    parser.add_argument("--people", type=int, default=300)
    parser.add_argument("--kills", type=int, default=10)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args(argv)
    report = run(args.workdir, args.people, args.kills, args.seed)
    sys.stdout.write(json.dumps(report, indent=2) + "\n")
    c = report["checks"]
    assert isinstance(c, dict)
    ok = (c["late_rows_lost"] == 0 and c["late_rows_duplicated"] == 0
          and c["files_landed_twice"] == 0 and c["duplicate_profile_events"] == 0
          and c["segments_entered_twice"] == 0
          and c["customers_with_not_one_open_history_row"] == 0
          and c["profiles"] == c["open_history_rows"] and c["clusters_equal_full_run"])
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
