"""Consent and erasure end to end on real Spark, Delta and MLflow.

One lakehouse goes through every stage, a stream micro-batch and several publishes; a
distinctive person ("Zebulon Quixmarble") is written into three sources with an order.
Checked: consent from a source mapping and from `udp consent set` reaches the profile (and a
``consent_changed`` event), an export for a purpose holds only allowed customers and
fields; erasing the person leaves none of their values in any file under the lakehouse or
the MLflow store (Parquet decoded, logs and checkpoints read as bytes), other customers keep
their profiles and ids, and a re-delivery of the files that still hold the person lands
nothing of them, quarantined as ``erased subject``.
"""

from __future__ import annotations

import csv
import json
import shutil
from datetime import UTC, date, datetime
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from _lakehouse import batch_run, lakehouse_config
from pyspark.sql import SparkSession
from pyspark.sql import functions as F

from udp_spark import io
from udp_spark.faults import CRASH_AT, InjectedCrash
from udp_spark.generate import generate
from udp_spark.pipeline.context import StageContext
from udp_spark.tables import (
    GOLD_CUSTOMER_PROFILE,
    GOLD_HOUSEHOLDS,
    GOLD_IDENTITY_XREF,
    GOLD_PROFILE_EVENTS,
    PRIVACY_ERASURE_REQUESTS,
    SILVER_INTERACTIONS,
    SILVER_PARTY_RECORDS,
    SILVER_QUARANTINE,
)

pytestmark = pytest.mark.slow

# The subject: values no generated person has, so any trace of them is theirs.
ZEB = {"given": "Zebulon", "family": "Quixmarble", "email": "zebulon.quixmarble@example.org",
       "phone": "614-555-0199", "street": "77 Xylophone Terrace", "dob": "1931-07-29"}
NEEDLES = ("zebulon", "quixmarble", "xylophone", "1931-07-29", "5550199")


def _add_subject(data: Path) -> None:
    crm = data / "crm" / "contacts.csv"
    with crm.open(newline="") as f:
        header = next(csv.reader(f))
    row = {h: "" for h in header}
    row.update({"contact_id": "CZEB00001", "first_name": ZEB["given"],
                "last_name": ZEB["family"], "email": ZEB["email"], "phone": ZEB["phone"],
                "street": ZEB["street"], "city": "Columbus", "state": "OH",
                "postal_code": "43211", "country": "USA", "birth_date": ZEB["dob"],
                "created_at": "2025-01-02 10:00:00", "last_modified": "2025-06-01 10:00:00"})
    with crm.open("a", newline="") as f:
        csv.DictWriter(f, header).writerow(row)
    with (data / "webshop" / "customers.jsonl").open("a") as f:
        f.write(json.dumps({
            "customer_id": "cus_ZEB", "email": ZEB["email"].upper(),
            "name": {"first": ZEB["given"], "last": ZEB["family"]}, "phone": ZEB["phone"],
            "shipping_address": {"line1": ZEB["street"], "city": "Columbus",
                                 "postcode": "43211", "country": "US"},
            "date_of_birth": ZEB["dob"], "loyalty_id": None,
            "created_at": "2025-01-05T10:00:00Z", "updated_at": "2025-06-05T10:00:00Z",
            "marketing_opt_in": True}) + "\n")
    with (data / "webshop" / "orders.jsonl").open("a") as f:
        f.write(json.dumps({"order_id": "9999001", "customer_id": "cus_ZEB",
                            "ordered_at": "2026-06-20T10:00:00Z", "total": 1500.0,
                            "currency": "USD", "status": "completed", "items": 3,
                            "channel": "web"}) + "\n")
    email = data / "email" / "subscribers.csv"
    with email.open(newline="") as f:
        header = next(csv.reader(f))
    with email.open("a", newline="") as f:
        csv.DictWriter(f, header).writerow({h: "" for h in header} | {
            "subscriber_id": "zeb0000001", "email": ZEB["email"], "first_name": ZEB["given"],
            "last_name": ZEB["family"], "opt_in_status": "subscribed",
            "opt_in_at": "2025-02-01T09:00:00", "list_name": "weekly-deals",
            "emails_sent": "10", "emails_opened": "5", "emails_clicked": "1",
            "last_open_at": "2026-06-01T09:00:00"})


@pytest.fixture(scope="module")
def lake(spark: SparkSession, tmp_path_factory: pytest.TempPathFactory) -> StageContext:
    base = tmp_path_factory.mktemp("privacy")
    generate(base / "data", people=40, seed=31)
    _add_subject(base / "data")
    # checkpoints inside the lakehouse: the erasure must clear Spark's checkpoint files too
    ctx = StageContext(spark, lakehouse_config(base, as_of=date(2026, 6, 30),
                                               checkpoint_dir=base / "lake" / "_checkpoints"))
    batch_run(ctx)
    return ctx


def _zeb(ctx: StageContext) -> str:
    xref = io.read_table(ctx.spark, ctx.lakehouse.ref(GOLD_IDENTITY_XREF))
    ids = {r[0] for r in xref.filter(F.col("record_id").isin(
        "crm:CZEB00001", "webshop_customers:cus_ZEB", "email_subscribers:zeb0000001"))
        .select("customer_id").collect()}
    assert len(ids) == 1, ids  # the three records are one customer
    return ids.pop()


def _profiles(ctx: StageContext) -> dict[str, dict]:
    return {r["customer_id"]: r.asDict(recursive=True) for r in io.read_table(
        ctx.spark, ctx.lakehouse.ref(GOLD_CUSTOMER_PROFILE)).collect()}


def test_consent_reaches_the_profile_and_exports(lake: StageContext, tmp_path: Path) -> None:
    from udp_spark.pipeline.consent import export_for_purpose, set_consent
    from udp_spark.pipeline.publish import run_publish

    zeb = _zeb(lake)
    before = _profiles(lake)
    # the subscriber's opt-in (source mapping) is a grant
    assert before[zeb]["consent"]["email_marketing"]["status"] == "granted"
    assert before[zeb]["consent"]["email_marketing"]["allowed"] is True
    assert before[zeb]["consent"]["sms_marketing"]["status"] == "none"
    allowed = {c for c, p in before.items() if p["consent"]["email_marketing"]["allowed"]}
    assert zeb in allowed and len(allowed) < len(before)

    out = tmp_path / "export"
    report = export_for_purpose(lake, "email_marketing", str(out), fmt="parquet")
    rows = pq.read_table(out).to_pylist()
    assert report.exported == len(rows) == len(allowed)
    assert report.excluded == len(before) - len(allowed)
    assert {r["customer_id"] for r in rows} == allowed
    assert set(rows[0]) == set(lake.cfg.privacy.purposes["email_marketing"].fields)

    # a withdrawal through the e-mail (another spelling) applies to the whole customer
    set_consent(lake, subject_type="email", subject=ZEB["email"].title(),
                purpose="email_marketing", status="withdrawn",
                occurred_at=datetime(2026, 6, 25, tzinfo=UTC))
    pub = run_publish(lake)
    assert not pub.full and pub.profile_updated == 1, pub
    after = _profiles(lake)
    assert after[zeb]["consent"]["email_marketing"]["status"] == "withdrawn"
    assert {c: p for c, p in after.items() if c != zeb} == {
        c: p for c, p in before.items() if c != zeb}
    events = io.read_table(lake.spark, lake.lakehouse.ref(GOLD_PROFILE_EVENTS)).filter(
        (F.col("customer_id") == zeb) & (F.col("event_type") == "consent_changed")).collect()
    assert [e["detail"] for e in events] == ["email_marketing"]
    report2 = export_for_purpose(lake, "email_marketing", str(tmp_path / "e2"), fmt="parquet")
    assert zeb not in {r["customer_id"] for r in pq.read_table(tmp_path / "e2").to_pylist()}
    assert report2.exported == report.exported - 1


def _traces(root: Path) -> list[str]:
    """Every file under ``root`` holding a needle: Parquet decoded, the rest as bytes."""
    hits = []
    for f in root.rglob("*"):
        if not f.is_file():
            continue
        if f.suffix == ".parquet":
            text = json.dumps(pq.read_table(f).to_pylist(), default=str).lower()
        else:
            text = f.read_bytes().decode("utf-8", "replace").lower()
        hits += [f"{f.relative_to(root)}: {n}" for n in NEEDLES if n in text]
    return hits


def test_erasure_leaves_no_trace_and_keeps_everyone_else(
        lake: StageContext, monkeypatch: pytest.MonkeyPatch) -> None:
    from udp_spark.pipeline.consent import export_subject
    from udp_spark.pipeline.erase import erase
    from udp_spark.pipeline.ingest import run_ingest
    from udp_spark.pipeline.standardize import run_standardize
    from udp_spark.pipeline.stream import run_stream

    spark = lake.spark
    zeb = _zeb(lake)
    # a stream micro-batch and another publish first: more versions holding the person
    data = Path(lake.cfg.data_root)
    with (data / "webshop" / "orders-2.jsonl").open("w") as f:
        f.write(json.dumps({"order_id": "9999002", "customer_id": "cus_ZEB",
                            "ordered_at": "2026-06-28T10:00:00Z", "total": 80.0,
                            "currency": "USD", "status": "completed", "items": 1,
                            "channel": "web"}) + "\n")
    batches = run_stream(lake, available_now=True)
    assert sum(b.rows_landed for b in batches) == 1
    root = Path(lake.cfg.lakehouse.root)
    mlflow_db = Path(lake.cfg.mlflow.tracking_uri.removeprefix("sqlite:///"))
    assert _traces(root), "the person should be in the lakehouse before the erasure"

    # subject access first: everything held, in one document
    doc = export_subject(lake, "email", ZEB["email"].upper())
    assert {r["record_id"] for r in doc["records"]} == {
        "crm:CZEB00001", "webshop_customers:cus_ZEB", "email_subscribers:zeb0000001"}
    assert {i["interaction_key"] for i in doc["interactions"]} >= {"9999001", "9999002"}
    assert [p["customer_id"] for p in doc["profile"]] == [zeb]
    assert {(e["status"], e["subject_type"]) for e in doc["consent_events"]} >= {
        ("granted", "record"), ("withdrawn", "email")}
    assert "xylophone" in json.dumps(doc, default=str).lower()

    others_before = {c: p for c, p in _profiles(lake).items() if c != zeb}
    households = lambda: io.read_table(  # noqa: E731
        spark, lake.lakehouse.ref(GOLD_HOUSEHOLDS)).filter(F.array_contains("member_ids", zeb))
    assert households().count() == 1  # the scan below covers gold.households too
    # A request cut short right after the party records went (what a kill leaves there):
    # the subject can no longer be found by e-mail, but the ids it recorded first let the
    # next request for the same subject finish the erasure.
    monkeypatch.setenv(CRASH_AT, "erase:after_party_records")
    with pytest.raises(InjectedCrash):
        erase(lake, "email", ZEB["email"])
    monkeypatch.delenv(CRASH_AT)
    assert io.read_table(spark, lake.lakehouse.ref(SILVER_PARTY_RECORDS)).filter(
        F.col("record_id").isin("crm:CZEB00001", "webshop_customers:cus_ZEB",
                                "email_subscribers:zeb0000001")).isEmpty()
    assert zeb in _profiles(lake)
    report = erase(lake, "email", ZEB["email"])
    assert report.records == 3 and report.customers == 1, report
    assert len(report.finished_requests) == 1, report
    assert sum(report.files_purged.values()) > 0
    assert _traces(root) == []
    assert [n for n in NEEDLES if n in mlflow_db.read_bytes().decode("latin-1").lower()] == []
    mlruns = mlflow_db.parent / "mlruns"  # the artifacts live beside the tracking file
    assert any(mlruns.rglob("*.json")), "the registered model's files should be scanned"
    assert _traces(mlruns) == []
    after = _profiles(lake)
    assert zeb not in after and households().isEmpty()
    for c, p in others_before.items():
        assert {k: v for k, v in after[c].items() if k not in ("run_id", "published_at")} == {
            k: v for k, v in p.items() if k not in ("run_id", "published_at")}, c
    req = {r["request_id"]: r for r in io.read_table(
        spark, lake.lakehouse.ref(PRIVACY_ERASURE_REQUESTS)).collect()}
    assert sorted(req) == sorted([report.request_id, *report.finished_requests])
    assert {(r["status"], r["subject"]) for r in req.values()} == {("completed", None)}
    assert json.loads(req[report.finished_requests[0]]["report"]) == {
        "completed_by": report.request_id}

    # The sources still hold the person: a re-delivery lands nothing of them.
    for name in ("crm/contacts.csv", "webshop/customers.jsonl", "email/subscribers.csv"):
        src = data / name
        shutil.copy(src, src.with_name(src.stem + "-redelivered" + src.suffix))
    ing = run_ingest(lake)
    # the three copies, and the stream's order file: all its rows were erased, so it counts
    # as not landed and is read again
    suppressed = {s.source: s.rows_suppressed for s in ing.sources if s.rows_suppressed}
    assert suppressed == {"crm": 1, "webshop_customers": 1, "email_subscribers": 1,
                          "webshop_orders": 1}
    run_standardize(lake)
    assert _traces(root) == []
    q = io.read_table(spark, lake.lakehouse.ref(SILVER_QUARANTINE)).filter(
        F.col("reason") == "erased subject").collect()
    assert len(q) == 4 and all(r["raw_row"] is None and r["record_id"] is None for r in q)


def test_retention_removes_old_interactions_everywhere(lake: StageContext) -> None:
    from udp_spark.pipeline.retention import run_retention

    spark = lake.spark
    now = datetime(2026, 6, 30, tzinfo=UTC)
    ctx = StageContext(spark, lake.cfg.model_copy(update={"privacy": lake.cfg.privacy.model_copy(
        update={"retention": lake.cfg.privacy.retention.model_copy(
            update={"sources": {"webshop_orders": 365}})})}))
    inter = lambda: io.read_table(spark, ctx.lakehouse.ref(SILVER_INTERACTIONS))  # noqa: E731
    old = inter().filter((F.col("source") == "webshop_orders")
                         & (F.col("occurred_at") < F.lit(datetime(2025, 6, 30, tzinfo=UTC))))
    old_keys = sorted(r[0] for r in old.select("interaction_key").collect())
    assert old_keys
    orders_before = sum(p["orders"] for p in _profiles(ctx).values())
    report = run_retention(ctx, now=now)
    assert report.rows_removed[str(ctx.lakehouse.ref(SILVER_INTERACTIONS))] == len(old_keys)
    assert report.files_purged > 0
    assert inter().filter(F.col("interaction_key").isin(*old_keys)
                          & (F.col("source") == "webshop_orders")).isEmpty()
    assert sum(p["orders"] for p in _profiles(ctx).values()) < orders_before
    # gone from every version: no interactions file holds an expired order any more
    folder = Path(ctx.lakehouse.ref(SILVER_INTERACTIONS).path or "")
    held = {r["interaction_key"] for f in folder.rglob("*.parquet")
            for r in pq.read_table(f).to_pylist() if r.get("source") == "webshop_orders"}
    assert not held & set(old_keys)
