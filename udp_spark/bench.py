"""Benchmark harness (``make bench``): stage timings, throughput and peak memory by size.

Each repetition runs the pipeline in a fresh Python process (fresh JVM, empty lakehouse) on
the same generated data, while a sampler records the peak resident memory of that process
tree. Figures are medians over repetitions, because the machine is shared and noisy.

Environment / options: ``--sizes 100000,1000000`` (target source rows: all rows of all source
files, the generator's unit; ``BENCH_SIZES``), ``--repeats 3`` (``BENCH_REPEATS``),
``--stages all|foundation`` (``BENCH_STAGES``), ``--noise 1.0`` (``BENCH_NOISE``),
``--held-out 0.01``, ``--out bench-results``.
With ``all``, each repetition holds the same 1% of the line-based sources' rows back, runs every
stage through publish, then evaluate, then lands the held-out rows and runs ingest to publish
again, reporting how many customer ids changed and whether any changed outside the clusters
the new records touched.

Then, on the first repetition's lakehouse (on every repetition's with ``--legs-on every``,
``BENCH_LEGS_ON``, which reports their medians), the legs of ``udp_spark.bench_legs`` run, each
in its own process (``--legs stream,api,erase``, ``BENCH_LEGS``; ``none`` for none): stream
latency from a landed file to the committed profile (``--stream-landings`` files of 100 and
of 1,000 rows), the Profile API under open-loop load (``--api-rate``, ``--api-seconds``), and
the erasure of one customer (last: it changes the lakehouse). A leg that fails records its
error; the rest of the bench goes on.
"""

from __future__ import annotations

import argparse
import dataclasses
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
from typing import Any

ROWS_PER_PERSON = 12.26  # source rows per generated person at default settings (measured)


def _tree_memory_kb(root_pid: int) -> tuple[int, int]:
    """``(rss, pss)`` of a process and all its descendants, in kB (Linux /proc).

    RSS counts a page shared by several processes once in each: PySpark's Python workers are
    forked from one daemon and share most of its pages, so an RSS sum over the tree counts
    them once per worker alive at that moment (which varies from run to run). PSS divides
    each shared page among its sharers: its sum is what the tree holds.
    """
    children: dict[int, list[int]] = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            with open(f"/proc/{entry.name}/stat") as fh:
                # pid (comm) state ppid ...: comm may hold spaces, ppid follows its ')'
                ppid = int(fh.read().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        children.setdefault(ppid, []).append(int(entry.name))
    rss = pss = 0
    stack = [root_pid]
    while stack:
        pid = stack.pop()
        stack.extend(children.get(pid, []))
        try:
            with open(f"/proc/{pid}/smaps_rollup") as fh:
                fields = dict(line.split(":", 1) for line in fh if ":" in line)
        except OSError:
            continue  # gone meanwhile (a Python worker ending)
        rss += int(fields.get("Rss", "0 kB").split()[0])
        pss += int(fields.get("Pss", "0 kB").split()[0])
    return rss, pss


class MemorySampler:
    """Peak memory of a process tree, sampled every ``interval`` seconds on a thread, overall
    and per phase (:meth:`phase` names the phase the next samples belong to); MiB."""

    def __init__(self, pid: int, interval: float = 0.5) -> None:
        self.pid, self.interval = pid, interval
        self.peak_rss_mib = self.peak_pss_mib = 0.0
        self.phase_pss_mib: dict[str, float] = {}
        self._phase: str | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def phase(self, name: str | None) -> None:
        self._phase = name
        if name is not None:
            self.sample()

    def current_pss_mib(self) -> float:
        """The tree's memory now (PSS, MiB), outside the sampling."""
        return _tree_memory_kb(self.pid)[1] / 1024

    def sample(self) -> None:
        rss, pss = (kb / 1024 for kb in _tree_memory_kb(self.pid))
        self.peak_rss_mib, self.peak_pss_mib = max(self.peak_rss_mib, rss), max(
            self.peak_pss_mib, pss)
        if self._phase is not None:
            self.phase_pss_mib[self._phase] = max(self.phase_pss_mib.get(self._phase, 0.0),
                                                  pss)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.sample()
            self._stop.wait(self.interval)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()


@dataclasses.dataclass(frozen=True)
class Peak:
    """A child's peak memory (MiB): ``pss`` what its process tree held, ``rss`` the sum of
    its processes' resident sets (counts shared pages once per process; earlier benches)."""

    pss: float
    rss: float


def _run_measured(cmd: list[str], env: dict[str, str]) -> tuple[dict[str, Any], Peak]:
    """Run ``cmd``; return its JSON result (last stdout line) and its tree's peak memory."""
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, env=env, text=True)
    sampler = MemorySampler(proc.pid)
    out, _ = proc.communicate()
    sampler.stop()
    if proc.returncode != 0:
        raise SystemExit(f"benchmark step failed ({proc.returncode}): {' '.join(cmd)}")
    return json.loads(out.strip().splitlines()[-1]), Peak(round(sampler.peak_pss_mib),
                                                          round(sampler.peak_rss_mib))


def _pipeline_once(data_dir: str, lakehouse: str, stages: str) -> None:
    """One pipeline pass in this process; prints one JSON line of stage seconds.

    ``stages`` is ``foundation`` (ingest, standardize) or ``all``: then also block, train,
    score, resolve, publish and evaluate, and an incremental pass (the 1% held-out rows land;
    ingest to publish again with the registered model) whose id churn is reported.
    """
    from udp_spark import io
    from udp_spark.config import load_config
    from udp_spark.generate.holdout import release
    from udp_spark.matching.evaluation import id_churn
    from udp_spark.pipeline.context import StageContext
    from udp_spark.pipeline.ingest import run_ingest
    from udp_spark.pipeline.standardize import run_standardize
    from udp_spark.session import get_session
    from udp_spark.tables import GOLD_IDENTITY_XREF

    timings: dict[str, float] = {}
    t0 = time.perf_counter()
    cfg = load_config("conf/pipeline.yaml", data_root=data_dir, lakehouse_root=lakehouse)
    cfg = cfg.model_copy(update={"mlflow": cfg.mlflow.model_copy(update={
        "tracking_uri": f"sqlite:///{Path(lakehouse).resolve() / 'mlflow.db'}"})})
    spark = get_session(cfg.spark)
    timings["spark_start"] = time.perf_counter() - t0
    ctx = StageContext(spark, cfg)

    # Each stage's peak memory (PSS of this process tree: the driver's Python, its JVM and
    # the Python workers); the JVM's heap only grows within a run, so a later stage's peak
    # includes what an earlier one left the heap at.
    memory = MemorySampler(os.getpid())

    def timed(stage: str, fn: Any, *args: Any) -> Any:
        t0 = time.perf_counter()
        memory.phase(stage)
        out = fn(ctx, *args)
        memory.sample()
        memory.phase(None)
        timings[stage] = time.perf_counter() - t0
        return out

    timed("ingest", run_ingest)
    timed("standardize", run_standardize)
    from udp_spark.tables import SILVER_PARTY_RECORDS

    # The records block to resolve match (the incremental pass adds more): Splink reads these.
    result: dict[str, Any] = {"timings": timings, "party_records_version": io.table_version(
        spark, ctx.lakehouse.ref(SILVER_PARTY_RECORDS))}
    if stages == "all":
        from udp_spark.pipeline.block import run_block
        from udp_spark.pipeline.evaluate import run_evaluate
        from udp_spark.pipeline.resolve import run_resolve
        from udp_spark.pipeline.score import run_score
        from udp_spark.pipeline.train import run_train

        truth = str(Path(data_dir) / "truth" / "records.csv")
        timed("block", run_block)
        timed("train", run_train)
        timed("score", run_score)
        timed("resolve", run_resolve)
        from udp_spark.pipeline.publish import run_publish

        result["publish"] = dataclasses.asdict(timed("publish", run_publish))
        # after publish: evaluate scores the published golden values (not in the total)
        result["accuracy"] = timed("evaluate", run_evaluate, truth, False)
        result["republish_unchanged"] = dataclasses.asdict(
            timed("republish_unchanged", run_publish))
        xref = ctx.lakehouse.ref(GOLD_IDENTITY_XREF)
        before = io.read_table(spark, xref).select("record_id", "customer_id")
        before = before.transform(io.checkpoint)
        if release(Path(data_dir)):
            for stage, fn in (("ingest", run_ingest), ("standardize", run_standardize),
                              ("block", run_block), ("score", run_score),
                              ("resolve", run_resolve)):
                timed(f"incremental_{stage}", fn)
            result["incremental"] = id_churn(before, io.read_table(spark, xref))
            result["incremental_publish"] = dataclasses.asdict(
                timed("incremental_publish", run_publish))
    memory.stop()
    result["stage_peak_pss_mib"] = {k: round(v) for k, v in memory.phase_pss_mib.items()}
    spark.stop()
    sys.stdout.write(json.dumps(result, default=str) + "\n")


def _splink_once(data_dir: str, lakehouse: str, version: str, backends: str) -> None:
    """Splink (``backends``: ``duckdb,spark``) over ``silver.party_records`` at ``version`` of
    a lakehouse the pipeline pass built; prints one JSON line (udp_spark.bench_splink)."""
    from udp_spark.bench_splink import BACKENDS, compare, similarity_jar
    from udp_spark.config import load_config
    from udp_spark.pipeline.context import StageContext
    from udp_spark.pipeline.inputs import party_records, read_truth
    from udp_spark.session import get_session

    chosen = tuple(b for b in BACKENDS if b in backends.split(","))
    cfg = load_config("conf/pipeline.yaml", data_root=data_dir, lakehouse_root=lakehouse)
    # The bench's session, plus Splink's UDF jar (jaro_winkler...) for Splink on Spark.
    spark = get_session(cfg.spark, {"spark.jars": similarity_jar()} if "spark" in chosen
                        else None)
    spark.sparkContext.setCheckpointDir(str(Path(lakehouse).resolve() / "_splink_checkpoints"))
    ctx = StageContext(spark, cfg)
    truth = read_truth(ctx, str(Path(data_dir) / "truth" / "records.csv"))
    m = cfg.matching
    result = compare(party_records(ctx, version=int(version)), truth, chosen,
                     threshold=m.resolve.threshold, random_pairs=m.model.random_pairs,
                     seed=m.model.seed)
    spark.stop()
    sys.stdout.write(json.dumps(result, default=str) + "\n")


def _repeats_agree(extras: list[dict[str, Any]]) -> bool:
    """Whether every repetition produced the same accuracy, clusters and incremental result.

    Repetitions run the same stages on the same data, so anything but equality is a
    determinism bug (a result that depends on partitioning, timing or hash seeds).
    """
    def rounded(x: Any) -> Any:  # sums in another order differ in the 15th digit
        if isinstance(x, float):
            return float(f"{x:.9g}")
        if isinstance(x, dict):
            return {k: rounded(v) for k, v in x.items()}
        if isinstance(x, list):
            return [rounded(v) for v in x]
        return x

    def outcome(e: dict[str, Any]) -> Any:
        return json.dumps(rounded([e.get("accuracy"), e.get("incremental")]), sort_keys=True,
                          default=str)
    return len({outcome(e) for e in extras}) <= 1


# udp-spark's stages as the phases Splink's run is timed by (bench_splink.PHASES).
UDP_PHASES = {"blocking": "block", "training": "train", "scoring": "score",
              "clustering": "resolve"}
ENGINES = ("udp_spark", "splink_duckdb", "splink_spark")


def identity_comparison(runs: list[dict[str, float]], extras: list[dict[str, Any]]
                        ) -> dict[str, Any]:
    """udp-spark's block + train + score + resolve beside Splink's phases: median seconds
    per phase over the repetitions, candidate pairs, accuracy (first repetition: they agree)
    and the time ratios (udp-spark / Splink-DuckDB etc.; above 1 means udp-spark slower)."""
    from udp_spark.bench_splink import ACCURACY_KEYS, PHASES

    def med(values: list[float]) -> float:
        return round(statistics.median(values), 2)

    keys = (*PHASES, "total")
    udp_runs = [{p: r[stage] for p, stage in UDP_PHASES.items()} for r in runs]
    for r in udp_runs:
        r["total"] = sum(r[p] for p in PHASES)
    acc = extras[0].get("accuracy") or {}
    engines: dict[str, dict[str, Any]] = {"udp_spark": {
        "timings_s": {k: med([r[k] for r in udp_runs]) for k in keys},
        "all_runs_s": [{k: round(v, 2) for k, v in r.items()} for r in udp_runs],
        "candidate_pairs": acc.get("blocking_candidate_pairs"),
        "accuracy": {k: acc[k] for k in ACCURACY_KEYS if k in acc}}}
    for name in ENGINES[1:]:
        results = [e["splink"][name] for e in extras if name in e.get("splink", {})]
        ok = [x for x in results if "error" not in x]
        if results and not ok:
            engines[name] = {"error": results[0]["error"]}
        elif ok:
            engines[name] = {
                "timings_s": {k: med([x["timings_s"][k] for x in ok]) for k in ok[0]["timings_s"]},
                "all_runs_s": [x["timings_s"] for x in ok],
                "candidate_pairs": ok[0]["candidate_pairs"],
                "predicted_links": ok[0]["predicted_links"],
                "accuracy": ok[0]["accuracy"]}
    ratios = {}
    for a, b in (("udp_spark", "splink_duckdb"), ("udp_spark", "splink_spark"),
                 ("splink_spark", "splink_duckdb")):
        ta, tb = engines.get(a, {}).get("timings_s"), engines.get(b, {}).get("timings_s")
        if ta and tb:
            ratios[f"{a}/{b}"] = {k: round(ta[k] / tb[k], 2) if tb[k] else None for k in keys}
    return {"engines": engines, "ratios": ratios,
            "splink_peak_pss_mib": [e["splink"].get("peak_pss_mib") for e in extras
                                    if "splink" in e],
            "splink_peak_rss_mib": [e["splink"]["peak_rss_mib"] for e in extras
                                    if "splink" in e]}


def format_comparison(c: dict[str, Any]) -> str:
    """The printed table of :func:`identity_comparison`."""
    from udp_spark.bench_splink import PHASES

    lines = [f"  {'identity resolution (median s)':33s} {'blocking':>9} {'training':>9} "
             f"{'scoring':>9} {'cluster':>9} {'total':>9} {'pairs':>11} {'P':>6} {'R':>6} "
             f"{'F1':>6} {'B3 F1':>6}"]
    for name in ENGINES:
        e = c["engines"].get(name)
        if e is None:
            continue
        if "error" in e:
            lines.append(f"  {name:33s} failed: {e['error']}")
            continue
        t, a = e["timings_s"], e["accuracy"]
        pairs = e.get("candidate_pairs")
        lines.append(
            f"  {name:33s} " + " ".join(f"{t[p]:9.1f}" for p in (*PHASES, "total"))
            + f" {'-' if pairs is None else format(int(pairs), ','):>11}"
            + "".join(f" {a.get(k, float('nan')):6.3f}" for k in (
                "pairwise_precision", "pairwise_recall", "pairwise_f1", "bcubed_f1")))
    for pair, r in c["ratios"].items():
        lines.append(f"  {'ratio ' + pair:33s} " + " ".join(
            f"{'-' if r[p] is None else format(r[p], '.2f'):>9}" for p in (*PHASES, "total")))
    return "\n".join(lines) + "\n"


FULL_RUN_STAGES = ("ingest", "standardize", "block", "train", "score", "resolve", "publish")
INCREMENTAL_STAGES = ("ingest", "standardize", "block", "score", "resolve", "publish")


def incremental_share(timings: dict[str, float]) -> dict[str, float] | None:
    """The incremental pass (the 1% late rows, ingest to publish) against the full run
    (ingest to publish, training included): seconds and share, or None without one."""
    inc = [timings.get(f"incremental_{s}") for s in INCREMENTAL_STAGES]
    full = [timings.get(s) for s in FULL_RUN_STAGES]
    if None in inc or None in full:
        return None
    i, f = sum(inc), sum(full)  # type: ignore[arg-type]
    return {"incremental_s": round(i, 1), "full_s": round(f, 1),
            "share": round(i / f, 3) if f else float("nan")}


def format_legs(legs: dict[str, Any]) -> str:
    """The printed lines of the bench legs (single runs: the first repetition's lakehouse)."""
    out = ["  legs (one run each, on the first repetition's lakehouse):\n"]
    for name, r in legs.items():
        if "error" in r and name != "stream":
            out.append(f"  {name}: failed: {str(r['error']).splitlines()[0]}\n")
            continue
        if name == "stream":
            for n, lat in (r.get("latency") or {}).items():
                out.append(f"  stream {int(n):>5,} rows/landing: {lat['n']} landings, latency "
                           f"to profile + event commit p50 {lat['p50_s']} s, p95 "
                           f"{lat['p95_s']} s, max {lat['max_s']} s\n")
            if "start_to_first_batch_s" in r:
                out.append(f"  stream: start to first (no-op) micro-batch "
                           f"{r['start_to_first_batch_s']} s, peak memory "
                           f"{r.get('stream_peak_pss_mib')} MiB\n")
            if "error" in r:
                out.append(f"  stream: failed: {str(r['error']).splitlines()[0]}\n")
        elif name == "api":
            out.append(f"  api: started in {r.get('startup_s')} s, {r.get('server_peak_pss_mib')}"
                       f" MiB peak; {r.get('rate_per_s')} req/s for {r.get('seconds_per_load')} s"
                       f" each, {r.get('note')}\n")
            for k in ("lookup_by_id", "lookup_by_email", "resolve"):
                x = r.get(k) or {}
                if "p99_ms" in x:
                    out.append(f"    {k:16s} p50 {x['p50_ms']:7.1f} p90 {x['p90_ms']:7.1f} p99 "
                               f"{x['p99_ms']:7.1f} max {x['max_ms']:7.1f} ms; {x['requests']:,}"
                               f" requests, {x['errors']} errors, {x['rate']:.0f}/s\n")
                elif x:
                    out.append(f"    {k:16s} {x.get('status')}: "
                               f"{str(x.get('detail', '')).splitlines()[0][:120]}\n")
        elif name == "erase":
            d = (r.get("delta_files") or {}).get("total", {})
            out.append(f"  erase: one customer ({r.get('customer_records')} records in "
                       f"{len(r.get('customer_sources') or [])} sources) in {r.get('wall_s')} s "
                       f"(udp erase process; erasure itself {r.get('erase_s')} s); "
                       f"{r.get('rows_removed')} rows removed; Delta logs: "
                       f"{d.get('files_added')} files added, {d.get('files_removed')} removed "
                       f"in {d.get('tables')} tables, {d.get('vacuum_deleted')} deleted by "
                       f"VACUUM\n")
            phases = ", ".join(f"{p['phase']} {p['seconds']}" for p in r.get("phases") or [])
            out.append(f"    phases (s, from commit times): {phases}\n")
    return "".join(out)


def legs_median(leg_runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Medians over repetitions of the legs' headline figures (``--legs-on every``).

    The erasure's own time and its process's wall time, the stream's p50 / p95 per landing
    size; a repetition whose leg failed (or measured nothing) is left out and counted.
    """
    out: dict[str, Any] = {}
    erase = [r["erase"] for r in leg_runs if "erase" in r]
    ok = [e for e in erase if "error" not in e and e.get("erase_s") is not None]
    if erase:
        out["erase"] = {"runs": len(ok), "failed": len(erase) - len(ok),
                        "erase_s_all": [e["erase_s"] for e in ok],
                        "wall_s_all": [e.get("wall_s") for e in ok]}
        if ok:
            out["erase"]["erase_s_median"] = round(
                statistics.median(e["erase_s"] for e in ok), 1)
            walls = [e["wall_s"] for e in ok if e.get("wall_s") is not None]
            if walls:
                out["erase"]["wall_s_median"] = round(statistics.median(walls), 1)
    lat: dict[str, list[dict[str, Any]]] = {}
    for r in leg_runs:
        for n, x in ((r.get("stream") or {}).get("latency") or {}).items():
            if x.get("p50_s") is not None:  # a leg with no landing measured
                lat.setdefault(n, []).append(x)
    if lat:
        out["stream"] = {n: {"runs": len(xs),
                             "p50_s_median": round(statistics.median(x["p50_s"] for x in xs), 1),
                             "p95_s_median": round(statistics.median(x["p95_s"] for x in xs), 1),
                             "p50_s_all": [x["p50_s"] for x in xs]}
                         for n, xs in lat.items()}
    return out


def format_legs_median(med: dict[str, Any]) -> str:
    """The printed lines of the legs' medians over repetitions."""
    out = []
    e = med.get("erase")
    if e and "erase_s_median" in e:
        out.append(f"  erase, median of {e['runs']} repetitions' lakehouses: erasure itself "
                   f"{e['erase_s_median']} s ({', '.join(str(x) for x in e['erase_s_all'])}); "
                   f"udp erase process {e.get('wall_s_median')} s"
                   + (f"; {e['failed']} failed" if e["failed"] else "") + "\n")
    for n, x in (med.get("stream") or {}).items():
        out.append(f"  stream {int(n):>5,} rows/landing, median of {x['runs']} repetitions: "
                   f"p50 {x['p50_s_median']} s, p95 {x['p95_s_median']} s\n")
    return "".join(out)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sizes", default=os.environ.get("BENCH_SIZES", "100000"))
    parser.add_argument("--repeats", type=int, default=int(os.environ.get("BENCH_REPEATS", 3)))
    parser.add_argument("--stages", choices=("all", "foundation"),
                        default=os.environ.get("BENCH_STAGES", "all"))
    parser.add_argument("--noise", type=float, default=float(os.environ.get("BENCH_NOISE", 1.0)),
                        help="generator noise multiplier (1.0 = default settings)")
    parser.add_argument("--held-out", type=float, default=0.01,
                        help="share of the line-based sources' rows that land late "
                             "(incremental pass)")
    parser.add_argument("--out", default="bench-results")
    parser.add_argument("--work", default="bench-work")
    parser.add_argument("--splink", default=os.environ.get("BENCH_SPLINK", "duckdb,spark"),
                        help="Splink backends run beside udp-spark on the same records "
                             "(duckdb,spark; none to skip; needs --stages all)")
    parser.add_argument("--legs", default=os.environ.get("BENCH_LEGS", "stream,api,erase"),
                        help="legs run once per size after the first repetition (stream, "
                             "api, erase; none to skip; needs --stages all)")
    parser.add_argument("--legs-on", choices=("first", "every"),
                        default=os.environ.get("BENCH_LEGS_ON", "first"),
                        help="run the legs on the first repetition's lakehouse only, or on "
                             "every repetition's (medians of the erasure and the stream)")
    parser.add_argument("--stream-landings", type=int,
                        default=int(os.environ.get("BENCH_STREAM_LANDINGS", 10)),
                        help="files landed per batch size (100 and 1,000 rows)")
    parser.add_argument("--api-rate", type=float,
                        default=float(os.environ.get("BENCH_API_RATE", 200)))
    parser.add_argument("--api-seconds", type=float,
                        default=float(os.environ.get("BENCH_API_SECONDS", 15)))
    parser.add_argument("--keep", action="store_true",
                        help="keep the first repetition's lakehouse and data (under --work)")
    parser.add_argument("--_once", nargs=3, help=argparse.SUPPRESS)
    parser.add_argument("--_splink", nargs=4, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args._once:
        _pipeline_once(*args._once)
        return
    if args._splink:
        _splink_once(*args._splink)
        return
    splink = args.splink if args.stages == "all" and args.splink != "none" else ""
    from udp_spark.bench_legs import LEG_ORDER, run_leg

    wanted = {x.strip() for x in args.legs.split(",") if x.strip() and x.strip() != "none"}
    unknown = wanted - set(LEG_ORDER)
    if unknown:
        parser.error(f"--legs: unknown {sorted(unknown)}; legs are {list(LEG_ORDER)}")
    legs = [x for x in LEG_ORDER if x in wanted] if args.stages == "all" else []
    leg_options = {"stream": {"landings": args.stream_landings},
                   "api": {"rate": args.api_rate, "seconds": args.api_seconds}, "erase": {},
                   "review": {}}

    from udp_spark.generate import generate
    from udp_spark.generate.holdout import hold_out

    results = []
    for size in [int(s) for s in args.sizes.split(",")]:
        data_dir = Path(args.work) / f"data-{size}"
        if data_dir.exists():
            shutil.rmtree(data_dir)
        t0 = time.perf_counter()
        report = generate(data_dir, people=max(1, round(size / ROWS_PER_PERSON)), seed=7,
                          noise=args.noise)
        gen_s = time.perf_counter() - t0
        runs: list[dict[str, float]] = []
        peaks: list[Peak] = []
        extras: list[dict[str, Any]] = []
        leg_runs: list[dict[str, Any]] = []  # the first repetition's, or every one's
        for i in range(args.repeats):
            lake = Path(args.work) / f"lake-{size}-{i}"
            # A repetition's own folder: a kept lakehouse's bronze batch ids name its files
            # by path, so its data stays where it was landed from (renamed, every file
            # would be a new batch to the next run on it).
            run_data = Path(args.work) / f"data-{size}-run-{i}"
            for d in (lake, run_data):
                if d.exists():
                    shutil.rmtree(d)
            shutil.copytree(data_dir, run_data)
            # The same rows are held back in every repetition: repetitions are the same work,
            # so their timings compare and their results must agree (checked below).
            held = hold_out(run_data, args.held_out, seed=7) if args.stages == "all" else 0
            result, peak = _run_measured(
                [sys.executable, "-m", "udp_spark.bench", "--_once", str(run_data), str(lake),
                 args.stages], dict(os.environ))
            runs.append(result["timings"])
            extras.append({**result, "held_out_rows": held})
            peaks.append(peak)
            if splink and result.get("party_records_version") is not None:
                # Its own process: udp-spark's peak memory stays its own.
                splink_result, splink_peak = _run_measured(
                    [sys.executable, "-m", "udp_spark.bench", "--_splink", str(run_data),
                     str(lake), str(result["party_records_version"]), splink],
                    dict(os.environ))
                extras[-1]["splink"] = {**splink_result, "peak_pss_mib": splink_peak.pss,
                                        "peak_rss_mib": splink_peak.rss}
            # Each repetition as it ends, so a long run stopped early still reports something.
            sys.stderr.write(json.dumps({"size": size, "repeat": i, "peak_pss_mib": peak.pss,
                                         "peak_rss_mib": peak.rss, **extras[-1]},
                                        default=str) + "\n")
            if i == 0 or args.legs_on == "every":
                this_run: dict[str, Any] = {}
                for leg in legs:  # in LEG_ORDER: the erasure last, it changes the lakehouse
                    this_run[leg] = run_leg(leg, run_data, lake,
                                            Path(args.work) / f"legs-{size}-{i}" / leg,
                                            leg_options[leg])
                    sys.stderr.write(json.dumps({"size": size, "repeat": i, "leg": leg,
                                                 **this_run[leg]}, default=str) + "\n")
                leg_runs.append(this_run)
            if args.keep and i == 0:
                sys.stderr.write(f"kept {lake} and its data {run_data}\n")
            else:
                shutil.rmtree(lake, ignore_errors=True)
                shutil.rmtree(run_data, ignore_errors=True)
        med = {k: statistics.median(r[k] for r in runs) for k in runs[0]}
        row = {"target_source_rows": size, "noise": args.noise,
               "party_records": report.party_records,
               "source_rows": report.source_rows, "people": report.people,
               "generate_s": round(gen_s, 1), "repeats": args.repeats,
               "median_s": {k: round(v, 1) for k, v in med.items()},
               "all_runs_s": runs,
               "peak_pss_mib_median": round(statistics.median(p.pss for p in peaks)),
               "peak_pss_mib_all": [p.pss for p in peaks],
               "peak_rss_mib_median": round(statistics.median(p.rss for p in peaks)),
               "peak_rss_mib_all": [p.rss for p in peaks],
               "stage_peak_pss_mib": [e.get("stage_peak_pss_mib") for e in extras],
               "source_rows_per_s_ingest_standardize": round(
                   report.source_rows / (med["ingest"] + med["standardize"])),
               "accuracy": extras[0].get("accuracy"),
               "incremental_share": [incremental_share(r) for r in runs],
               "repeats_agree": _repeats_agree(extras),
               "publish": [{k: e.get(k) for k in ("publish", "republish_unchanged",
                                                   "incremental_publish")} for e in extras],
               "incremental": [{"held_out_rows": e["held_out_rows"], **e.get("incremental", {})}
                               for e in extras]}
        if splink:
            row["identity_resolution"] = identity_comparison(runs, extras)
        if leg_runs and leg_runs[0]:
            row["legs"] = leg_runs[0]
        if len(leg_runs) > 1:
            row["legs_all"] = leg_runs
            row["legs_median"] = legs_median(leg_runs)
        results.append(row)
        sys.stdout.write(json.dumps(row) + "\n")
    out = Path(args.out)
    out.mkdir(exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S")
    (out / f"bench-{stamp}.json").write_text(json.dumps(results, indent=2))
    for r in results:
        m = r["median_s"]
        sys.stdout.write(f"\n{r['source_rows']:,} source rows, {r['party_records']:,} party "
                         f"records, noise {r['noise']}: median of {r['repeats']}, peak memory "
                         f"{r['peak_pss_mib_median']:,} MiB (process tree's PSS; RSS summed "
                         f"over its processes {r['peak_rss_mib_median']:,} MiB)\n")
        stage_mem = r["stage_peak_pss_mib"][0] or {}
        for stage, secs in m.items():
            mem = f"  peak {stage_mem[stage]:,} MiB" if stage in stage_mem else ""
            sys.stdout.write(f"  {stage:26s} {secs:8.1f} s{mem}\n")
        if not r["repeats_agree"]:
            sys.stdout.write("  WARNING: the repetitions' results differ (see the JSON)\n")
        acc = r.get("accuracy") or {}
        for k in ("pairwise_f1", "bcubed_f1", "attainable_pairwise_f1", "attainable_bcubed_f1",
                  "blocking_pair_completeness", "blocking_linkable_pair_completeness",
                  "blocking_linkable_reachable_pair_completeness"):
            if k in acc:
                sys.stdout.write(f"  {k:44s} {acc[k]:.4f}\n")
        if "identity_resolution" in r:
            sys.stdout.write(format_comparison(r["identity_resolution"]))
        for pub in r["publish"]:
            first, again, inc = (pub.get("publish"), pub.get("republish_unchanged"),
                                 pub.get("incremental_publish"))
            if first and again and inc:
                sys.stdout.write(
                    f"  publish: {first['customers']:,} profiles; unchanged re-publish "
                    f"updated {again['profile_updated']:,} and added "
                    f"{again['history_inserted']:,} history rows; after the 1% late rows "
                    f"{inc['profile_inserted'] + inc['profile_updated']:,} profiles changed, "
                    f"{inc['history_inserted']:,} history rows added\n")
        shares = [x for x in r["incremental_share"] if x]
        if shares:
            med_share = statistics.median(x["share"] for x in shares)
            sys.stdout.write(
                f"  incremental pass (1% late rows, ingest to publish) / full run (ingest to "
                f"publish): {100 * med_share:.1f}% (median of {len(shares)}; "
                + ", ".join(f"{x['incremental_s']:.0f}/{x['full_s']:.0f} s" for x in shares)
                + ")\n")
        if r.get("legs"):
            sys.stdout.write(format_legs(r["legs"]))
        if r.get("legs_median"):
            sys.stdout.write(format_legs_median(r["legs_median"]))
        for inc in r["incremental"]:
            if "ids_changed" in inc:
                sys.stdout.write(
                    f"  incremental: {inc['new_records']:,.0f} new records touched "
                    f"{inc['clusters_touched']:,.0f} clusters; {inc['ids_changed']:,.0f} of "
                    f"{inc['earlier_records']:,.0f} earlier records changed id, "
                    f"{inc['ids_changed_outside_touched']:,.0f} outside touched clusters\n")


if __name__ == "__main__":
    main()
