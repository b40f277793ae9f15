"""The block stage: candidate pairs from keys, rule blocks and LSH."""

from __future__ import annotations

from dataclasses import dataclass

from pyspark import StorageLevel
from pyspark.sql import functions as F

from udp_spark import io
from udp_spark.matching.blocking import (
    block_keys,
    candidate_pairs,
    check_blocking,
    oversized_blocks,
)
from udp_spark.matching.evaluation import (
    blocking_metrics,
)
from udp_spark.pipeline.context import StageContext, audited_run
from udp_spark.pipeline.inputs import party_records, read_truth
from udp_spark.tables import (
    SILVER_CANDIDATE_PAIRS,
    SILVER_PARTY_RECORDS,
)


@dataclass
class BlockReport:
    run_id: str
    records: int
    candidate_pairs: int
    largest_block: int
    oversized_blocks: list[tuple[str, int]]
    metrics: dict[str, float]


def run_block(ctx: StageContext, truth: str | None = None) -> BlockReport:
    """Candidate pairs from keys, rules and LSH into ``silver.candidate_pairs``."""
    settings = ctx.cfg.matching.blocking
    with audited_run(ctx, "block") as run, io.commit_metadata(
            ctx.spark, {"run_id": run.run_id, "stage": "block"}):
        records = party_records(ctx)
        check_blocking(settings, records)
        run.input_versions["silver.party_records"] = io.table_version(
            ctx.spark, ctx.lakehouse.ref(SILVER_PARTY_RECORDS)) or 0
        keys = records.transform(block_keys(settings)).persist(StorageLevel.MEMORY_AND_DISK)
        try:
            big = oversized_blocks(keys, settings.max_block_size).orderBy(
                F.desc("size")).limit(20).collect()
            sizes = io.one_row(keys.groupBy("block").count().filter(
                F.col("count") <= settings.max_block_size).agg(F.max("count")))
            pairs = keys.transform(candidate_pairs(settings.max_block_size))
            res = io.overwrite(pairs.withColumn("_run_id", F.lit(run.run_id)),
                               ctx.lakehouse.ref(SILVER_CANDIDATE_PAIRS))
        finally:
            keys.unpersist()
        n_records = records.count()
        n_pairs = res.metric("numOutputRows")
        metrics = {"records": float(n_records), "candidate_pairs": float(n_pairs),
                   "reduction_ratio": 1 - n_pairs / max(n_records * (n_records - 1) / 2, 1)}
        if truth:
            stored = io.read_table(ctx.spark, ctx.lakehouse.ref(SILVER_CANDIDATE_PAIRS))
            metrics.update(blocking_metrics(stored, read_truth(ctx, truth), n_records))
        run.metrics.update(metrics)
        run.row_counts["silver.candidate_pairs"] = n_pairs
        if res.version is not None:
            run.output_versions["silver.candidate_pairs"] = res.version
        return BlockReport(run.run_id, n_records, n_pairs, int(sizes[0] or 0),
                           [(r["block"], int(r["size"])) for r in big], metrics)
