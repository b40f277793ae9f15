"""No labelled decision is overwritten: labels are kept per pair *and* source, and a clerical
decision outranks the generator's truth (or any other source) when labels are read."""

from __future__ import annotations

from pathlib import Path

from pyspark.sql import SparkSession

from udp_spark import io
from udp_spark.config import load_config
from udp_spark.pipeline.context import StageContext
from udp_spark.pipeline.labels import run_import_labels
from udp_spark.pipeline.resolve import manual_decisions
from udp_spark.pipeline.supervised import read_labels
from udp_spark.tables import SILVER_CANDIDATE_PAIRS, SILVER_MATCH_LABELS, SILVER_PARTY_RECORDS

REPO = Path(__file__).resolve().parents[1]


def _lake(spark: SparkSession, base: Path) -> StageContext:
    """Four records and their two candidate pairs, straight into Delta (no pipeline run)."""
    cfg = load_config(REPO / "conf" / "pipeline.yaml", data_root=str(base / "data"),
                      lakehouse_root=str(base / "lake"))
    ctx = StageContext(spark, cfg)
    records = spark.createDataFrame([("crm:1",), ("crm:2",), ("shop:1",), ("shop:2",)],
                                    "record_id string")
    io.overwrite(records, ctx.lakehouse.ref(SILVER_PARTY_RECORDS))
    pairs = spark.createDataFrame([("crm:1", "shop:1"), ("crm:2", "shop:2")],
                                  "record_id_l string, record_id_r string")
    io.overwrite(pairs, ctx.lakehouse.ref(SILVER_CANDIDATE_PAIRS))
    return ctx


def _decisions(df) -> set[tuple[str, str, bool]]:
    return {(r["record_id_l"], r["record_id_r"], r["is_match"]) for r in df.collect()}


def test_a_truth_import_never_replaces_a_clerical_decision(spark: SparkSession,
                                                           tmp_path: Path) -> None:
    ctx = _lake(spark, tmp_path)
    # A reviewer says crm:1 / shop:1 are different people ...
    review = tmp_path / "review.csv"
    review.write_text("record_id_a,record_id_b,is_match\nshop:1,crm:1,no\n")
    run_import_labels(ctx, str(review))
    # ... and then the truth (as the demo does) says they are one person, and labels the
    # other candidate pair too.
    truth = tmp_path / "truth.csv"
    truth.write_text("record_id,entity_id\ncrm:1,P1\nshop:1,P1\ncrm:2,P2\nshop:2,P2\n")
    report = run_import_labels(ctx, str(truth), from_truth=True)
    assert (report.inserted, report.updated) == (2, 0)

    stored = io.read_table(spark, ctx.lakehouse.ref(SILVER_MATCH_LABELS))
    assert {(r["record_id_l"], r["record_id_r"], r["is_match"], r["label_source"])
            for r in stored.collect()} == {
        ("crm:1", "shop:1", False, "clerical"), ("crm:1", "shop:1", True, "truth"),
        ("crm:2", "shop:2", True, "truth")}
    # Resolve still sees the reviewer's decision, and so does the supervised matcher.
    manual = manual_decisions(ctx)
    assert manual is not None
    assert _decisions(manual) == {("crm:1", "shop:1", False)}
    assert _decisions(read_labels(ctx)) == {("crm:1", "shop:1", False),
                                            ("crm:2", "shop:2", True)}


def test_the_newest_clerical_decision_wins(spark: SparkSession, tmp_path: Path) -> None:
    ctx = _lake(spark, tmp_path)
    cfg = ctx.cfg.model_copy(update={"matching": ctx.cfg.matching.model_copy(update={
        "resolve": ctx.cfg.matching.resolve.model_copy(update={
            "manual_label_sources": ["clerical", "review-2026-01"]})})})
    ctx = StageContext(spark, cfg)
    first, second = tmp_path / "first.csv", tmp_path / "second.csv"
    first.write_text("record_id_a,record_id_b,is_match\ncrm:2,shop:2,yes\n")
    second.write_text("record_id_a,record_id_b,is_match\ncrm:2,shop:2,no\n")
    run_import_labels(ctx, str(first), label_source="review-2026-01")
    run_import_labels(ctx, str(second))  # clerical, later
    manual = manual_decisions(ctx)
    assert manual is not None
    assert _decisions(manual) == {("crm:2", "shop:2", False)}
    # Re-deciding within one source updates that source's row in place.
    first.write_text("record_id_a,record_id_b,is_match\ncrm:2,shop:2,no\n")
    again = run_import_labels(ctx, str(first), label_source="review-2026-01")
    assert (again.inserted, again.updated) == (0, 1)
    rows = io.read_table(spark, ctx.lakehouse.ref(SILVER_MATCH_LABELS)).count()
    assert rows == 2
