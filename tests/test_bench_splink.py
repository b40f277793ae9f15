"""Splink beside udp-spark (``make bench``, docs/bench.md): Splink 5 on DuckDB over the
standardized records of a small generated set, scored with our evaluation code; Splink's
Spark UDF jar on this Spark."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pytest
from pyspark.sql import DataFrame, SparkSession

from tests._lakehouse import lakehouse_config
from udp_spark.bench import format_comparison, identity_comparison
from udp_spark.bench_splink import PHASES, compare, enable_similarity_udfs
from udp_spark.pipeline.context import StageContext

PEOPLE = 100  # about 270 party records


@pytest.fixture(scope="module")
def silver(spark: SparkSession, tmp_path_factory: pytest.TempPathFactory
           ) -> tuple[StageContext, DataFrame, DataFrame]:
    """Generated people through ingest and standardize: (context, records, truth)."""
    from udp_spark.generate import generate
    from udp_spark.pipeline.ingest import run_ingest
    from udp_spark.pipeline.inputs import party_records, read_truth
    from udp_spark.pipeline.standardize import run_standardize

    base = tmp_path_factory.mktemp("splink")
    generate(base / "data", people=PEOPLE, seed=7)
    ctx = StageContext(spark, lakehouse_config(base, as_of=date(2026, 6, 30)))
    run_ingest(ctx)
    run_standardize(ctx)
    truth = read_truth(ctx, str(Path(base / "data" / "truth" / "records.csv")))
    return ctx, party_records(ctx), truth


def test_splink_on_duckdb_clusters_the_generated_people(
        silver: tuple[StageContext, DataFrame, DataFrame]) -> None:
    # DuckDB only: the whole Splink-on-Spark run took 80-160 s here even on 270 records (a
    # Spark job per step); `make bench` runs it, and the jar check below is the quick part.
    ctx, records, truth = silver
    n_records = records.count()
    m = ctx.cfg.matching
    out = compare(records, truth, ("duckdb",), threshold=m.resolve.threshold,
                  random_pairs=m.model.random_pairs, seed=m.model.seed)

    result = out["splink_duckdb"]
    assert "error" not in result, result.get("error")
    assert set(result["timings_s"]) == {"load", *PHASES, "total"}
    assert result["timings_s"]["total"] == pytest.approx(
        sum(result["timings_s"][p] for p in PHASES), abs=0.05)
    # Blocking kept far fewer than all pairs, and some of them scored as links.
    assert 0 < result["predicted_links"] < result["candidate_pairs"] < (
        n_records * (n_records - 1) / 2)
    acc = result["accuracy"]
    assert acc["records"] == n_records  # every record is in a cluster and in the truth
    assert acc["clusters_found"] < n_records  # records were merged
    assert acc["pairwise_f1"] > 0.5, acc
    assert acc["bcubed_f1"] > 0.5, acc


def test_splinks_spark_udf_jar_loads_on_this_spark(spark: SparkSession) -> None:
    enable_similarity_udfs(spark)  # Splink 5's Spark 4 / Scala 2.13 build, by ADD JAR

    row = spark.sql("select jaro_winkler('martha', 'marhta') as s").first()
    assert row is not None and row["s"] == pytest.approx(0.961, abs=1e-3)


def test_the_bench_reports_phases_pairs_accuracy_and_ratios() -> None:
    udp = {"block": 8.0, "train": 4.0, "score": 6.0, "resolve": 2.0}
    acc = {"pairwise_precision": 0.9, "pairwise_recall": 0.8, "pairwise_f1": 0.85,
           "bcubed_precision": 0.95, "bcubed_recall": 0.9, "bcubed_f1": 0.92}
    splink = {"timings_s": {"load": 0.5, "blocking": 1.0, "training": 2.0, "scoring": 1.0,
                            "clustering": 1.0, "total": 5.0},
              "candidate_pairs": 1000, "predicted_links": 300, "accuracy": acc}
    extras = [{"accuracy": {**acc, "blocking_candidate_pairs": 4000.0},
               "splink": {"splink_duckdb": splink, "peak_rss_mib": 900,
                          "splink_spark": {"error": "SplinkUnavailableError: no jar"}}}]

    c = identity_comparison([udp], extras)

    assert c["engines"]["udp_spark"]["timings_s"] == {
        "blocking": 8.0, "training": 4.0, "scoring": 6.0, "clustering": 2.0, "total": 20.0}
    assert c["engines"]["udp_spark"]["candidate_pairs"] == 4000.0
    assert c["engines"]["splink_duckdb"]["candidate_pairs"] == 1000
    assert c["engines"]["splink_spark"] == {"error": "SplinkUnavailableError: no jar"}
    assert c["ratios"] == {"udp_spark/splink_duckdb": {
        "blocking": 8.0, "training": 2.0, "scoring": 6.0, "clustering": 2.0, "total": 4.0}}
    text = format_comparison(c)
    assert "splink_spark" in text and "failed: SplinkUnavailableError" in text
    assert "udp_spark/splink_duckdb" in text and "4.00" in text
