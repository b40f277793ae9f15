"""``udp run``: the whole pipeline as a dependency graph of stages, one writer at a time.

Each stage runs only when its inputs changed since its last successful run, judged the
way the stage itself judges them: the table versions and settings fingerprints in its
watermarks (``audit.runs``) against the tables' current versions and the current
settings; ingest asks the file listing (or the Delta source's version) for batches not in
bronze yet; train runs when no model is registered under the alias (or ``--retrain``);
score when its pairs or the model behind the alias changed. So a second run on unchanged
input runs nothing, and a run after a failure or a kill -9 resumes at the first stage whose
inputs it had not finished: the stage that died never saved its watermarks, and every stage
writes idempotently. A failed stage stops the stages that depend on it, not the others; an
ingest or standardize that failed some sources but wrote the others is ``partial``: the
stages after it go on with what was written (one bad source never stops the others). The
summary lists every stage with what it did or why it was skipped, and the command exits
non-zero when anything failed.

The lakehouse lease (:mod:`udp_spark.lease`) is held for the whole run, so two runs never
interleave their writes: the second waits ``run.wait_seconds`` and then refuses.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field, fields, is_dataclass
from datetime import UTC, datetime

from pyspark.sql import functions as F

from udp_spark import io
from udp_spark.audit import new_run_id
from udp_spark.changes import read_watermarks
from udp_spark.lease import PIPELINE, Lease
from udp_spark.pipeline.context import StageContext, lakehouse_identity
from udp_spark.tables import (
    AUDIT_RUNS,
    GOLD_IDENTITY_EVENTS,
    GOLD_IDENTITY_XREF,
    SILVER_CANDIDATE_PAIRS,
    SILVER_INTERACTIONS,
    SILVER_MATCH_LABELS,
    SILVER_MATCH_SCORES,
    SILVER_PARTY_RECORDS,
    TableRef,
)

log = logging.getLogger(__name__)

LEASE_NAME = PIPELINE


@dataclass(frozen=True)
class RunOptions:
    full: bool = False  # every stage processes everything (train still only with retrain)
    retrain: bool = False  # fit and register a new model (everything is re-scored)
    truth: str | None = None  # evaluate against this truth file after resolve
    wait_seconds: float | None = None  # default: run.wait_seconds


@dataclass(frozen=True)
class Stage:
    name: str
    needs: tuple[str, ...]
    # why the stage must run, or "skip: <why it is up to date>"
    check: Callable[[StageContext, RunOptions], str]
    run: Callable[[StageContext, RunOptions], object]


@dataclass
class Outcome:
    stage: str
    status: str  # ran | skipped | partial | failed | blocked
    reason: str
    seconds: float = 0.0
    detail: str = ""


@dataclass
class RunSummary:
    run_id: str
    outcomes: list[Outcome] = field(default_factory=list)

    @property
    def failed(self) -> list[Outcome]:
        return [o for o in self.outcomes if o.status in ("partial", "failed", "blocked")]

    def ran(self) -> list[str]:
        return [o.stage for o in self.outcomes if o.status == "ran"]

    def lines(self) -> list[str]:
        out = [f"udp run {self.run_id}"]
        for o in self.outcomes:
            took = f"{o.seconds:6.1f}s" if o.status in ("ran", "partial", "failed") else " " * 7
            out.append(f"  {o.stage:12s} {o.status:8s} {took}  {o.reason}"
                       + (f" -> {o.detail}" if o.detail else ""))
        ran, skipped = len(self.ran()), sum(o.status == "skipped" for o in self.outcomes)
        out.append(f"{ran} ran, {skipped} skipped (up to date), {len(self.failed)} failed"
                   + ("" if ran else ": nothing changed since the last run"))
        return out


# --- when a stage has work -----------------------------------------------------------------

def _changed(ctx: StageContext, stage: str, inputs: list[tuple[TableRef, str]]) -> str:
    """Why ``stage`` must run for these ``(table, settings fingerprint)`` inputs, or
    ``skip: ...`` when every existing input is at the version and settings it last saw."""
    marks = read_watermarks(ctx.spark, ctx.lakehouse, stage)
    if not marks:
        return "never ran"
    for ref, params in inputs:
        version = io.table_version(ctx.spark, ref)
        if version is None:
            continue
        saved = marks.get(str(ref))
        if saved is None:
            return f"{ref} not processed yet"
        if saved[1] != params:
            return f"settings for {ref} changed"
        if saved[0] != version:
            return f"{ref} changed (v{saved[0]} -> v{version})"
    return "skip: inputs unchanged since its last run"


def _last_success(ctx: StageContext, stage: str) -> tuple[object, object] | None:
    """``(started_at, finished_at)`` of the stage's latest succeeded run."""
    ref = ctx.lakehouse.ref(AUDIT_RUNS)
    if not io.table_exists(ctx.spark, ref):
        return None
    rows = (io.read_table(ctx.spark, ref)
            .filter((F.col("stage") == stage) & (F.col("status") == "succeeded"))
            .agg(F.max("started_at").alias("s"), F.max("finished_at").alias("f")).collect())
    return None if not rows or rows[0]["s"] is None else (rows[0]["s"], rows[0]["f"])


def _check_ingest(ctx: StageContext, opts: RunOptions) -> str:
    from udp_spark.pipeline.ingest import pending_batches

    pending = pending_batches(ctx)
    unknown = sorted(n for n, v in pending.items() if v is None)
    new = {n: v for n, v in pending.items() if v}
    if new:
        return "new batches: " + ", ".join(f"{n} {v}" for n, v in sorted(new.items()))
    if unknown:
        return "cannot tell without reading: " + ", ".join(unknown)
    return "skip: no new files"


def _check_standardize(ctx: StageContext, opts: RunOptions) -> str:
    from udp_spark.pipeline.standardize import source_fingerprint

    return _changed(ctx, "standardize", [(ctx.lakehouse.bronze(n), source_fingerprint(ctx, s))
                                         for n, s in sorted(ctx.cfg.sources.items())])


def _check_block(ctx: StageContext, opts: RunOptions) -> str:
    from udp_spark.pipeline.block import blocking_fingerprint

    return _changed(ctx, "block", [(ctx.lakehouse.ref(SILVER_PARTY_RECORDS),
                                    blocking_fingerprint(ctx))])


def _check_train(ctx: StageContext, opts: RunOptions) -> str:
    from udp_spark.pipeline.train import LAKEHOUSE_PARAM
    from udp_spark.platform import mlflow_store

    if opts.retrain:
        return "--retrain"
    mcfg = ctx.cfg.matching.model
    name = f"{mcfg.registered_name}@{mcfg.alias}"
    champion = mlflow_store.alias_training(ctx.cfg.mlflow, mcfg.registered_name, mcfg.alias)
    if champion is None:
        return f"no model registered as {name}"
    version, params = champion
    # A registry shared by several lakehouses (one tracking server): an unsupervised matcher
    # fitted on another lakehouse's records is not this one's (its u, m and prior are of
    # other data) and fitting needs nothing but the records; a supervised one is kept (its
    # labels are where it was trained: promoting it is a choice).
    fitted_for = params.get(LAKEHOUSE_PARAM)
    if fitted_for is not None and fitted_for != lakehouse_identity(ctx.cfg):
        if params.get("kind") != "supervised":
            return f"{name} (version {version}) was fitted for another lakehouse ({fitted_for})"
        return f"skip: {name} is version {version}, a supervised matcher trained on another " \
               f"lakehouse ({fitted_for}; --retrain fits one on this one's labels)"
    return f"skip: {name} is version {version} (--retrain fits a new one)"


def _check_score(ctx: StageContext, opts: RunOptions) -> str:
    from udp_spark.platform import mlflow_store

    mcfg = ctx.cfg.matching.model
    version = mlflow_store.alias_version(ctx.cfg.mlflow, mcfg.registered_name, mcfg.alias)
    if version is None:
        return "no model yet"  # score itself fails with what to do
    return _changed(ctx, "score", [(ctx.lakehouse.ref(SILVER_CANDIDATE_PAIRS),
                                    f"{mcfg.registered_name}/{version}")])


def _check_resolve(ctx: StageContext, opts: RunOptions) -> str:
    from udp_spark.pipeline.resolve import resolve_fingerprint

    params = resolve_fingerprint(ctx)
    lake = ctx.lakehouse
    return _changed(ctx, "resolve", [(lake.ref(t), params) for t in (
        SILVER_MATCH_SCORES, SILVER_PARTY_RECORDS, SILVER_MATCH_LABELS)])


def _check_evaluate(ctx: StageContext, opts: RunOptions) -> str:
    if not opts.truth:
        return "skip: no --truth given"
    last, resolved = _last_success(ctx, "evaluate"), _last_success(ctx, "resolve")
    if last is None:
        return "never ran"
    if resolved is not None and resolved[1] > last[0]:  # type: ignore[operator]
        return "resolve ran since"
    return "skip: clusters unchanged since its last run"


def _check_publish(ctx: StageContext, opts: RunOptions) -> str:
    from udp_spark.pipeline.publish import publish_fingerprint, resolve_as_of
    from udp_spark.standardize.transforms import INTERACTION_FIELDS

    lake = ctx.lakehouse
    inter = lake.ref(SILVER_INTERACTIONS)
    if ctx.cfg.publish.metrics.as_of != "input":
        as_of = resolve_as_of(ctx, None)  # type: ignore[arg-type]  # read only for "input"
    elif io.table_exists(ctx.spark, inter):
        as_of = resolve_as_of(ctx, io.read_table(ctx.spark, inter).select(*INTERACTION_FIELDS))
    else:
        as_of = datetime.now(UTC).date()  # what publish uses without interactions
    params = publish_fingerprint(ctx, as_of)
    return _changed(ctx, "publish", [(lake.ref(t), params) for t in (
        GOLD_IDENTITY_XREF, SILVER_PARTY_RECORDS, SILVER_INTERACTIONS, GOLD_IDENTITY_EVENTS)])


# --- the stages ----------------------------------------------------------------------------

def _ingest(ctx: StageContext, opts: RunOptions) -> object:
    from udp_spark.pipeline.ingest import run_ingest

    return run_ingest(ctx)


def _standardize(ctx: StageContext, opts: RunOptions) -> object:
    from udp_spark.pipeline.standardize import run_standardize

    return run_standardize(ctx, full=opts.full)


def _block(ctx: StageContext, opts: RunOptions) -> object:
    from udp_spark.pipeline.block import run_block

    return run_block(ctx, opts.truth, full=opts.full)


def _train(ctx: StageContext, opts: RunOptions) -> object:
    from udp_spark.pipeline.train import run_train

    return run_train(ctx)


def _score(ctx: StageContext, opts: RunOptions) -> object:
    from udp_spark.pipeline.score import run_score

    return run_score(ctx, full=opts.full)


def _resolve(ctx: StageContext, opts: RunOptions) -> object:
    from udp_spark.pipeline.resolve import run_resolve

    return run_resolve(ctx, full=opts.full)


def _evaluate(ctx: StageContext, opts: RunOptions) -> object:
    from udp_spark.pipeline.evaluate import run_evaluate

    assert opts.truth
    return run_evaluate(ctx, opts.truth)


def _publish(ctx: StageContext, opts: RunOptions) -> object:
    from udp_spark.pipeline.publish import run_publish

    return run_publish(ctx, full=opts.full)


STAGES: tuple[Stage, ...] = (
    Stage("ingest", (), _check_ingest, _ingest),
    Stage("standardize", ("ingest",), _check_standardize, _standardize),
    Stage("block", ("standardize",), _check_block, _block),
    Stage("train", ("block",), _check_train, _train),
    Stage("score", ("block", "train"), _check_score, _score),
    Stage("resolve", ("score",), _check_resolve, _resolve),
    Stage("evaluate", ("resolve",), _check_evaluate, _evaluate),
    Stage("publish", ("resolve",), _check_publish, _publish),
)


def stage_graph() -> dict[str, tuple[str, ...]]:
    """Stage -> the stages it needs (the Databricks bundle's task graph is checked
    against it)."""
    return {s.name: s.needs for s in STAGES}


def _detail(result: object) -> str:
    """A short account of what a stage did, from its report."""
    if isinstance(result, dict):
        items = list(result.items())
    elif is_dataclass(result):
        items = [(f.name, getattr(result, f.name)) for f in fields(result)]
    else:
        items = []
    keep = [(k, v) for k, v in items if k != "run_id" and isinstance(v, int | float)
            and not isinstance(v, bool)]
    return ", ".join(f"{k} {v:g}" if isinstance(v, float) else f"{k} {v}"
                     for k, v in keep[:5])


def _sources_written(exc: Exception) -> bool:
    """Whether a failed ingest or standardize wrote some of its sources (one bad source
    never stops the others): the stages after it then run on what was written, and the run
    still ends failed, naming the sources in the stage's line and its audit row."""
    from udp_spark.pipeline.ingest import IngestError
    from udp_spark.pipeline.standardize import StandardizeError

    if isinstance(exc, IngestError):
        return len(exc.report.failed) < len(exc.report.sources)
    if isinstance(exc, StandardizeError):
        return len(exc.report.failed_sources) < len(exc.report.sources)
    return False


def run_pipeline(ctx: StageContext, opts: RunOptions | None = None) -> RunSummary:
    """Run every stage that has work, in dependency order, under the lakehouse lease.

    Raises:
        LeaseHeld: another run holds the lease (after waiting ``wait_seconds``).
    """
    opts = opts or RunOptions()
    summary = RunSummary(new_run_id("run"))
    settings = ctx.cfg.run
    wait = settings.wait_seconds if opts.wait_seconds is None else opts.wait_seconds
    lease = Lease(ctx.spark, ctx.lakehouse, LEASE_NAME, holder=summary.run_id,
                  ttl_seconds=settings.lease_ttl_minutes * 60)
    with lease.held(wait_seconds=wait):
        bad: set[str] = set()
        for stage in STAGES:
            blocked = [n for n in stage.needs if n in bad]
            if blocked:
                summary.outcomes.append(Outcome(stage.name, "blocked",
                                                f"needs {', '.join(blocked)}, which failed"))
                bad.add(stage.name)
                continue
            lease.renew_if_due()
            t0 = time.perf_counter()
            try:
                full = opts.full and stage.name not in ("train", "evaluate")
                reason = "--full" if full else stage.check(ctx, opts)
                if reason.startswith("skip: "):
                    summary.outcomes.append(Outcome(stage.name, "skipped", reason[6:]))
                    log.info("run: %s skipped (%s)", stage.name, reason[6:])
                    continue
                log.info("run: %s (%s)", stage.name, reason)
                result = stage.run(ctx, opts)
                summary.outcomes.append(Outcome(stage.name, "ran", reason,
                                                time.perf_counter() - t0, _detail(result)))
            except Exception as exc:  # the stage wrote its failed audit row; go on
                log.error("run: %s failed: %s", stage.name, exc)
                lines = str(exc).splitlines() or [type(exc).__name__]
                if _sources_written(exc):
                    # the line names every failed source, not only the first
                    summary.outcomes.append(Outcome(
                        stage.name, "partial", "; ".join(ln.strip() for ln in lines)[:2000],
                        time.perf_counter() - t0))
                    continue
                summary.outcomes.append(Outcome(stage.name, "failed", lines[0][:300],
                                                time.perf_counter() - t0))
                bad.add(stage.name)
    for line in summary.lines():
        log.info(line)
    return summary
