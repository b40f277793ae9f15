"""The change-driven engine and the stream on real Spark, Delta, MLflow and Kafka.

One lakehouse is built by a batch run on most of the generated data; the rest lands as new
files in two micro-batches of ``udp stream`` (the webshop and app customers held out, then
a purchase of a known customer), and a third purchase arrives as a message on a real Kafka
broker. Checked: each stage did only incremental work, customers the new files did not
touch kept their ids, each purchase reached the profile's orders, lifetime value and RFM
with a ``segment_entered`` event in the same micro-batch, a micro-batch that died half-way
was replayed with nothing written twice, and the clusters equal a full run's over the same
rows.
"""

from __future__ import annotations

import json
import shutil
from datetime import UTC, date, datetime
from pathlib import Path

import pytest
from _lakehouse import batch_run, lakehouse_config
from pyspark.sql import SparkSession
from pyspark.sql import functions as F

from udp_spark import io
from udp_spark.faults import CRASH_AT
from udp_spark.generate import generate
from udp_spark.generate.holdout import HELD_DIR, hold_out
from udp_spark.matching.evaluation import id_churn
from udp_spark.pipeline.context import StageContext
from udp_spark.tables import (
    AUDIT_RUNS,
    GOLD_CUSTOMER_PROFILE,
    GOLD_CUSTOMER_PROFILE_HISTORY,
    GOLD_IDENTITY_XREF,
    GOLD_PROFILE_EVENTS,
    GOLD_SEGMENT_MEMBERSHIP,
    SILVER_PARTY_RECORDS,
)

pytestmark = pytest.mark.slow
AS_OF = date(2026, 6, 30)  # fixed: recency does not move with the new order's date


def _partition(spark: SparkSession, lake_ctx: StageContext) -> set[frozenset[str]]:
    rows = io.read_table(spark, lake_ctx.lakehouse.ref(GOLD_IDENTITY_XREF)).groupBy(
        "customer_id").agg(F.collect_list("record_id").alias("r")).collect()
    return {frozenset(r["r"]) for r in rows}


def _xref(ctx: StageContext):
    return io.read_table(ctx.spark, ctx.lakehouse.ref(GOLD_IDENTITY_XREF)).select(
        "record_id", "customer_id").localCheckpoint(eager=True)


@pytest.fixture(scope="module")
def lake(spark: SparkSession, tmp_path_factory: pytest.TempPathFactory) -> StageContext:
    base = tmp_path_factory.mktemp("incremental")
    generate(base / "data", people=160, seed=23)
    assert hold_out(base / "data", 0.12, seed=5) > 0
    ctx = StageContext(spark, lakehouse_config(base, as_of=AS_OF))
    batch_run(ctx)
    return ctx


def test_stream_micro_batches_are_incremental_and_match_a_full_run(
        lake: StageContext, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from udp_spark.pipeline.stream import run_stream

    spark, ctx = lake.spark, lake
    data = Path(ctx.cfg.data_root)
    # The stream's first micro-batch sees every file already landed: nothing changes.
    before = _xref(ctx)
    first = run_stream(ctx, available_now=True)
    assert [b.rows_landed for b in first] == [0]
    assert id_churn(before, _xref(ctx))["ids_changed_outside_touched"] == 0

    # Micro-batch 1: the held-out customers land as new files. The first attempt dies in
    # publish, after its events and profiles were committed but not the history and the
    # segment spells; the query's checkpoint does not move, so the restart replays it.
    for path in sorted((data / HELD_DIR).glob("*/*")):
        path.replace(data / path.parent.name / path.name)
    landed = sum(io.read_table(spark, ctx.lakehouse.bronze(n)).count() for n in ctx.cfg.sources)
    started = datetime.now(UTC).replace(tzinfo=None)  # audit times are naive UTC
    monkeypatch.setenv(CRASH_AT, "publish:after_profile")
    with pytest.raises(Exception, match="publish:after_profile"):
        run_stream(ctx, available_now=True)
    monkeypatch.delenv(CRASH_AT)
    new_batch = run_stream(ctx, available_now=True)
    # The replay is the same micro-batch; its files were landed by the attempt that died.
    assert len(new_batch) == 1 and new_batch[0].batch_id == first[0].batch_id + 1, new_batch
    assert new_batch[0].rows_landed == 0
    assert sum(io.read_table(spark, ctx.lakehouse.bronze(n)).count()
               for n in ctx.cfg.sources) > landed
    after = _xref(ctx)
    churn = id_churn(before, after)
    assert churn["new_records"] > 0 and churn["clusters_touched"] > 0, churn
    assert churn["ids_changed_outside_touched"] == 0, churn
    runs = io.read_table(spark, ctx.lakehouse.ref(AUDIT_RUNS))
    batch_runs: dict[str, list] = {}
    for r in runs.filter((F.col("started_at") >= F.lit(started))
                         & (F.col("status") == "succeeded")).collect():
        batch_runs.setdefault(r["stage"], []).append(r)
    records = io.read_table(spark, ctx.lakehouse.ref(SILVER_PARTY_RECORDS)).count()
    # Incremental, not full, in the attempt that died (its stages before publish succeeded)
    # and in its replay: block saw only the
    # changed records, resolve re-clustered only the components they touch.
    for stage in ("block", "resolve", "publish"):
        assert all(r["metrics"]["full"] == 0.0 for r in batch_runs[stage]), stage
    changed = max(r["metrics"]["records_changed"] for r in batch_runs["block"])
    assert 0 < changed < records / 4, batch_runs["block"]
    reclustered = max(r["row_counts"]["records_reclustered"] for r in batch_runs["resolve"])
    assert 0 < reclustered < records / 2
    # Replayed, nothing doubled: each file landed once, no event twice, and
    # every customer's history has exactly one open row.
    for name in ctx.cfg.sources:
        bronze = io.read_table(spark, ctx.lakehouse.bronze(name))
        twice = bronze.groupBy("_batch_id").agg(F.countDistinct("_run_id").alias("n"))
        assert twice.filter("n > 1").count() == 0, name  # each file landed by one run
    events = io.read_table(spark, ctx.lakehouse.ref(GOLD_PROFILE_EVENTS))
    assert events.count() == events.select("event_id").distinct().count()
    entered = events.filter(F.col("event_type") == "segment_entered").groupBy(
        "customer_id", "detail").count()
    spells = io.read_table(spark, ctx.lakehouse.ref(GOLD_SEGMENT_MEMBERSHIP)).groupBy(
        "customer_id", "segment").count()
    assert entered.filter("count > 1").count() == 0 and spells.filter("count > 1").count() == 0
    history = io.read_table(spark, ctx.lakehouse.ref(GOLD_CUSTOMER_PROFILE_HISTORY))
    open_rows = history.filter(F.col("valid_to").isNull()).groupBy("customer_id").count()
    assert open_rows.filter("count != 1").count() == 0
    assert open_rows.count() == io.read_table(
        spark, ctx.lakehouse.ref(GOLD_CUSTOMER_PROFILE)).count()

    # Micro-batch 2: a purchase by a known web-shop customer.
    profiles = io.read_table(spark, ctx.lakehouse.ref(GOLD_CUSTOMER_PROFILE))
    xref = io.read_table(spark, ctx.lakehouse.ref(GOLD_IDENTITY_XREF))
    buyer = (xref.filter(F.col("record_id").startswith("webshop_customers:"))
             .join(profiles, "customer_id").filter(~F.array_contains("segments", "high_value"))
             .orderBy("record_id").select("record_id", "customer_id", "orders", "ltv").first())
    assert buyer is not None
    order = {"order_id": "9999001", "customer_id": buyer["record_id"].split(":", 1)[1],
             "ordered_at": f"{AS_OF.isoformat()}T10:00:00Z", "total": 5000.0,
             "currency": "USD", "status": "completed", "items": 3, "channel": "web"}
    (data / "webshop" / "orders_stream_1.jsonl").write_text(json.dumps(order) + "\n")
    purchase = run_stream(ctx, available_now=True)
    assert len(purchase) == 1 and purchase[0].sources == ["webshop_orders"], purchase
    now = io.read_table(spark, ctx.lakehouse.ref(GOLD_CUSTOMER_PROFILE)).filter(
        F.col("customer_id") == buyer["customer_id"]).first()
    assert now is not None
    assert now["orders"] == buyer["orders"] + 1
    assert float(now["ltv"]) == pytest.approx(float(buyer["ltv"]) + 5000.0)
    assert now["recency_days"] == 0 and now["r_score"] == 5
    assert "high_value" in now["segments"]
    events = io.read_table(spark, ctx.lakehouse.ref(GOLD_PROFILE_EVENTS)).filter(
        F.col("customer_id") == buyer["customer_id"])
    kinds = {(r["event_type"], r["detail"]) for r in events.collect()}
    assert ("segment_entered", "high_value") in kinds, kinds
    assert any(t == "metrics_changed" and "ltv" in (d or "") for t, d in kinds), kinds
    assert purchase[0].profile_events.get("segment_entered", 0) >= 1

    # Replaying finds nothing new.
    assert run_stream(ctx, available_now=True) == []

    # Micro-batch 3: a purchase arrives as a Kafka message (a real broker) on a topic the
    # shop's orders are also published to: the same mapping, format kafka.
    _kafka_purchase(ctx, tmp_path)

    # The same rows through a full run of every stage give the same clusters.
    copy = tmp_path / "lake_full"
    shutil.copytree(ctx.cfg.lakehouse.root, copy)
    full_cfg = ctx.cfg.model_copy(update={"lakehouse": ctx.cfg.lakehouse.model_copy(
        update={"root": str(copy)})})
    full = StageContext(spark, full_cfg)
    from udp_spark.pipeline.block import run_block
    from udp_spark.pipeline.resolve import run_resolve
    from udp_spark.pipeline.score import run_score
    from udp_spark.pipeline.standardize import run_standardize

    assert run_standardize(full, full=True).party_updated == 0
    run_block(full, full=True)
    run_score(full, full=True)
    report = run_resolve(full, full=True)
    assert report.full and report.events == {}
    assert _partition(spark, full) == _partition(spark, ctx)


def _kafka_purchase(ctx: StageContext, tmp_path: Path) -> None:
    from udp_spark.pipeline.stream import run_stream
    from udp_spark.platform.kafka import LocalKafka

    spark = ctx.spark
    profiles = io.read_table(spark, ctx.lakehouse.ref(GOLD_CUSTOMER_PROFILE))
    xref = io.read_table(spark, ctx.lakehouse.ref(GOLD_IDENTITY_XREF))
    buyer = (xref.filter(F.col("record_id").startswith("webshop_customers:"))
             .join(profiles, "customer_id").filter(~F.array_contains("segments", "high_value"))
             .orderBy(F.desc("record_id")).select("record_id", "customer_id", "orders", "ltv")
             .first())
    assert buyer is not None
    with LocalKafka(tmp_path / "kafka") as kafka:
        orders = ctx.cfg.sources["webshop_orders"].model_copy(update={
            "name": "webshop_orders_kafka", "format": "kafka", "path": None,
            "topic": "shop-orders", "options": {"kafka.bootstrap.servers": kafka.bootstrap}})
        cfg = ctx.cfg.model_copy(update={
            "sources": {**ctx.cfg.sources, orders.name: orders},
            # a query of its own (a new source changes the query: a new checkpoint)
            "stream": ctx.cfg.stream.model_copy(update={
                "sources": (orders.name,), "checkpoint_location": str(tmp_path / "chk_kafka")})})
        kctx = StageContext(spark, cfg)
        message = {"order_id": "9999002", "customer_id": buyer["record_id"].split(":", 1)[1],
                   "ordered_at": f"{AS_OF.isoformat()}T11:00:00Z", "total": 4000.0,
                   "currency": "USD", "status": "completed", "items": 2, "channel": "web"}
        (spark.createDataFrame([(json.dumps(message),)], "value string").write.format("kafka")
         .option("kafka.bootstrap.servers", kafka.bootstrap).option("topic", "shop-orders")
         .save())
        batches = run_stream(kctx, available_now=True)
    assert len(batches) == 1 and batches[0].sources == [orders.name], batches
    assert batches[0].rows_landed == 1
    now = io.read_table(spark, ctx.lakehouse.ref(GOLD_CUSTOMER_PROFILE)).filter(
        F.col("customer_id") == buyer["customer_id"]).first()
    assert now is not None
    assert now["orders"] == buyer["orders"] + 1
    assert float(now["ltv"]) == pytest.approx(float(buyer["ltv"]) + 4000.0)
    assert now["recency_days"] == 0 and "high_value" in now["segments"]
    kinds = {(r["event_type"], r["detail"]) for r in io.read_table(
        spark, ctx.lakehouse.ref(GOLD_PROFILE_EVENTS)).filter(
        F.col("customer_id") == buyer["customer_id"]).collect()}
    assert ("segment_entered", "high_value") in kinds, kinds

