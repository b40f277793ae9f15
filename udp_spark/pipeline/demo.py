"""``udp demo``: generated data through every stage that exists, with a short summary."""

from __future__ import annotations

import json
import logging
import shutil
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

from pyspark.sql import functions as F

from udp_spark import io
from udp_spark.config import load_config
from udp_spark.pipeline.context import StageContext
from udp_spark.pipeline.ingest import run_ingest
from udp_spark.pipeline.standardize import run_standardize
from udp_spark.session import get_session
from udp_spark.tables import (
    AUDIT_RUNS,
    GOLD_IDENTITY_EVENTS,
    GOLD_IDENTITY_XREF,
    SILVER_CANDIDATE_PAIRS,
    SILVER_INTERACTIONS,
    SILVER_MATCH_SCORES,
    SILVER_PARTY_RECORDS,
    SILVER_QUARANTINE,
)

if TYPE_CHECKING:
    from udp_spark.pipeline.train import TrainReport

log = logging.getLogger(__name__)
T = TypeVar("T")


def _ensure_demo_data(data_dir: Path, people: int, seed: int, noise: float,
                      echo: Callable[[str], None]) -> bool:
    """Generate the demo sources unless the same ones are there; True if (re)generated."""
    from udp_spark.generate import generate

    marker = data_dir / "_generated.json"
    wanted = {"people": people, "seed": seed, "noise": noise}
    if marker.is_file() and json.loads(marker.read_text()) == wanted:
        echo(f"demo data: reusing {data_dir} ({people:,} people, seed {seed})")
        return False
    if data_dir.exists():
        shutil.rmtree(data_dir)
    t0 = time.perf_counter()
    report = generate(data_dir, people=people, seed=seed, noise=noise)
    marker.write_text(json.dumps(wanted))
    echo(f"demo data: {people:,} people -> {report.party_records:,} party records, "
         f"{report.source_rows:,} source rows in {time.perf_counter() - t0:.1f}s")
    return True


def run_demo(*, config: Path, people: int, seed: int, noise: float, data_dir: Path,
             lakehouse: str | None, fresh: bool, echo: Callable[[str], None],
             challenger: bool = False) -> None:
    """Generate (if needed), run every stage, and print rows, quarantine, accuracy, the
    publish and timings; with ``challenger``, also a supervised challenger's comparison."""
    timings: dict[str, float] = {}
    cfg = load_config(config, data_root=str(data_dir), lakehouse_root=lakehouse)
    # The JVM starts while the data is generated (pure Python, one core): the two overlap
    # instead of adding up; "spark start" is what is left to wait for after generating.
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="udp-spark-start") as pool:
        starting = pool.submit(get_session, cfg.spark)
        t0 = time.perf_counter()
        regenerated = _ensure_demo_data(data_dir, people, seed, noise, echo)
        timings["generate"] = time.perf_counter() - t0
        t0 = time.perf_counter()
        spark = starting.result()
        timings["spark start"] = time.perf_counter() - t0
    root = Path(cfg.lakehouse.root)
    if (fresh or regenerated) and "://" not in cfg.lakehouse.root and root.exists():
        echo(f"demo lakehouse: starting fresh at {root}")
        shutil.rmtree(root)
    ctx = StageContext(spark, cfg)

    def timed(stage: str, fn: Callable[..., T], *args: object) -> T:
        t0 = time.perf_counter()
        result = fn(*args)
        timings[stage] = time.perf_counter() - t0
        return result

    ing = timed("ingest", run_ingest, ctx)
    timed("standardize", run_standardize, ctx)

    from udp_spark.pipeline.block import run_block
    from udp_spark.pipeline.evaluate import run_evaluate
    from udp_spark.pipeline.resolve import run_resolve
    from udp_spark.pipeline.score import run_score
    from udp_spark.pipeline.train import run_train

    truth = str(data_dir / "truth" / "records.csv")
    blk = timed("block", run_block, ctx)  # its truth metrics come with evaluate's
    trained = timed("train", run_train, ctx)
    timed("score", run_score, ctx)
    res = timed("resolve", run_resolve, ctx)

    from udp_spark.pipeline.publish import run_publish

    published = timed("publish", run_publish, ctx)
    # After publish: evaluate scores the published golden values instead of building them
    metrics = timed("evaluate", run_evaluate, ctx, truth)

    trained_challenger = (timed("supervised", _train_challenger, ctx, truth) if challenger
                          else None)

    lake = ctx.lakehouse
    echo("\nrows per table")
    tables = [lake.bronze(s.source) for s in ing.sources] + [
        lake.ref(t) for t in (SILVER_PARTY_RECORDS, SILVER_INTERACTIONS, SILVER_QUARANTINE,
                              SILVER_CANDIDATE_PAIRS, SILVER_MATCH_SCORES,
                              GOLD_IDENTITY_XREF, GOLD_IDENTITY_EVENTS, AUDIT_RUNS)]
    for ref in tables:
        if io.table_exists(spark, ref):
            echo(f"  {ref!s:32s} {io.read_table(spark, ref).count():>10,}")
    quarantine = lake.ref(SILVER_QUARANTINE)
    if io.table_exists(spark, quarantine):
        echo("\nquarantine (source, reason, action: rows)")
        rows = (io.read_table(spark, quarantine)
                .groupBy("source", "reason", "action").agg(F.count("*").alias("n"))
                .orderBy("source", F.desc("n")).collect())
        for r in rows:
            echo(f"  {r['source']:20s} {r['reason']:30s} {r['action']:18s} {r['n']:>8,}")
    echo(f"\nblocking: {blk.records:,} records -> {blk.candidate_pairs:,} candidate pairs; "
         f"pair completeness {metrics.get('blocking_pair_completeness', float('nan')):.4f} "
         f"(reachable "
         f"{metrics.get('blocking_reachable_pair_completeness', float('nan')):.4f})")
    for name, size in blk.oversized_blocks[:5]:
        echo(f"  oversized block not expanded: {name} ({size:,} records)")
    echo(f"matcher: model version {trained.model_version}, {trained.summary}")
    echo(f"resolve: {res.records:,} records -> {res.customers:,} customers, largest cluster "
         f"{res.largest_cluster}, events {res.events}")
    echo("\naccuracy against the generator's truth (attainable: recall over the pairs the "
         "data can link)")
    for key in ("pairwise_precision", "pairwise_recall", "pairwise_f1", "bcubed_precision",
                "bcubed_recall", "bcubed_f1", "linkable_pair_share",
                "attainable_pairwise_recall", "attainable_pairwise_f1",
                "attainable_bcubed_recall", "attainable_bcubed_f1",
                "blocking_linkable_pair_completeness",
                "blocking_linkable_reachable_pair_completeness", "clusters_found",
                "clusters_true", "overmerged_clusters", "undermerged_entities",
                "largest_cluster"):
        v = metrics[key]
        echo(f"  {key:24s} {v:10.4f}" if v < 100 else f"  {key:24s} {v:10,.0f}")
    if "golden_name_accuracy" in metrics:
        echo("\ngolden values against the true people (right / with a value; right / where "
             "some record has the true value; coverage)")
        for attr in ("name", "email", "phone", "address", "birth"):
            echo(f"  {attr:8s} {metrics[f'golden_{attr}_accuracy']:.4f}  "
                 f"{metrics[f'golden_{attr}_attainable_accuracy']:.4f}  "
                 f"{metrics[f'golden_{attr}_coverage']:.4f}")
    if trained_challenger is not None:
        m = trained_challenger.metrics
        echo(f"\nsupervised challenger (model version {trained_challenger.model_version}, "
             f"alias @{CHALLENGER_ALIAS}, trained on {CHALLENGER_LABEL_SHARE:.0%} of candidate "
             "pairs labelled from the truth); on the same held-out pairs:")
        for prefix, label in (("holdout", "supervised"), ("fs_holdout", "fellegi-sunter")):
            if f"{prefix}_f1" in m:
                echo(f"  {label:16s} precision {m[f'{prefix}_precision']:.4f}  recall "
                     f"{m[f'{prefix}_recall']:.4f}  F1 {m[f'{prefix}_f1']:.4f}")
    _print_publish(ctx, published, echo)
    echo("\ntime per stage")
    for stage, secs in timings.items():
        echo(f"  {stage:14s} {secs:7.1f}s")


CHALLENGER_ALIAS = "challenger"
CHALLENGER_LABEL_SHARE = 0.3


def _train_challenger(ctx: StageContext, truth: str) -> TrainReport:
    """Label a share of the candidate pairs from the truth, as a clerical review would, and
    train the supervised matcher on them under its own alias. The unsupervised champion
    keeps scoring; the report compares both on the held-out labels."""
    from udp_spark.pipeline.labels import run_import_labels
    from udp_spark.pipeline.train import run_train

    run_import_labels(ctx, truth, from_truth=True, sample=CHALLENGER_LABEL_SHARE)
    model = ctx.cfg.matching.model.model_copy(update={"kind": "supervised",
                                                      "alias": CHALLENGER_ALIAS})
    cfg = ctx.cfg.model_copy(update={"matching": ctx.cfg.matching.model_copy(
        update={"model": model})})
    return run_train(StageContext(ctx.spark, cfg))


def _print_publish(ctx: StageContext, report: object, echo: Callable[[str], None]) -> None:
    """The publish summary and one sample profile with its lineage."""
    from udp_spark.pipeline.publish import (
        PublishReport,
        format_lineage,
        format_profile,
        lookup_profile,
        profile_lineage,
    )
    from udp_spark.tables import (
        GOLD_CUSTOMER_PROFILE,
        GOLD_CUSTOMER_PROFILE_HISTORY,
        GOLD_SEGMENT_MEMBERSHIP,
    )

    assert isinstance(report, PublishReport)
    spark, lake = ctx.spark, ctx.lakehouse
    echo(f"\npublish: {report.customers:,} profiles (metrics as of {report.as_of}); profile "
         f"+{report.profile_inserted:,} ~{report.profile_updated:,} "
         f"={report.profile_unchanged:,} -{report.profile_deleted:,}; history "
         f"+{report.history_inserted:,}; segments {report.segment_sizes}")
    for t in (GOLD_CUSTOMER_PROFILE, GOLD_CUSTOMER_PROFILE_HISTORY, GOLD_SEGMENT_MEMBERSHIP):
        ref = lake.ref(t)
        if io.table_exists(spark, ref):
            echo(f"  {ref!s:32s} {io.read_table(spark, ref).count():>10,}")
    profiles = io.read_table(spark, lake.ref(GOLD_CUSTOMER_PROFILE))
    # A customer seen by a few systems who bought something shows most of a profile.
    sample = (profiles.filter(F.col("record_count").between(3, 6))
              .orderBy(F.desc("orders"), F.size("sources").desc(), "customer_id")
              .select("customer_id").first()
              or profiles.orderBy("customer_id").select("customer_id").first())
    if sample is None:
        return
    echo("\nsample profile (udp profile " + sample[0] + ")")
    for line in format_profile(lookup_profile(ctx, sample[0])):
        echo("  " + line)
    echo("\nits lineage (udp lineage " + sample[0] + ")")
    for line in format_lineage(profile_lineage(ctx, sample[0])):
        echo("  " + line)
