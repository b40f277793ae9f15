"""Bench legs run on a lakehouse the pipeline built (``make bench``, docs/bench.md).

After the first repetition's pipeline pass, three legs measure what issues 12, 14 and 15
ask for, each in its own process (``python -m udp_spark.bench_legs <leg> DATA LAKE WORK``,
one JSON line out), each driving the real command in a child process:

- ``stream``: ``udp stream`` watching the landing folders; files of 100 and 1,000 new source
  rows land one at a time; latency from the landing to the Delta commits of
  ``gold.customer_profile`` and ``gold.profile_events`` that took them in.
- ``api``: ``udp serve`` on the lakehouse; start-up time, resident memory, and open-loop
  load (``udp_spark.serve.loadgen``) on look-ups by customer id and by e-mail, and on
  ``POST /v1/resolve`` when the server has it.
- ``erase``: ``udp erase --customer`` of one customer with records in several sources; wall
  time, and files added / removed per table from the Delta logs between the versions before
  and after, with phases read off the commits' times and stages.

They run in :data:`LEG_ORDER`: the API after the stream (it serves the streamed state), the
erasure last (it changes the lakehouse). A leg that fails reports ``error`` and the others
still run.
"""

from __future__ import annotations

import ast
import itertools
import json
import math
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
import urllib.parse
import uuid
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import asdict
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
LEG_ORDER = ("stream", "api", "erase", "review")
STREAM_BATCH_SIZES = (100, 1000)
SHARED_MACHINE = ("client and server share this machine (2 cores): the load generator's "
                  "threads compete with the server for CPU")


# --- Delta logs --------------------------------------------------------------------------

def delta_tables(lake: Path) -> list[Path]:
    """Every Delta table under ``lake`` (folders holding a ``_delta_log``), sorted."""
    return sorted(p.parent for p in lake.rglob("_delta_log") if p.is_dir()
                  and "_checkpoints" not in p.parts)


def delta_version(table: Path) -> int:
    """The latest committed version of a table from its log (-1 when it has none)."""
    versions = [int(p.stem) for p in (table / "_delta_log").glob("*.json")
                if p.stem.isdigit()]
    return max(versions, default=-1)


def delta_commits(table: Path, after: int = -1) -> list[dict[str, Any]]:
    """The commits of a table after version ``after``, read from its JSON log: version,
    commit time (ms), operation, the stage of its user metadata (``io.commit_metadata``),
    files added and removed (data files), those carrying deletion vectors, change-data
    files, and VACUUM's deleted-file count."""
    out = []
    for path in sorted((table / "_delta_log").glob("*.json")):
        if not path.stem.isdigit() or int(path.stem) <= after:
            continue
        c: dict[str, Any] = {"version": int(path.stem), "timestamp_ms": None,
                             "operation": None, "stage": None, "files_added": 0,
                             "files_removed": 0, "dv_added": 0, "cdc_files": 0,
                             "vacuum_deleted": 0}
        for line in path.read_text().splitlines():
            if not line.strip():
                continue
            action = json.loads(line)
            if "commitInfo" in action:
                info = action["commitInfo"]
                c["timestamp_ms"] = info.get("inCommitTimestamp") or info.get("timestamp")
                c["operation"] = info.get("operation")
                try:
                    meta = json.loads(info.get("userMetadata") or "{}")
                except ValueError:
                    meta = {}
                c["stage"] = meta.get("stage") if isinstance(meta, dict) else None
                if c["operation"] == "VACUUM END":
                    c["vacuum_deleted"] = int((info.get("operationMetrics") or {})
                                              .get("numDeletedFiles", 0))
            elif "add" in action:
                c["files_added"] += 1
                c["dv_added"] += bool(action["add"].get("deletionVector"))
            elif "remove" in action:
                c["files_removed"] += 1
            elif "cdc" in action:
                c["cdc_files"] += 1
        out.append(c)
    return out


def file_changes(lake: Path, before: dict[str, int]) -> dict[str, Any]:
    """Per table and in total: commits, files added / removed, deletion-vector and change
    data files, files VACUUM deleted, since the versions in ``before`` (relative path ->
    version; tables not in it are read from their start)."""
    tables: dict[str, dict[str, int]] = {}
    for table in delta_tables(lake):
        name = str(table.relative_to(lake))
        commits = delta_commits(table, before.get(name, -1))
        if not commits:
            continue
        tables[name] = {"commits": len(commits), **{k: sum(c[k] for c in commits) for k in (
            "files_added", "files_removed", "dv_added", "cdc_files", "vacuum_deleted")}}
    total = {k: sum(t[k] for t in tables.values()) for k in (
        "commits", "files_added", "files_removed", "dv_added", "cdc_files", "vacuum_deleted")}
    return {"tables": tables, "total": {"tables": len(tables), **total}}


def commit_phases(lake: Path, before: dict[str, int], started: float
                  ) -> list[dict[str, Any]]:
    """Consecutive commits of one kind across all tables, in time order, as phases: the
    stage in the commit's user metadata (``erase`` when none), ``purge`` for REORG and
    VACUUM. A phase lasts from the previous phase's last commit to its own last commit;
    ``start`` is from ``started`` to the first commit."""
    commits = []
    for table in delta_tables(lake):
        for c in delta_commits(table, before.get(str(table.relative_to(lake)), -1)):
            if c["timestamp_ms"] is not None:
                op = c["operation"] or ""
                kind = ("purge" if op.startswith(("VACUUM", "REORG"))
                        else c["stage"] or "erase")
                commits.append((c["timestamp_ms"] / 1000, kind))
    commits.sort()
    # Up to the first commit: process and Spark start, the lease, finding the subject.
    phases: list[dict[str, Any]] = ([{"phase": "start", "commits": 0, "seconds": round(
        commits[0][0] - started, 1)}] if commits else [])
    prev = commits[0][0] if commits else started
    for kind, group in itertools.groupby(commits, key=lambda x: x[1]):
        items = list(group)
        end = items[-1][0]
        phases.append({"phase": kind, "commits": len(items), "seconds": round(end - prev, 1)})
        prev = end
    return phases


def latency_summary(seconds: Iterable[float | None]) -> dict[str, Any]:
    """Count, p50, p95 (nearest rank) and max of the latencies that were measured."""
    xs = sorted(x for x in seconds if x is not None)
    if not xs:
        return {"n": 0, "p50_s": None, "p95_s": None, "max_s": None}

    def rank(q: float) -> float:
        return round(xs[max(0, math.ceil(q * len(xs)) - 1)], 1)
    return {"n": len(xs), "p50_s": rank(0.5), "p95_s": rank(0.95), "max_s": round(xs[-1], 1)}


# --- processes ---------------------------------------------------------------------------

def udp_command(command: str, data: Path, lake: Path, *args: str) -> list[str]:
    """``udp <command>`` on the bench's config, data and lakehouse."""
    return [sys.executable, "-m", "udp_spark.cli", command, *args, "--config",
            str(REPO / "conf" / "pipeline.yaml"), "--data-root", str(data.resolve()),
            "--lakehouse", str(lake.resolve())]


def udp_env(lake: Path, **extra: str) -> dict[str, str]:
    """The environment of a ``udp`` child: the bench's MLflow store (the pipeline pass put
    the registered matcher in ``<lake>/mlflow.db``) and unbuffered output."""
    uri = f"sqlite:///{(lake / 'mlflow.db').resolve()}"
    # MLflow's own variable too: a models:/ download given no registry URI resolves it
    # against MLflow's process default, not the config's tracking URI.
    return {**os.environ, "PYTHONUNBUFFERED": "1", "UDP_MLFLOW_TRACKING_URI": uri,
            "MLFLOW_TRACKING_URI": uri, **extra}


class Child:
    """A ``udp`` child process in its own process group, its peak resident memory sampled."""

    def __init__(self, cmd: list[str], env: dict[str, str], log: Path,
                 stdout_pipe: bool = False) -> None:
        self.log = log
        self._log = log.open("wb")
        self.started = time.time()
        self.proc = subprocess.Popen(
            cmd, env=env, cwd=REPO, stdout=subprocess.PIPE if stdout_pipe else self._log,
            stderr=self._log, start_new_session=True, text=stdout_pipe or None)
        from udp_spark.bench import MemorySampler

        self.memory = MemorySampler(self.proc.pid, interval=1.0)

    @property
    def peak_pss_mib(self) -> float:
        """Peak memory of its process tree (PSS: see ``udp_spark.bench._tree_memory_kb``)."""
        return self.memory.peak_pss_mib

    def pss_mib(self) -> float:
        return self.memory.current_pss_mib()

    def tail(self, lines: int = 15) -> str:
        if not self._log.closed:  # after stop() the log file is closed and complete
            self._log.flush()
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])

    def stop(self, sig: int = signal.SIGINT, wait: float = 180.0) -> int | None:
        """Ask it to stop (``sig``), then kill its process group if it does not."""
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(wait)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(30)
        self.memory.stop()
        self._log.close()
        return self.proc.returncode


def _delta_rows(path: Path, columns: list[str]) -> list[dict[str, Any]]:
    from deltalake import DeltaTable

    from udp_spark.serve.snapshot import read_table

    return read_table(DeltaTable(str(path))).select(columns).to_pylist()


# --- stream ------------------------------------------------------------------------------

_BATCH_LINE = re.compile(r"micro-batch (\d+): (\d+) files from (.*), ([\d,]+) rows landed, "
                         r"([\d.]+)s (\{.*\}); profile events (\{.*\})")


def _parse_batch(line: str) -> dict[str, Any] | None:
    m = _BATCH_LINE.search(line)
    if not m:
        return None
    return {"batch_id": int(m[1]), "files": int(m[2]), "sources": m[3].split(", "),
            "rows_landed": int(m[4].replace(",", "")), "seconds": float(m[5]),
            "stages": ast.literal_eval(m[6]), "profile_events": ast.literal_eval(m[7])}


def _jsonl(path: Path) -> list[dict[str, Any]]:
    rows = []
    for p in sorted(path.parent.glob(path.name)):
        rows += [json.loads(x) for x in p.read_text(encoding="utf-8").splitlines() if x]
    return rows


class Landings:
    """New source rows for the stream, ``n`` at a time, as JSON-lines files of the web shop
    and the app: half new orders of existing web-shop customers, a quarter new app accounts
    of known people (a web-shop customer's name, e-mail and phone), a quarter new people (the
    generator with another seed)."""

    def __init__(self, data: Path, lake: Path, work: Path, people: int, seed: int = 8) -> None:
        from udp_spark.generate import generate

        self.data, self.rng, self.count = data, random.Random(seed), 0
        known = {r["record_id"].split(":", 1)[1]: r["customer_id"] for r in _delta_rows(
            lake / "gold" / "identity_xref", ["record_id", "customer_id"])
            if r["record_id"].startswith("webshop_customers:")}
        self.customer_of = known
        self.shop = [r for r in _jsonl(data / "webshop" / "customers*.jsonl")
                     if r["customer_id"] in known]
        self.orders = [r for r in _jsonl(data / "webshop" / "orders*.jsonl")
                       if r["customer_id"] in known]
        fresh = work / "stream-new-people"
        shutil.rmtree(fresh, ignore_errors=True)
        generate(fresh, people=people, seed=seed)
        self.new_people = _jsonl(fresh / "webshop" / "customers.jsonl")
        self.rng.shuffle(self.new_people)
        shutil.rmtree(fresh, ignore_errors=True)
        self.staging = data / "_bench_staging"  # matches no source's path pattern
        # a file source never takes a path it has seen again: names unique across runs
        self.run = time.strftime("%Y%m%dT%H%M%S", time.gmtime())

    def make(self, n: int) -> tuple[list[Path], dict[str, int]]:
        """Write the next ``n`` rows to the staging folder; (files, customer id -> orders
        landed for it)."""
        self.count += 1
        k, now = self.count, time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        n_orders, n_known = n // 2, n // 4
        n_new = n - n_orders - n_known
        if len(self.new_people) < n_new:
            raise RuntimeError(f"the generator's new people ran out ({len(self.new_people)} "
                               f"left, {n_new} wanted)")
        orders, marks = [], Counter[str]()
        for i, o in enumerate(self.rng.choices(self.orders, k=n_orders)):
            orders.append({**o, "order_id": f"bench-{k}-{i}", "ordered_at": now,
                           "status": "completed"})
            marks[self.customer_of[o["customer_id"]]] += 1
        now_ms = int(time.time() * 1000)
        users = []
        # without replacement while there are enough (small sizes reuse people)
        known = (self.rng.sample(self.shop, n_known) if len(self.shop) >= n_known
                 else self.rng.choices(self.shop, k=n_known))
        for c in known:
            name = c.get("name") or {}
            dob = c.get("date_of_birth")
            users.append({"user_id": str(uuid.UUID(int=self.rng.getrandbits(128))),
                          "display_name": " ".join(x for x in (name.get("first"),
                                                               name.get("last")) if x),
                          "email": c.get("email"), "phone": c.get("phone"),
                          "country": (c.get("shipping_address") or {}).get("country") or "US",
                          "birth_year": int(dob[:4]) if dob else None,
                          "signup_ts": now_ms, "last_active_ts": now_ms})
        new, self.new_people = self.new_people[:n_new], self.new_people[n_new:]
        files = []
        tag = f"bench_{self.run}_{k:03d}"
        for folder, name, rows in (("webshop", f"orders_{tag}.jsonl", orders),
                                   ("app", f"users_{tag}.jsonl", users),
                                   ("webshop", f"customers_{tag}.jsonl", new)):
            path = self.staging / folder / name
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
            files.append(path)
        return files, dict(marks)

    def land(self, files: list[Path]) -> float:
        """Move the staged files into their landing folders; the time the first landed."""
        landed = time.time()
        for f in files:
            os.replace(f, self.data / f.parent.name / f.name)
        return landed


def _commit_times(lake: Path, tables: tuple[str, ...], since: float, until: float
                  ) -> dict[str, float | None]:
    """Per table, the last commit time (s) within [since, until], None if there is none."""
    out: dict[str, float | None] = {}
    for t in tables:
        times = [c["timestamp_ms"] / 1000 for c in delta_commits(lake / t)
                 if c["timestamp_ms"] and since * 1000 <= c["timestamp_ms"] <= until * 1000]
        out[t] = max(times, default=None)
    return out


def stream_leg(data: Path, lake: Path, work: Path, landings: int = 10,
               wait_s: float = 1800.0) -> dict[str, Any]:
    """``udp stream`` on the lakehouse; ``landings`` files of each of
    :data:`STREAM_BATCH_SIZES` rows, alternating sizes, each landed when the previous one is
    committed."""
    gold = ("gold/customer_profile", "gold/profile_events")
    sizes = [s for _ in range(landings) for s in STREAM_BATCH_SIZES]
    need_new = sum(n - n // 2 - n // 4 for n in sizes)
    t0 = time.perf_counter()
    feed = Landings(data, lake, work, people=int(need_new / 0.25) + 100)
    prep_s = time.perf_counter() - t0
    batches: list[tuple[float, dict[str, Any]]] = []
    arrived = threading.Condition()
    child = Child(udp_command("stream", data, lake), udp_env(lake), work / "stream.log",
                  stdout_pipe=True)

    def read() -> None:
        assert child.proc.stdout is not None
        for line in child.proc.stdout:
            b = _parse_batch(line)
            if b is not None:
                with arrived:
                    batches.append((time.time(), b))
                    arrived.notify_all()
        with arrived:
            arrived.notify_all()

    threading.Thread(target=read, daemon=True).start()

    def wait_for(pred: Callable[[], bool], timeout: float) -> bool:
        end = time.monotonic() + timeout
        with arrived:
            while not pred():
                if child.proc.poll() is not None or time.monotonic() > end:
                    return pred()
                arrived.wait(1.0)
        return True

    result: dict[str, Any] = {"new_people_generated_s": round(prep_s, 1)}
    try:
        # The first micro-batch lists every file already there (all ingested before: a
        # no-op batch that pays the JVM's warm-up); landings start after it.
        if not wait_for(lambda: bool(batches), wait_s):
            raise RuntimeError(f"no first micro-batch in {wait_s:.0f} s:\n{child.tail()}")
        result["start_to_first_batch_s"] = round(batches[0][0] - child.started, 1)
        result["first_batch"] = batches[0][1]
        rows: list[dict[str, Any]] = []
        for n in sizes:
            files, marks = feed.make(n)
            seen = len(batches)
            landed = feed.land(files)

            def done(seen: int = seen, k: int = len(files)) -> bool:
                # every landed file taken in (rows a check rejects would never add up)
                return sum(b["files"] for _, b in batches[seen:]) >= k

            ok = wait_for(done, wait_s)
            end, mine = time.time(), batches[seen:]
            if mine:
                end = mine[-1][0]
            commits = _commit_times(lake, gold, landed, end + 1)
            profile_t = commits["gold/customer_profile"]
            event_t = commits["gold/profile_events"]
            row: dict[str, Any] = {
                "rows": n, "complete": ok, "micro_batches": len(mine),
                "rows_landed": sum(b["rows_landed"] for _, b in mine),
                "to_profile_commit_s": round(profile_t - landed, 1) if profile_t else None,
                "to_event_commit_s": round(event_t - landed, 1) if event_t else None,
                "to_batch_end_s": round(end - landed, 1) if mine else None,
                "stages_s": [b["stages"] for _, b in mine],
                "profile_events": dict(sum((Counter(b["profile_events"]) for _, b in mine),
                                           Counter()))}
            # Latency to the profile and its event both committed (the later of the two).
            both = [t for t in (profile_t, event_t) if t]
            row["latency_s"] = round(max(both) - landed, 1) if both else None
            row["orders_seen"] = _orders_seen(lake, marks)
            rows.append(row)
            if not ok:
                result["error"] = (f"a landing of {n} rows was not taken in within "
                                   f"{wait_s:.0f} s:\n{child.tail()}")
                break
        result["landings"] = rows
        result["latency"] = {str(n): latency_summary(r["latency_s"] for r in rows
                                                     if r["rows"] == n)
                             for n in STREAM_BATCH_SIZES}
    finally:
        peak = child.peak_pss_mib
        rc = child.stop(signal.SIGINT)
        result.update(stream_exit=rc, stream_peak_pss_mib=round(peak),
                      log=str(child.log))
        shutil.rmtree(feed.staging, ignore_errors=True)
    return result


def _orders_seen(lake: Path, marks: dict[str, int]) -> dict[str, int]:
    """How many of the customers given new orders show at least that many orders in the
    profile now (the effect checked after the latency, outside the timing)."""
    if not marks:
        return {"customers": 0, "with_orders": 0}
    profiles = {r["customer_id"]: r["orders"] for r in _delta_rows(
        lake / "gold" / "customer_profile", ["customer_id", "orders"])}
    return {"customers": len(marks),
            "with_orders": sum(1 for c, k in marks.items() if (profiles.get(c) or 0) >= k)}


# --- API ---------------------------------------------------------------------------------

_ALIASES = {"first_name": "given_name", "last_name": "family_name", "name": "full_name",
            "birth_date": "date_of_birth", "dob": "date_of_birth", "postal_code": "postcode",
            "zip": "postcode", "mobile": "phone", "address": "street", "line1": "street"}


_MATCHABLE = ("given_name", "family_name", "email", "phone", "mobile", "loyalty_id")


def _resolve_body(spec: dict[str, Any], schema: dict[str, Any], profile: dict[str, Any],
                  depth: int = 0) -> dict[str, Any]:
    """A request body for ``schema`` (OpenAPI, ``$ref`` followed) filled from a profile's
    fields of the same (or a usual alias) name."""
    while "$ref" in schema:
        schema = spec["components"]["schemas"][schema["$ref"].rsplit("/", 1)[1]]
    body: dict[str, Any] = {}
    for prop, sub in (schema.get("properties") or {}).items():
        inner = sub
        for alt in sub.get("anyOf", []) + sub.get("allOf", []):
            if "$ref" in alt or alt.get("type") == "object":
                inner = alt
        if ("$ref" in inner or inner.get("type") == "object") and depth < 2:
            nested = _resolve_body(spec, inner, profile, depth + 1)
            if nested:
                body[prop] = nested
            continue
        value = profile.get(prop, profile.get(_ALIASES.get(prop, "")))
        if value is not None:
            body[prop] = value if isinstance(value, (bool, int, float)) else str(value)
    return body


def api_leg(data: Path, lake: Path, work: Path, rate: float = 200.0,
            seconds: float = 15.0, resolve_wait_s: float = 600.0) -> dict[str, Any]:
    """``udp serve`` on the lakehouse: start-up, memory, look-ups by id and by e-mail, and
    ``POST /v1/resolve`` (when the server has it) at ``rate`` requests/s, open loop."""
    import httpx
    import yaml

    from udp_spark.platform.process import free_port
    from udp_spark.serve.keys import mint_key
    from udp_spark.serve.loadgen import run_load

    api = yaml.safe_load((REPO / "conf" / "api.yaml").read_text())
    support_key, support_hash = mint_key("bench-support")
    all_key, all_hash = mint_key("bench-all")
    api["roles"]["bench_all"] = {"description": "bench: every endpoint", "endpoints": ["*"],
                                 "purpose": None, "fields": ["*"]}
    api.update({"keys": [{"id": "bench-support", "role": "support", "hash": support_hash},
                         {"id": "bench-all", "role": "bench_all", "hash": all_hash}],
                "keys_file": None, "jwt": None,
                # the bench's load is not a client to throttle
                "rate_limit": {"per_second": 100000, "burst": 100000}})
    api_file = work / "api.yaml"
    api_file.write_text(yaml.safe_dump(api))
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    child = Child(udp_command("serve", data, lake, "--api-config", str(api_file), "--port",
                              str(port)),
                  udp_env(lake, UDP_API_PSEUDONYM_KEY="bench-pseudonym-key"),
                  work / "serve.log")
    result: dict[str, Any] = {"note": SHARED_MACHINE, "rate_per_s": rate,
                              "seconds_per_load": seconds}
    try:
        up = None
        while time.time() - child.started < 900:
            if child.proc.poll() is not None:
                raise RuntimeError(f"udp serve exited {child.proc.returncode}:\n{child.tail()}")
            try:
                if httpx.get(base + "/health", timeout=2).status_code == 200:
                    up = time.time()
                    break
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        if up is None:
            raise RuntimeError(f"udp serve did not answer /health in 900 s:\n{child.tail()}")
        result["startup_s"] = round(up - child.started, 1)
        result["pss_after_start_mib"] = round(child.pss_mib())
        health = httpx.get(base + "/health", timeout=5).json()
        result["table_versions"] = health.get("tables")

        rng = random.Random(7)
        profiles = _delta_rows(lake / "gold" / "customer_profile",
                               ["customer_id", "email", "given_name", "middle_name",
                                "family_name", "full_name", "phone", "street", "city",
                                "postcode", "country", "date_of_birth", "birth_year", "gender",
                                "loyalty_id"])
        sample = rng.sample(profiles, min(2000, len(profiles)))
        by_id = [f"/v1/profiles/{urllib.parse.quote(p['customer_id'])}" for p in sample]
        by_email = [f"/v1/lookup?email={urllib.parse.quote(p['email'])}" for p in sample
                    if p["email"]]
        run_load(base, support_key, by_id[:100], rate=50, seconds=2)  # warm-up, not counted
        for name, paths in (("lookup_by_id", by_id), ("lookup_by_email", by_email)):
            result[name] = asdict(run_load(base, support_key, paths, rate=rate,
                                           seconds=seconds))
        result["pss_after_lookups_mib"] = round(child.pss_mib())

        spec = httpx.get(base + "/openapi.json", timeout=10).json()
        path = next((p for p, ops in spec.get("paths", {}).items()
                     if p.rstrip("/").endswith("/resolve") and "post" in ops), None)
        if path is None:
            result["resolve"] = {"status": "not available", "detail": "the server's OpenAPI "
                                 "document has no POST .../resolve"}
        else:
            req = spec["paths"][path]["post"].get("requestBody", {})
            schema = req.get("content", {}).get("application/json", {}).get("schema", {})
            bodies = [json.loads(json.dumps(_resolve_body(spec, schema, p), default=str))
                      for p in sample[:500]]
            # A profile with nothing to match on (a till customer known by no name, contact
            # or loyalty id) makes no query: the server rightly answers it 422.
            bodies = [b for b in bodies if any(b.get(k) for k in _MATCHABLE)]
            # The server loads the matcher and its index after it starts answering: 503
            # "not loaded yet" until then (the time it took is resolve_ready_s).
            while True:
                probe = httpx.post(base + path, json=bodies[0], timeout=30,
                                   headers={"X-API-Key": all_key})
                if (probe.status_code != 503 or "not loaded yet" not in probe.text
                        or time.time() - child.started > resolve_wait_s):
                    break
                time.sleep(0.5)
            result["resolve_ready_s"] = round(time.time() - child.started, 1)
            if probe.status_code >= 300:
                result["resolve"] = {"status": "error", "path": path,
                                     "probe_status": probe.status_code,
                                     "detail": probe.text[:500]}
            else:
                run_load(base, all_key, [path], rate=20, seconds=2, method="POST",
                         bodies=bodies[:20])  # warm-up, not counted
                result["resolve"] = {"status": "measured", "path": path,
                                     "bodies": len(bodies),
                                     "probe_candidates": len(probe.json().get("candidates")
                                                             or []),
                                     **asdict(run_load(base, all_key, [path], rate=rate,
                                                       seconds=seconds, method="POST",
                                                       bodies=bodies))}
                result["pss_after_resolve_mib"] = round(child.pss_mib())
    finally:
        result["server_peak_pss_mib"] = round(child.peak_pss_mib)
        result["server_exit"] = child.stop(signal.SIGINT, wait=30)
        result["log"] = str(child.log)
    return result


# --- erasure -----------------------------------------------------------------------------

def pick_subject(lake: Path) -> tuple[str, list[str]]:
    """A customer with records in the most sources (then the most records, at most 10),
    lowest id first: (customer id, its record ids)."""
    members: dict[str, list[str]] = {}
    for r in _delta_rows(lake / "gold" / "identity_xref", ["record_id", "customer_id"]):
        members.setdefault(r["customer_id"], []).append(r["record_id"])

    def rank(item: tuple[str, list[str]]) -> tuple[int, int, str]:
        cid, rids = item
        return (-len({r.split(":", 1)[0] for r in rids}), -len(rids), cid)
    candidates = sorted(((c, r) for c, r in members.items() if len(r) <= 10), key=rank)
    if not candidates:
        raise RuntimeError("gold.identity_xref has no customer to erase")
    cid, rids = candidates[0]
    return cid, sorted(rids)


def erase_leg(data: Path, lake: Path, work: Path) -> dict[str, Any]:
    """``udp erase --customer`` of one customer with records in several sources."""
    cid, rids = pick_subject(lake)
    before = {str(t.relative_to(lake)): delta_version(t) for t in delta_tables(lake)}
    files_before = sum(1 for p in lake.rglob("*.parquet") if "_delta_log" not in p.parts)
    child = Child(udp_command("erase", data, lake, "--customer", cid), udp_env(lake),
                  work / "erase.log")
    rc = child.proc.wait()
    wall = time.time() - child.started
    child.stop()
    result: dict[str, Any] = {
        "customer_records": len(rids),
        "customer_sources": sorted({r.split(":", 1)[0] for r in rids}),
        "exit": rc, "wall_s": round(wall, 1), "log": str(child.log)}
    if rc != 0:
        result["error"] = f"udp erase exited {rc}:\n{child.tail()}"
        return result
    requests = _delta_rows(lake / "privacy" / "erasure_requests",
                           ["request_id", "status", "requested_at", "report"])
    last = max(requests, key=lambda r: r["requested_at"])
    report = json.loads(last["report"] or "{}")
    result.update({
        "status": last["status"], "erase_s": report.get("seconds"),
        "rows_removed": sum((report.get("rows_removed") or {}).values()),
        "tables_rows_removed": sum(1 for n in (report.get("rows_removed") or {}).values()
                                   if n),
        "files_purged_report": sum((report.get("files_purged") or {}).values()),
        "delta_files": file_changes(lake, before),
        "phases": commit_phases(lake, before, child.started),
        "parquet_files_on_disk": {"before": files_before, "after": sum(
            1 for p in lake.rglob("*.parquet") if "_delta_log" not in p.parts)}})
    left = [r for r in _delta_rows(lake / "silver" / "party_records", ["record_id"])
            if r["record_id"] in set(rids)]
    result["records_left_in_silver"] = len(left)
    if left:  # an erasure that leaves the subject behind is a failed leg, not a timing
        result["error"] = (f"{len(left)} of the subject's {len(rids)} records still in "
                           "silver.party_records after the erasure")
    return result


def review_leg(data: Path, lake: Path, work: Path, steps: tuple[int, ...] = (100, 300, 1000),
               mlflow_db: str | None = None) -> dict[str, Any]:
    """The review loop's learning curve: F1 with 0 labels (the zero-label Fellegi-Sunter
    matcher), then after each round of ``udp review`` until ``steps`` labels, the clerk
    simulated by the generator's truth, the supervised matcher trained on the decisions,
    re-scored and re-resolved. On a copy of the lakehouse (labels and model versions must
    not leak into the other legs). ``mlflow_db``: the MLflow store when it is not
    ``<lake>/mlflow.db``."""
    import csv

    from udp_spark.config import load_config
    from udp_spark.pipeline.context import StageContext
    from udp_spark.pipeline.evaluate import run_evaluate
    from udp_spark.pipeline.labels import run_import_labels
    from udp_spark.pipeline.resolve import run_resolve
    from udp_spark.pipeline.review import run_review
    from udp_spark.pipeline.score import run_score
    from udp_spark.pipeline.train import run_train
    from udp_spark.session import get_session

    copy = work / "lake"
    shutil.rmtree(copy, ignore_errors=True)
    shutil.copytree(lake, copy)
    if mlflow_db:  # a store kept outside the lakehouse (the bench keeps it inside)
        shutil.copy2(mlflow_db, copy / "mlflow.db")
    truth_csv = data / "truth" / "records.csv"
    with truth_csv.open(encoding="utf-8") as f:
        person = {f"{t['source']}:{t['source_key']}": t["person_id"] for t in csv.DictReader(f)}
    cfg = load_config(REPO / "conf" / "pipeline.yaml", data_root=str(data.resolve()),
                      lakehouse_root=str(copy.resolve()))
    cfg = cfg.model_copy(update={"mlflow": cfg.mlflow.model_copy(update={
        "tracking_uri": f"sqlite:///{(copy / 'mlflow.db').resolve()}"})})
    spark = get_session(cfg.spark)
    ctx = StageContext(spark, cfg)
    keys = ("pairwise_precision", "pairwise_recall", "pairwise_f1", "bcubed_f1",
            "attainable_pairwise_f1", "attainable_bcubed_f1")

    def measure(labels: int, seconds: float, **extra: Any) -> dict[str, Any]:
        m = run_evaluate(ctx, str(truth_csv), log_to_mlflow=False)
        return {"labels": labels, **{k: round(m[k], 4) for k in keys},
                "round_s": round(seconds, 1), **extra}

    curve = [measure(0, 0.0, model="fellegi_sunter")]
    sup = ctx.cfg.matching.model.model_copy(update={"kind": "supervised"})
    sctx = StageContext(spark, cfg.model_copy(update={"matching": cfg.matching.model_copy(
        update={"model": sup})}))
    have = 0
    for target in steps:
        t0 = time.perf_counter()
        picked = run_review(sctx if have else ctx, target - have, work / f"review-{target}")
        with picked.csv_path.open(encoding="utf-8") as f:
            rows = list(csv.DictReader(f))
        decided = work / f"decided-{target}.csv"
        with decided.open("w", newline="", encoding="utf-8") as f:
            w = csv.DictWriter(f, ["record_id_a", "record_id_b", "is_match"])
            w.writeheader()
            for r in rows:
                a, b = person.get(r["record_id_a"]), person.get(r["record_id_b"])
                w.writerow({"record_id_a": r["record_id_a"], "record_id_b": r["record_id_b"],
                            "is_match": "yes" if a is not None and a == b else "no"})
        imported = run_import_labels(ctx, str(decided))
        have += imported.positives + imported.negatives
        try:
            run_train(sctx)
        except Exception as exc:  # e.g. too few labels of a class: the curve says so
            curve.append({"labels": have, "error": f"{type(exc).__name__}: {exc}"[:300]})
            continue
        run_score(sctx)
        run_resolve(sctx)
        curve.append(measure(have, time.perf_counter() - t0, model="supervised",
                             positives=imported.positives, negatives=imported.negatives,
                             patterns=picked.patterns))
    base = curve[0]["pairwise_f1"]
    for point in curve[1:]:
        if "pairwise_f1" in point and point["labels"]:
            point["f1_gain_per_100_labels"] = round(
                100 * (point["pairwise_f1"] - base) / point["labels"], 4)
    return {"curve": curve}


# --- running the legs --------------------------------------------------------------------

LEGS: dict[str, Callable[..., dict[str, Any]]] = {
    "stream": stream_leg, "api": api_leg, "erase": erase_leg, "review": review_leg}


def run_leg(leg: str, data: Path, lake: Path, work: Path, options: dict[str, Any]
            ) -> dict[str, Any]:
    """One leg in its own process; its JSON result with ``wall_s`` and the process tree's
    peak memory, or ``error`` (never raises)."""
    work.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    cmd = [sys.executable, "-m", "udp_spark.bench_legs", leg, str(data.resolve()),
           str(lake.resolve()), str(work.resolve()), json.dumps(options)]
    try:
        proc = subprocess.run(cmd, stdout=subprocess.PIPE, text=True, cwd=REPO, check=False)
        lines = proc.stdout.strip().splitlines()
        out = json.loads(lines[-1]) if lines else {}
        if proc.returncode != 0 and "error" not in out:
            out["error"] = f"leg process exited {proc.returncode}"
    except Exception as exc:  # a leg's failure is its own result, not the bench's
        out = {"error": f"{type(exc).__name__}: {exc}"}
    out["leg_wall_s"] = round(time.perf_counter() - started, 1)
    return out


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    leg, data, lake, work = args[0], Path(args[1]), Path(args[2]), Path(args[3])
    options = json.loads(args[4]) if len(args) > 4 else {}
    work.mkdir(parents=True, exist_ok=True)
    try:
        result = LEGS[leg](data, lake, work, **options)
    except Exception as exc:
        import traceback

        traceback.print_exc()
        result = {"error": f"{type(exc).__name__}: {exc}"}
    sys.stdout.write(json.dumps(result, default=str) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
