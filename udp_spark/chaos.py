"""Crash-consistency harness: kill -9 every stage at every commit and at random moments,
re-run it, and compare the lakehouse with an uninterrupted run, read with delta-rs.

``python -m udp_spark.chaos`` (``make chaos``) builds a small lakehouse (``--people``
generated people, 30% of the rows of five sources held back), runs every batch stage on
it, then lands the held-back rows. From that state each stage is run once uninterrupted
(the reference, its state kept as a snapshot) and then, for every kill point, from a copy
of the same starting state:

- a named crash point (:data:`POINTS`): the stage runs with ``UDP_CRASH_AT=<point>
  UDP_CRASH_MODE=kill`` and SIGKILLs itself right after that commit;
- ``mid:<table>``: the whole process tree (Python, Spark's JVM, its Python workers) is
  SIGKILLed while the stage writes that table (new data files there, no new log entry
  yet: mid-MERGE);
- ``random``: the whole process tree is SIGKILLed after a random delay drawn within the
  stage's measured duration;

then the stage is run again, and the lakehouse is compared with the reference: every
Delta table read with ``deltalake`` (delta-rs, not the project's Spark code), per table
the rows lost and the rows duplicated (run ids, commit times and the run-salted ids of new
customers set aside: a customer is named by its records), the partition of records into
customers, open history rows per customer, and from MLflow's own store the runs left
RUNNING and whether the registry alias points at a version whose run finished and whose
model is complete. The stream is run the same way: the held-back rows land in parts, each
part is processed by ``udp stream --available-now`` killed at a point and restarted, and
the result is compared with the same parts streamed without kills.

The report is JSON (per point: stage, kind, whether the kill happened, seconds, the
differences), written to stdout and ``<workdir>/report.json``; exit 1 on any difference.
``--stages``/``--points`` pick a subset (the slow test runs a handful).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from udp_spark.session import SHORT_RUN_JAVA_OPTIONS

REPO = Path(__file__).resolve().parents[1]
AS_OF = "2026-06-30"  # fixed: landing rows must not move recency with the day of the run
MODEL, ALIAS = "udp_matcher", "champion"

# Every named crash point, by stage (the code calls udp_spark.faults.crash_point(name) right
# after the commit the name says). "name#n": the n-th time it is reached (one per source).
POINTS: dict[str, tuple[str, ...]] = {
    "ingest": ("ingest:after_bronze#3", "ingest:after_audit_runs"),
    "standardize": ("standardize:after_party_records", "standardize:after_interactions",
                    "standardize:after_consent_events", "standardize:after_quarantine",
                    "standardize:after_audit_runs"),
    "block": ("block:after_candidate_pairs_deleted", "block:after_candidate_pairs",
              "block:after_block_keys", "block:after_audit_runs"),
    "train": ("train:after_mlflow_run_started", "train:after_model_registered",
              "train:after_alias_set", "train:after_audit_runs"),
    "score": ("score:after_match_scores_deleted", "score:after_match_scores",
              "score:after_audit_runs"),
    # the first scoring with a new model version freezes its term frequencies
    "score_new_model": ("score:after_term_frequencies", "score:after_match_scores"),
    "resolve": ("resolve:after_identity_events", "resolve:after_identity_xref",
                "resolve:after_audit_runs"),
    "publish": ("publish:after_profile_events", "publish:after_profile",
                "publish:after_history", "publish:after_segment_membership",
                "publish:after_households", "publish:after_audit_runs"),
    "evaluate": ("evaluate:after_mlflow_run", "evaluate:after_audit_runs"),
    "maintain": ("maintain:after_optimize#4", "maintain:after_vacuum#2",
                 "maintain:after_audit_runs"),
    # the stream runs the stages' points too; these are its own (audit rows of the
    # micro-batch flushed; everything committed but the query's offsets)
    "stream": ("stream:after_audit_runs", "stream:before_batch_commit"),
}
# Points in the code that the harness's scenario does not reach: an erased subject's rows
# arriving (ingest quarantines them before landing).
# (erasure is not a pipeline stage: its point is tested in tests/test_privacy.py)
NOT_SWEPT = ("ingest:after_quarantine", "erase:after_party_records")
# Every stage's last commit is its audit.runs row, written by one line of code for all
# (pipeline.context): the default sweep kills there in these stages only (--points names
# any other), and after the first vacuum only, to keep a full sweep under the hour
# (mid-write kills likewise: the tables MID lists).
AUDIT_SWEPT = ("resolve",)
SKIPPED_BY_DEFAULT = ("maintain:after_vacuum#2",)

# Mid-write kills: the table whose new files, before its log moves, trigger the kill.
MID: dict[str, tuple[str, ...]] = {
    "standardize": ("silver/party_records",),
    "block": ("silver/candidate_pairs",),
    "resolve": ("gold/identity_xref",),
    "publish": ("gold/customer_profile",),
}


@dataclass(frozen=True)
class StageSpec:
    name: str  # key of POINTS
    command: tuple[str, ...]  # udp subcommand and options
    base: str  # snapshot the stage starts from
    random_kills: int = 1


# The batch sweep: each stage from the state the one before it left (score_new_model: the
# first scoring after a retrain; train and score both start from block's state).
STAGES = (
    StageSpec("ingest", ("ingest",), "landed"),
    StageSpec("standardize", ("standardize",), "ingest"),
    StageSpec("block", ("block",), "standardize"),
    StageSpec("train", ("train",), "block"),
    StageSpec("score", ("score",), "block"),
    StageSpec("score_new_model", ("score",), "train", random_kills=0),
    StageSpec("resolve", ("resolve",), "score"),
    StageSpec("publish", ("publish",), "resolve"),
    StageSpec("evaluate", ("evaluate",), "publish"),
    StageSpec("maintain", ("maintain",), "evaluate"),
)
# Uninterrupted runs, each chain in one process from its base snapshot (evaluate and
# maintain after publish: neither changes a table the other reads).
CHAINS = (("landed", ("ingest", "standardize", "block", "score", "resolve", "publish",
                      "evaluate", "maintain")),
          ("block", ("train", "score_new_model")))
CHAIN_MARK = "[chaos-chain] "
STARTUP_EXTRA = 2.0  # interpreter and imports before the session (measured: 1.5-2.5 s)
# One part per kill (the stream's own points in POINTS among them); the resolve kill goes to a
# part whose uninterrupted run made identity events (a part of records that all join
# existing customers makes none, and the point is never reached).
STREAM_KILLS = ("mid:offsets", "resolve:after_identity_events", "stream:after_audit_runs",
                "stream:before_batch_commit", "random")

# Columns set aside when rows are compared: who wrote them and when, not what they say.
# (``_ingested_at`` is compared: it is the landed file's time, not the run's clock.)
VOLATILE = {"_run_id", "run_id", "event_at", "published_at", "quarantined_at",
            "entered_at", "entered_run_id", "exited_run_id", "valid_from", "_row_hash",
            "acquired_at", "recorded_at"}
# ... and per table: a profile event's id hashes the run that announced it.
VOLATILE_IN = {"gold.profile_events": {"event_id"}}
# Kept as "set or not" only: when a row was closed is volatile, whether it is is not.
CLOSED = {"valid_to", "exited_at"}
SKIP_TABLES = ("audit.",)  # run records and leases: one row per run by design


# --------------------------------------------------------------------------- processes


@dataclass
class StageRun:
    rc: int | None
    seconds: float
    killed: bool  # died by SIGKILL (its own crash point or ours)
    tail: str = ""


class Harness:
    def __init__(self, workdir: Path, people: int, seed: int) -> None:
        self.workdir = workdir
        self.run_dir = workdir / "run"  # every stage runs here: same paths, same batch ids
        self.snaps = workdir / "snapshots"
        self.people, self.seed = people, seed
        self.rng = random.Random(seed)
        self.durations: dict[str, float] = {}
        self.startup = 8.0  # process start to a ready session; measured by chain()

    # paths of the running lakehouse
    @property
    def lake(self) -> Path:
        return self.run_dir / "lake"

    @property
    def data(self) -> Path:
        return self.run_dir / "data"

    def env(self, extra: dict[str, str] | None = None) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("UDP_CRASH")}
        # the children run the harness's own copy of the code (an export of a commit), not
        # whatever the environment's install points at
        env["PYTHONPATH"] = os.pathsep.join(
            [str(REPO), *filter(None, [os.environ.get("PYTHONPATH", "")])])
        env.update({"UDP_AS_OF": AS_OF, "PYTHONUNBUFFERED": "1",
                    "UDP_MLFLOW_TRACKING_URI": f"sqlite:///{self.run_dir / 'mlflow.db'}",
                    "UDP_MLFLOW_REGISTRY_URI": "", "UDP_LAKEHOUSE": str(self.lake),
                    "UDP_DATA_ROOT": str(self.data)})
        env.update(extra or {})
        return env

    def config(self) -> Path:
        """conf/pipeline.yaml with a small Spark (two cores shared, tiny tables): the
        harness's own copy, sources read from the repository's conf/sources."""
        path = self.workdir / "pipeline.yaml"
        text = (REPO / "conf" / "pipeline.yaml").read_text(encoding="utf-8")
        spark = ("spark:\n  app_name: udp-chaos\n  master: local[2]\n  conf:\n"
                 "    spark.driver.memory: 1500m\n    spark.sql.shuffle.partitions: \"2\"\n"
                 "    spark.default.parallelism: \"2\"\n    spark.ui.enabled: \"false\"\n"
                 "    spark.sql.adaptive.enabled: \"false\"\n"
                 "    spark.sql.codegen.wholeStage: \"false\"\n"
                 "    spark.sql.codegen.factoryMode: NO_CODEGEN\n"
                 f"    spark.driver.extraJavaOptions: \"{SHORT_RUN_JAVA_OPTIONS}\"\n"
                 f"    spark.sql.warehouse.dir: {self.run_dir / 'warehouse'}\n\n")
        text, n = re.subn(r"^spark:\n(?:  .*\n)+\n", spark, text, flags=re.M)
        assert n == 1, "conf/pipeline.yaml: no spark: block found"
        text = re.sub(r"^sources_dir: .*$", f"sources_dir: {REPO / 'conf' / 'sources'}",
                      text, flags=re.M)
        path.write_text(text, encoding="utf-8")
        return path

    def udp(self, args: Iterable[str], *, crash: str | None = None,
            kill_after: float | None = None, kill_when: Callable[[], bool] | None = None,
            log_name: str = "stage", module: str = "udp_spark.cli") -> StageRun:
        """Run ``udp ARGS`` in its own process group; die at ``crash``, or have the whole
        group SIGKILLed after ``kill_after`` seconds or as soon as ``kill_when()``."""
        cmd = [sys.executable, "-m", module, *args]
        extra = {"UDP_CRASH_AT": crash, "UDP_CRASH_MODE": "kill"} if crash else {}
        logs = self.workdir / "logs"
        logs.mkdir(exist_ok=True)
        out = logs / f"{log_name}.log"
        t0 = time.monotonic()
        with out.open("w") as fh:
            proc = subprocess.Popen(cmd, env=self.env(extra), cwd=self.run_dir,
                                    start_new_session=True, stdout=fh,
                                    stderr=subprocess.STDOUT)
            killed_by_us = False
            while proc.poll() is None:
                elapsed = time.monotonic() - t0
                if ((kill_after is not None and elapsed >= kill_after)
                        or (kill_when is not None and kill_when())):
                    _killpg(proc.pid)
                    killed_by_us = True
                    break
                time.sleep(0.02)
            rc = proc.wait()
        _killpg(proc.pid)  # a JVM left behind by a Python that killed itself
        seconds = time.monotonic() - t0
        tail = "\n".join(out.read_text(errors="replace").splitlines()[-15:])
        return StageRun(rc, seconds, killed_by_us or rc == -signal.SIGKILL, tail)

    def common(self) -> list[str]:
        return ["--config", str(self.workdir / "pipeline.yaml")]

    # snapshots
    def snapshot(self, name: str) -> None:
        dst = self.snaps / name
        shutil.rmtree(dst, ignore_errors=True)
        shutil.copytree(self.run_dir, dst, symlinks=True)

    def restore(self, name: str) -> None:
        shutil.rmtree(self.run_dir, ignore_errors=True)
        shutil.copytree(self.snaps / name, self.run_dir, symlinks=True)

    # the scenario
    def build(self, reuse: bool = False) -> dict[str, float]:
        """Generate, run every batch stage on 70% of the rows, land the rest (snapshot
        ``landed``); the stream starts from ``initial`` (before the rows land). ``reuse``:
        keep the snapshots a previous harness run left in the workdir."""
        from udp_spark.generate import generate
        from udp_spark.generate.holdout import hold_out

        if reuse and (self.snaps / "landed").is_dir():
            self.config()
            for snap in self.snaps.iterdir():  # references are run again (measured)
                if snap.name not in ("initial", "landed"):
                    shutil.rmtree(snap)
            return {}
        shutil.rmtree(self.workdir, ignore_errors=True)
        self.run_dir.mkdir(parents=True)
        self.config()
        generate(self.data, people=self.people, seed=self.seed)
        hold_out(self.data, 0.3, seed=self.seed)
        _hold_out_lines(self.data, (("webshop", "orders.jsonl", "orders_late.jsonl"),
                                    ("app", "events.jsonl", "events_late.jsonl")), self.seed)
        times = self.chain([(s, (s,)) for s in ("ingest", "standardize", "block", "train",
                                                "score", "resolve", "publish")],
                           snapshots=False, log_name="build")
        self.startup = times.pop("startup", self.startup) + STARTUP_EXTRA
        self.snapshot("initial")
        late = late_mtime(self.data)
        for target, text in late_parts(self.data, 1)[0]:
            _write(target, text, late)
        self.snapshot("landed")
        return times

    def chain(self, stages: list[tuple[str, tuple[str, ...]]], *, snapshots: bool,
              log_name: str) -> dict[str, float]:
        """Run ``(name, udp command)`` stages one after the other in one process (one Spark
        session: a start-up saved per stage), in the running lakehouse; with ``snapshots``
        the state after each is kept as the snapshot ``name``. Returns seconds per stage,
        and ``startup`` (process start to a ready session)."""
        spec = json.dumps({"config": str(self.workdir / "pipeline.yaml"),
                           "run_dir": str(self.run_dir),
                           "snapshots": str(self.snaps) if snapshots else None,
                           "stages": stages})
        r = self.udp(["--chain", spec], log_name=log_name, module="udp_spark.chaos")
        if r.rc != 0:
            raise RuntimeError(f"uninterrupted {[s for s, _ in stages]} failed:\n{r.tail}")
        log = (self.workdir / "logs" / f"{log_name}.log").read_text(errors="replace")
        times = {k: v for line in log.splitlines() if line.startswith(CHAIN_MARK)
                 for k, v in json.loads(line[len(CHAIN_MARK):]).items()}
        return times

    def references(self, names: Iterable[str]) -> dict[str, float]:
        """The uninterrupted run of each named stage from its base, kept as the snapshot of
        its name (with every stage before it in :data:`CHAINS`); measured seconds."""
        by_name = {s.name: s for s in STAGES}
        needed: set[str] = set()
        for name in names:
            while name in by_name and name not in needed:
                needed.add(name)
                name = by_name[name].base
        out: dict[str, float] = {}
        for base, chain in CHAINS:
            todo = [n for n in chain if n in needed]
            if not todo:
                continue
            upto = chain[: chain.index(todo[-1]) + 1]
            self.restore(base)
            times = self.chain([(n, by_name[n].command) for n in upto], snapshots=True,
                               log_name=f"ref-{base}")
            startup = times.pop("startup", 0.0)
            for n in upto:
                out[n] = round(times[n], 1)
                # a stage run alone starts a process and a session first
                self.durations[n] = times[n] + startup + STARTUP_EXTRA
                self.startup = startup + STARTUP_EXTRA
        return out

    def kill_point(self, spec: StageSpec, point: str, index: int) -> dict[str, Any]:
        """One kill of ``spec`` (a named point, ``mid:<table>`` or ``random``), the re-run,
        and the comparison with the reference snapshot."""
        self.restore(spec.base)
        args = [*spec.command, *self.common()]
        tag = f"{index:02d}-{spec.name}-{re.sub(r'[^a-z0-9]+', '_', point.lower())}"
        if point == "random":  # inside the stage's work, after the process's start-up
            delay = self.startup + self.rng.uniform(0.05, 0.85) * (
                self.durations[spec.name] - self.startup)
            killed = self.udp(args, kill_after=delay, log_name=tag + "-killed")
            point = f"random@{delay:.1f}s"
        elif point.startswith("mid:"):
            killed = self.udp(args, kill_when=_mid_write(self.lake, point[4:]),
                              log_name=tag + "-killed")
        else:
            killed = self.udp(args, crash=point, log_name=tag + "-killed")
        rerun = self.udp(args, log_name=tag + "-rerun")
        result: dict[str, Any] = {
            "stage": spec.name, "point": point, "killed": killed.killed,
            "killed_seconds": round(killed.seconds, 1), "rerun_rc": rerun.rc,
            "rerun_seconds": round(rerun.seconds, 1)}
        if rerun.rc != 0:
            result["rerun_error"] = rerun.tail
        result.update(compare(self.run_dir, self.snaps / spec.name))
        return result

    def stream(self, parts: int, kills: tuple[str, ...]) -> list[dict[str, Any]]:
        """The held-back rows streamed in ``parts`` parts without kills (reference), then
        again from the same state with each part's first run killed (``kills``)."""
        batches = late_parts(self.data_of("initial"), parts)
        late = late_mtime(self.data_of("initial"))
        self.restore("initial")
        made_events: list[bool] = []  # per part: its uninterrupted run made identity events
        events = _row_count(self.lake / "gold" / "identity_events")
        for i, batch in enumerate(batches):
            for target, text in batch:
                _write(self.run_dir / target.relative_to(self.snaps / "initial"), text,
                       late)
            r = self.udp(["stream", "--available-now", *self.common()],
                         log_name=f"ref-stream-{i}")
            if r.rc != 0:
                raise RuntimeError(f"uninterrupted stream part {i} failed:\n{r.tail}")
            self.durations[f"stream-{i}"] = r.seconds - self.startup
            before, events = events, _row_count(self.lake / "gold" / "identity_events")
            made_events.append(events > before)
            self.snapshot(f"stream-part-{i}")  # each killed part is compared with its own
        self.snapshot("stream")
        assigned = stream_kill_plan(kills, made_events)
        self.restore("initial")
        results = []
        for i, batch in enumerate(batches):
            for target, text in batch:
                _write(self.run_dir / target.relative_to(self.snaps / "initial"), text,
                       late)
            point = assigned[i]
            args = ["stream", "--available-now", *self.common()]
            tag = f"stream-{i}"
            if point == "random":
                delay = self.startup + self.rng.uniform(0.05, 0.85) * self.durations[
                    f"stream-{i}"]
                killed = self.udp(args, kill_after=delay, log_name=tag + "-killed")
                point = f"random@{delay:.1f}s"
            elif point == "mid:offsets":
                killed = self.udp(args, kill_when=_new_file(
                    self.lake / "_checkpoints" / "stream" / "offsets"),
                    log_name=tag + "-killed")
            else:
                killed = self.udp(args, crash=point, log_name=tag + "-killed")
            rerun = self.udp(args, log_name=tag + "-rerun")
            res = {"stage": "stream", "part": i, "point": point, "killed": killed.killed,
                   "killed_seconds": round(killed.seconds, 1), "rerun_rc": rerun.rc,
                   "rerun_seconds": round(rerun.seconds, 1)}
            if rerun.rc != 0:
                res["rerun_error"] = rerun.tail
            # after this part, against the uninterrupted stream after the same part: the
            # first part that differs is the kill that made the difference
            part = compare(self.run_dir, self.snaps / f"stream-part-{i}")
            res.update({"compared_with": f"the uninterrupted stream after part {i}",
                        "part_ok": part["ok"], "part_rows_lost": part["rows_lost"],
                        "part_rows_duplicated": part["rows_duplicated"]})
            results.append(res)
        final = compare(self.run_dir, self.snaps / "stream")
        if not final["ok"]:  # kept to be looked into (the run folder is reused after)
            self.snapshot("stream-killed")
        return [*results, {"stage": "stream", "point": "final state", "killed": False,
                           "rerun_rc": 0, **final}]

    def data_of(self, snapshot: str) -> Path:
        return self.snaps / snapshot / "data"


def stream_kill_plan(kills: tuple[str, ...], made_events: list[bool]) -> list[str]:
    """The kill of each stream part (``kills`` in turn), the resolve kill moved to a part
    whose uninterrupted run made identity events (swapped with that part's kill)."""
    plan = [kills[i % len(kills)] for i in range(len(made_events))]
    need = "resolve:after_identity_events"
    if need in plan and not made_events[plan.index(need)]:
        i = plan.index(need)
        j = next((k for k, made in enumerate(made_events) if made), None)
        if j is not None:
            plan[i], plan[j] = plan[j], plan[i]
    return plan


def _row_count(table: Path) -> int:
    return len(_read(table)) if any((table / "_delta_log").glob("*.json")) else 0


def _killpg(pid: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signal.SIGKILL)


def _files(folder: Path) -> set[str]:
    if not folder.is_dir():
        return set()
    return {str(p) for p in folder.rglob("*") if p.is_file() and "_delta_log" not in p.parts
            and not p.name.startswith(".")}


def _log_versions(table: Path) -> int:
    log = table / "_delta_log"
    return len(list(log.glob("*.json"))) if log.is_dir() else 0


def _mid_write(lake: Path, pattern: str) -> Callable[[], bool]:
    """True once a table matching ``pattern`` has new data files and no new log entry:
    its commit is being written (data files land before the log entry that adds them)."""
    tables = [p for p in lake.glob(pattern) if p.is_dir()] if "*" in pattern else [
        lake / pattern]
    before = {t: (_files(t), _log_versions(t)) for t in tables}
    last_check = [0.0]

    def check() -> bool:
        now = time.monotonic()
        if now - last_check[0] < 0.05:
            return False
        last_check[0] = now
        for t, (files, versions) in before.items():
            if _log_versions(t) == versions and _files(t) - files:
                return True
        return False
    return check


def _new_file(folder: Path) -> Callable[[], bool]:
    before = {p.name for p in folder.iterdir()} if folder.is_dir() else set()

    def check() -> bool:
        return folder.is_dir() and any(p.name not in before and not p.name.startswith(".")
                                       for p in folder.iterdir())
    return check


# --------------------------------------------------------------------------- late data

def late_mtime(data: Path) -> int:
    """The modification time the late files get: a minute after the newest generated file.

    The same in every run of the scenario (the reference and the killed runs land the same
    files at different moments): batch ids hash it, and a row's landing time
    (``_ingested_at``) is it. Later than the first rows, as late rows are, and in the past
    (a landing time is never later than the run that lands it)."""
    newest = max(p.stat().st_mtime for p in data.rglob("*") if p.is_file())
    return int(newest) + 60


def _write(target: Path, text: str, mtime: int) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(text, encoding="utf-8")
    os.utime(target, (mtime, mtime))


def _hold_out_lines(data: Path, files: Iterable[tuple[str, str, str]], seed: int) -> None:
    """Hold back 30% of the lines of JSON-lines sources the generator's ``hold_out`` leaves
    whole (orders, app events), so that the late rows carry interactions too."""
    from udp_spark.generate.holdout import HELD_DIR

    rng = random.Random(seed)
    for folder, name, late in files:
        path = data / folder / name
        lines = path.read_text(encoding="utf-8").splitlines(keepends=True)
        held = set(rng.sample(range(len(lines)), round(len(lines) * 0.3)))
        target = data / HELD_DIR / folder / late
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text("".join(lines[i] for i in sorted(held)), encoding="utf-8")
        path.write_text("".join(ln for i, ln in enumerate(lines) if i not in held),
                        encoding="utf-8")


def late_parts(data: Path, parts: int) -> list[list[tuple[Path, str]]]:
    """The held-back files cut into ``parts`` parts of whole lines (CSV header kept), each
    a list of ``(target file in its source folder, text)``."""
    from udp_spark.generate.holdout import HELD_DIR

    out: list[list[tuple[Path, str]]] = [[] for _ in range(parts)]
    for path in sorted((data / HELD_DIR).glob("*/*")):
        lines = path.read_text(encoding="utf-8").splitlines(keepends=True)
        header = lines[:1] if path.suffix == ".csv" else []
        body = lines[len(header):]
        for i in range(parts):
            chunk = body[i::parts]
            if chunk:
                name = f"{path.stem}_{i:02d}{path.suffix}" if parts > 1 else path.name
                out[i].append((data / path.parent.name / name, "".join(header + chunk)))
    return out


# --------------------------------------------------------------------------- comparison


def delta_tables(lake: Path) -> dict[str, Path]:
    """``layer.table`` -> folder of every Delta table under the lakehouse root (a log
    folder without a commit, left by a first write that failed, is no table)."""
    return {f"{log.parent.parent.name}.{log.parent.name}": log.parent
            for log in sorted(lake.glob("*/*/_delta_log"))
            if any(log.glob("*.json")) or any(log.glob("*.checkpoint*.parquet"))}


def _read(path: Path, version: int | None = None) -> list[dict[str, Any]]:
    from deltalake import DeltaTable

    dt = DeltaTable(str(path), version=version) if version is not None else DeltaTable(
        str(path))
    if "deletionVectors" in (dt.protocol().reader_features or []):
        # the pair tables (tables.DELETION_VECTOR_TABLES): to_pyarrow_table refuses them
        from udp_spark.serve.snapshot import read_with_deletion_vectors

        return read_with_deletion_vectors(dt).to_pylist()  # type: ignore[no-any-return]
    return dt.to_pyarrow_table().to_pylist()  # type: ignore[no-any-return]


def customer_names(lake: Path) -> dict[str, str]:
    """customer_id -> its records (sorted, joined), from the latest version of
    ``gold.identity_xref`` holding the id: new ids are salted with the run that made them,
    so two runs name the same customer differently; the records name it alike. Rows are
    compared with every customer id in them so named (``customer_id``,
    ``related_customer_id``, a household's ``member_ids`` and ``members``)."""
    from deltalake import DeltaTable

    path = lake / "gold" / "identity_xref"
    if not (path / "_delta_log").is_dir():
        return {}
    names: dict[str, str] = {}
    for version in range(DeltaTable(str(path)).version(), -1, -1):
        try:
            rows = _read(path, version)
        except Exception:
            break
        members: dict[str, list[str]] = {}
        for r in rows:
            members.setdefault(r["customer_id"], []).append(r["record_id"])
        for cid, recs in members.items():
            names.setdefault(cid, "{" + ",".join(sorted(recs)) + "}")
    return names


def _canonical(row: dict[str, Any], names: dict[str, str], table: str = "") -> str:
    out: dict[str, Any] = {}
    skip = VOLATILE | VOLATILE_IN.get(table, set())
    for k, v in row.items():
        if k in skip:
            continue
        if k in CLOSED:
            v = v is not None
        elif k in ("customer_id", "related_customer_id") and v is not None:
            v = names.get(v, "?" + v)
        elif k == "member_ids" and v is not None:  # gold.households
            v = sorted(names.get(c, "?" + c) for c in v)
        elif k == "members" and v is not None:
            v = sorted(json.dumps({**m, "customer_id": names.get(m["customer_id"], "?" + str(
                m["customer_id"]))}, sort_keys=True, default=str) for m in v)
        out[k] = v
    return json.dumps(out, sort_keys=True, default=str)


def table_rows(lake: Path) -> dict[str, Counter[str]]:
    names = customer_names(lake)
    return {t: Counter(_canonical(r, names, t) for r in _read(p))
            for t, p in delta_tables(lake).items() if not t.startswith(SKIP_TABLES)}


def lake_facts(lake: Path) -> dict[str, Any]:
    """Partition of records into customers, open history rows per customer, identity
    events, duplicated keys: read with delta-rs."""
    tables = delta_tables(lake)
    facts: dict[str, Any] = {}
    names = customer_names(lake)
    if "gold.identity_xref" in tables:
        members: dict[str, set[str]] = {}
        for r in _read(tables["gold.identity_xref"]):
            members.setdefault(r["customer_id"], set()).add(r["record_id"])
        facts["partition"] = {frozenset(m) for m in members.values()}
    if "gold.customer_profile_history" in tables:
        open_rows = Counter(r["customer_id"] for r in _read(
            tables["gold.customer_profile_history"]) if r["valid_to"] is None)
        facts["customers_without_one_open_history_row"] = sum(
            1 for n in open_rows.values() if n != 1)
        if "gold.customer_profile" in tables:
            profiles = {r["customer_id"] for r in _read(tables["gold.customer_profile"])}
            facts["profiles_without_open_history_row"] = len(profiles - set(open_rows))
            facts["open_history_rows_without_profile"] = len(set(open_rows) - profiles)
    if "gold.identity_events" in tables:
        facts["identity_events"] = Counter(
            (r["event_type"], names.get(r["customer_id"], r["customer_id"]),
             names.get(r["related_customer_id"] or "", r["related_customer_id"]),
             r["records"]) for r in _read(tables["gold.identity_events"]))
    keys = {"silver.party_records": ("record_id",), "gold.identity_xref": ("record_id",),
            "gold.customer_profile": ("customer_id",),
            "silver.candidate_pairs": ("record_id_l", "record_id_r"),
            "silver.match_scores": ("record_id_l", "record_id_r"),
            "silver.interactions": ("interaction_id",), "silver.quarantine": ("quarantine_id",),
            "privacy.consent_events": ("event_id",), "gold.profile_events": ("event_id",)}
    # a profile event announced twice by two runs has two ids: count it by its content
    if "gold.profile_events" in tables:
        events = Counter((r["customer_id"], r["event_type"], r["detail"],
                          r["related_customer_id"]) for r in _read(tables[
                              "gold.profile_events"]))
        facts["profile_events_announced_twice"] = sum(n - 1 for n in events.values() if n > 1)
    dup = {}
    for t, cols in keys.items():
        if t in tables:
            c = Counter(tuple(r[k] for k in cols) for r in _read(tables[t]))
            n = sum(v - 1 for v in c.values() if v > 1)
            if n:
                dup[t] = n
    facts["duplicate_keys"] = dup
    return facts


def mlflow_facts(run_dir: Path) -> dict[str, Any]:
    """From MLflow's own store: runs still RUNNING, and the alias's version with its run's
    status and its model's state (a half-registered model is not READY or has no run)."""
    db = run_dir / "mlflow.db"
    if not db.is_file():
        return {}
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=f"sqlite:///{db}", registry_uri=f"sqlite:///{db}")
    exps = [e.experiment_id for e in client.search_experiments()]
    running = [r.info.run_id for r in client.search_runs(
        exps, "attributes.status = 'RUNNING'", max_results=1000)] if exps else []
    facts: dict[str, Any] = {"mlflow_runs_running": len(running)}
    try:
        mv = client.get_model_version_by_alias(MODEL, ALIAS)
    except Exception:
        facts["alias"] = None
        return facts
    run_status = client.get_run(mv.run_id).info.status if mv.run_id else None
    model_status = None
    model_id = getattr(mv, "model_id", None)
    if model_id:
        model_status = str(client.get_logged_model(model_id).status)
    files = [f.path for f in client.list_artifacts(mv.run_id)] if mv.run_id else []
    facts["alias"] = {"version": mv.version, "version_status": mv.status,
                      "run_status": run_status, "model_status": model_status,
                      "run_artifacts": sorted(files)}
    facts["alias_sound"] = (mv.status == "READY" and run_status == "FINISHED"
                            and (model_status is None or model_status.endswith("READY")))
    return facts


def compare(got_dir: Path, want_dir: Path) -> dict[str, Any]:
    """What ``got_dir`` (killed and re-run) has that ``want_dir`` (uninterrupted) has not,
    and the other way round."""
    got_lake, want_lake = got_dir / "lake", want_dir / "lake"
    got, want = table_rows(got_lake), table_rows(want_lake)
    lost, dup = {}, {}
    for t in sorted(set(got) | set(want)):
        g, w = got.get(t, Counter()), want.get(t, Counter())
        if t not in got:
            lost[t] = sum(w.values())
            continue
        n_lost, n_extra = sum((w - g).values()), sum((g - w).values())
        if n_lost:
            lost[t] = n_lost
        if n_extra:
            dup[t] = n_extra
    gf, wf = lake_facts(got_lake), lake_facts(want_lake)
    gm, wm = mlflow_facts(got_dir), mlflow_facts(want_dir)
    diff: dict[str, Any] = {"rows_lost": lost, "rows_duplicated": dup}
    diff["partition_equal"] = gf.get("partition") == wf.get("partition")
    ge, we = gf.get("identity_events", Counter()), wf.get("identity_events", Counter())
    diff["identity_events_lost"] = sum((we - ge).values())
    diff["identity_events_extra"] = sum((ge - we).values())
    diff["duplicate_keys"] = gf.get("duplicate_keys", {})
    diff["profile_events_announced_twice"] = max(0, gf.get(
        "profile_events_announced_twice", 0) - wf.get("profile_events_announced_twice", 0))
    for k in ("customers_without_one_open_history_row", "profiles_without_open_history_row",
              "open_history_rows_without_profile"):
        if k in gf:
            diff[k] = gf[k]
    diff["mlflow_runs_running"] = gm.get("mlflow_runs_running", 0)
    if wm.get("alias") is not None:
        diff["alias_sound"] = bool(gm.get("alias_sound"))
        diff["alias_version"] = (gm.get("alias") or {}).get("version")
    diff["ok"] = _ok(diff)
    return diff


def _ok(d: dict[str, Any]) -> bool:
    return (not d["rows_lost"] and not d["rows_duplicated"] and d["partition_equal"]
            and not d["identity_events_lost"] and not d["identity_events_extra"]
            and not d["duplicate_keys"] and not d["profile_events_announced_twice"]
            and not d.get("customers_without_one_open_history_row")
            and not d.get("profiles_without_open_history_row")
            and not d.get("open_history_rows_without_profile")
            and not d["mlflow_runs_running"] and d.get("alias_sound", True))


# --------------------------------------------------------------------------- the sweep


@dataclass
class Plan:
    stages: tuple[StageSpec, ...]
    points: dict[str, list[str]] = field(default_factory=dict)  # stage -> kill points


def plan(stages: list[str] | None, points: list[str] | None, random_kills: int | None
         ) -> Plan:
    """Every stage's named points, its mid-write points and ``random_kills`` random ones
    (default: the stage's own); ``stages``/``points`` select a subset."""
    chosen = [s for s in STAGES if not stages or s.name in stages]
    out = Plan(tuple(chosen))
    for s in chosen:
        named = [k for k in POINTS[s.name] if points or (
            k not in SKIPPED_BY_DEFAULT
            and (not k.endswith(":after_audit_runs") or s.name in AUDIT_SWEPT))]
        kills = [*named, *(f"mid:{t}" for t in MID.get(s.name, ()))]
        if s.name == "score_new_model":
            kills = list(POINTS[s.name])
        kills += ["random"] * (s.random_kills if random_kills is None else random_kills)
        if points:
            kills = [k for k in kills if k in points or k.split("#")[0] in points]
        out.points[s.name] = kills
    return out


def run(workdir: Path, people: int, seed: int, *, stages: list[str] | None = None,
        points: list[str] | None = None, random_kills: int | None = None,
        stream_parts: int = len(STREAM_KILLS), stream_kills: tuple[str, ...] = STREAM_KILLS,
        reuse: bool = False, stop_at: float | None = None) -> dict[str, Any]:
    t0 = time.monotonic()
    h = Harness(workdir, people, seed)
    report: dict[str, Any] = {"people": people, "seed": seed}
    report["build_seconds"] = h.build(reuse)
    p = plan(stages, points, random_kills)
    results: list[dict[str, Any]] = []
    refs: dict[str, float] = {}
    report["reference_seconds"] = refs
    report["points"] = results

    def progress(res: dict[str, Any]) -> None:  # partial results survive a harness crash
        sys.stderr.write(f"[chaos] {res['stage']} {res['point']}: killed={res.get('killed')} "
                         f"ok={res.get('ok')}\n")
        (workdir / "report.partial.json").write_text(json.dumps(
            report, indent=2, default=_jsonable), encoding="utf-8")

    refs.update(h.references(s.name for s in p.stages if p.points[s.name]))
    # Named points first, then random, then mid-write kills, each round robin over the
    # stages (the stream after the first round): a sweep stopped early (--stop-at) has
    # still killed every stage, after its commits first.
    def kind(point: str) -> int:
        return 2 if point.startswith("mid:") else 1 if point == "random" else 0

    queue: list[tuple[StageSpec, str]] = []
    for k in (0, 1, 2):
        of_kind = {s.name: [x for x in p.points[s.name] if kind(x) == k] for s in p.stages}
        for i in range(max(map(len, of_kind.values()), default=0)):
            queue += [(s, of_kind[s.name][i]) for s in p.stages if i < len(of_kind[s.name])]
    streamed = not (stream_parts and (not stages or "stream" in stages))
    skipped: list[str] = []
    for n, (spec, point) in enumerate(queue):
        if not streamed and n == len(p.stages):
            streamed = True
            _stream(h, results, stream_parts, stream_kills, progress)
        if stop_at is not None and time.time() > stop_at:
            skipped.append(f"{spec.name} {point}")
            continue
        results.append(h.kill_point(spec, point, len(results)))
        progress(results[-1])
    report["not_run_for_time"] = skipped
    if not streamed:
        _stream(h, results, stream_parts, stream_kills, progress)
    kills = [r for r in results if r.get("killed")]
    report["summary"] = {
        "kill_points": len(kills),
        # a named or mid-write point never reached is a hole in the sweep; a random delay
        # longer than the run itself only a kill that did not happen
        "not_killed": [f"{r['stage']} {r['point']}" for r in results
                       if not r.get("killed") and r["point"] != "final state"
                       and not r["point"].startswith("random")],
        "random_finished_first": [f"{r['stage']} {r['point']}" for r in results
                                  if not r.get("killed") and r["point"].startswith("random")],
        "per_stage": dict(Counter(r["stage"] for r in kills)),
        "rows_lost": sum(sum(r.get("rows_lost", {}).values()) for r in results),
        "rows_duplicated": sum(sum(r.get("rows_duplicated", {}).values()) for r in results),
        "failed": [f"{r['stage']} {r['point']}" for r in results
                   if ("ok" in r and not r["ok"]) or r.get("rerun_rc") not in (0, None)],
        "seconds": round(time.monotonic() - t0),
    }
    return report


def _stream(h: Harness, results: list[dict[str, Any]], parts: int, kills: tuple[str, ...],
            progress: Callable[[dict[str, Any]], None]) -> None:
    try:
        results += h.stream(parts, kills)
    except Exception as exc:  # a harness failure is a failed point, not a lost report
        results.append({"stage": "stream", "point": "harness", "killed": False,
                        "ok": False, "error": repr(exc)[:3000]})
    progress(results[-1])


def _utc_today(hhmm: str) -> float:
    """The next moment the UTC clock reads ``HH:MM``, as a Unix time."""
    from datetime import UTC, datetime, timedelta

    now = datetime.now(UTC)
    hour, minute = (int(x) for x in hhmm.split(":"))
    at = now.replace(hour=hour, minute=minute, second=0, microsecond=0)
    return (at if at > now else at + timedelta(days=1)).timestamp()


def _jsonable(obj: Any) -> Any:
    if isinstance(obj, (set, frozenset)):
        return sorted(obj)
    if isinstance(obj, Counter):
        return dict(obj)
    return str(obj)


def chain_main(spec_json: str) -> int:
    """``--chain SPEC``: run stages one after the other in this process (see
    :meth:`Harness.chain`), printing ``[chaos-chain] {name: seconds}`` after each."""
    from udp_spark.cli import app
    from udp_spark.config import load_config
    from udp_spark.session import get_session

    t0 = time.monotonic()
    spec = json.loads(spec_json)
    get_session(load_config(spec["config"]).spark)
    sys.stdout.write(CHAIN_MARK + json.dumps({"startup": time.monotonic() - t0}) + "\n")
    for name, command in spec["stages"]:
        t1 = time.monotonic()
        app(args=[*command, "--config", spec["config"]], standalone_mode=False)
        sys.stdout.write(CHAIN_MARK + json.dumps({name: time.monotonic() - t1}) + "\n")
        sys.stdout.flush()
        if spec["snapshots"]:
            dst = Path(spec["snapshots"]) / name
            shutil.rmtree(dst, ignore_errors=True)
            shutil.copytree(spec["run_dir"], dst, symlinks=True)
    return 0


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["--chain"]:
        return chain_main(argv[1])
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/udp-chaos"))
    parser.add_argument("--people", type=int, default=40)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--stages", nargs="*", help="only these (names as in the report; "
                        "stream included)")
    parser.add_argument("--points", nargs="*", help="only these kill points (names, "
                        "mid:<table>, random)")
    parser.add_argument("--random-kills", type=int, default=None,
                        help="random kills per stage (default 1)")
    parser.add_argument("--stream-parts", type=int, default=len(STREAM_KILLS),
                        help="parts the stream lands the late rows in (0: no stream)")
    parser.add_argument("--stop-at", help="UTC time (HH:MM) after which no new batch kill "
                        "point starts; the ones left are listed as not run")
    parser.add_argument("--reuse", action="store_true", help="keep the generated lakehouse "
                        "a previous run left in --workdir (same --people and --seed)")
    args = parser.parse_args(argv)
    report = run(args.workdir, args.people, args.seed, stages=args.stages, points=args.points,
                 random_kills=args.random_kills, stream_parts=args.stream_parts,
                 reuse=args.reuse, stop_at=_utc_today(args.stop_at) if args.stop_at else None)
    text = json.dumps(report, indent=2, default=_jsonable)
    (args.workdir / "report.json").write_text(text + "\n", encoding="utf-8")
    sys.stdout.write(text + "\n")
    s = report["summary"]
    return 1 if s["failed"] or s["not_killed"] else 0


if __name__ == "__main__":
    sys.exit(main())
