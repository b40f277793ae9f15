"""The evaluate stage: clusters, blocking and golden values against a truth file."""

from __future__ import annotations

import logging
from pathlib import Path

from pyspark.sql import functions as F

from udp_spark import io
from udp_spark.faults import crash_point
from udp_spark.matching.evaluation import (
    attainable_metrics,
    blocking_metrics,
    cluster_metrics,
    linkable_truth,
)
from udp_spark.pipeline.context import StageContext, audited_run
from udp_spark.pipeline.inputs import party_records, read_truth
from udp_spark.pipeline.publish import published_profiles
from udp_spark.profile.evaluation import golden_value_accuracy
from udp_spark.profile.survivorship import golden_records
from udp_spark.tables import (
    GOLD_IDENTITY_XREF,
    SILVER_CANDIDATE_PAIRS,
)

log = logging.getLogger(__name__)


def run_evaluate(ctx: StageContext, truth: str, log_to_mlflow: bool = True
                 ) -> dict[str, float]:
    """Clusters in ``gold.identity_xref`` (and blocking) against a truth file; with the
    true people beside it (``people.parquet`` in the truth file's folder, as the generator
    writes it), the golden values survivorship picks for those clusters too: the published
    profiles when they are those of the current clusters and settings (evaluate after
    publish), else built from the records here."""
    with audited_run(ctx, "evaluate") as run:
        t = read_truth(ctx, truth)
        xref = io.read_table(ctx.spark, ctx.lakehouse.ref(GOLD_IDENTITY_XREF))
        clusters = xref.select("record_id", F.col("customer_id").alias("cluster_id"))
        t = t.join(xref.select("record_id"), "record_id").transform(io.checkpoint)
        linkable = linkable_truth(party_records(ctx), t).transform(io.checkpoint)
        metrics = cluster_metrics(clusters, t)
        metrics.update(attainable_metrics(metrics, clusters, t, linkable))
        pairs_ref = ctx.lakehouse.ref(SILVER_CANDIDATE_PAIRS)
        if io.table_exists(ctx.spark, pairs_ref):
            pairs = io.read_table(ctx.spark, pairs_ref)
            n = int(metrics["records"])
            b = blocking_metrics(pairs, t, n, linkable=linkable)
            metrics.update({f"blocking_{k}": v for k, v in b.items()})
        people = Path(truth.removeprefix("file:")).parent / "people.parquet"
        if people.is_file():
            records = party_records(ctx).join(xref.select("record_id", "customer_id"),
                                              "record_id")
            golden = published_profiles(ctx)
            if golden is None:
                log.info("evaluate: golden values built from the records (the published "
                         "profiles are not those of the current clusters and settings)")
                golden = records.transform(golden_records(ctx.cfg.publish.survivorship))
            metrics.update(golden_value_accuracy(golden, records, t,
                                                 ctx.spark.read.parquet(str(people))))
        if log_to_mlflow:
            from udp_spark.platform import mlflow_store

            run.mlflow_run_id = mlflow_store.log_evaluation(
                ctx.cfg.mlflow, metrics, {"truth": truth, "udp_run_id": run.run_id})
            crash_point("evaluate:after_mlflow_run")
        run.metrics.update(metrics)
        return metrics
