"""Consent rules on real Spark: latest wins, withdrawal through any identifier, expiry,
merges and splits, the profile's consent map, and exports that hold only what a purpose
allows."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from udp_spark.config import PurposeSettings
from udp_spark.privacy.consent import (
    CONSENT_EVENT_SCHEMA,
    consent_column,
    consent_states,
    effective_consent,
    resolve_subjects,
)

AT = datetime(2026, 6, 30, tzinfo=UTC)
PURPOSES = {"email_marketing": PurposeSettings(),
            "analytics": PurposeSettings(requires_opt_in=False)}

RECORDS = "record_id string, email_canonical string, phone_e164 string, mobile_e164 string"
XREF = "record_id string, customer_id string"
IDENTITY = ("event_type string, customer_id string, related_customer_id string, "
            "event_at timestamp")


def ts(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def events(spark: SparkSession, *rows: tuple) -> DataFrame:
    """rows: (subject_type, subject, purpose, status, occurred_at[, expires_at])."""
    full = [(f"e{i}", st, s, p, status, "consent", "test", ts(o),
             ts(x[0]) if x else None, ts("2026-07-01T00:00:00"), "r1")
            for i, (st, s, p, status, o, *x) in enumerate(rows)]
    return spark.createDataFrame(full, CONSENT_EVENT_SCHEMA)


def state(spark: SparkSession, ev: DataFrame, records: list[tuple], xref: list[tuple],
          identity: list[tuple] | None = None) -> dict[str, dict[str, tuple[str, bool]]]:
    resolved = resolve_subjects(
        ev, spark.createDataFrame(records, RECORDS), spark.createDataFrame(xref, XREF),
        spark.createDataFrame(identity or [], IDENTITY))
    states = consent_states(effective_consent(resolved, AT))
    customers = spark.createDataFrame([(c,) for c in sorted({c for _, c in xref})],
                                      "customer_id string")
    out = customers.join(states, "customer_id", "left").select(
        "customer_id", consent_column(PURPOSES, F.col("states")).alias("consent"))
    return {r["customer_id"]: {p: (s["status"], s["allowed"]) for p, s in r["consent"].items()}
            for r in out.collect()}


REC = [("crm:1", "ann@x.com", "+15550001", None), ("shop:9", "ann@x.com", None, None),
       ("app:5", "bob@y.com", None, "+15550002")]
XR = [("crm:1", "C1"), ("shop:9", "C1"), ("app:5", "C2")]


def test_latest_event_wins_and_defaults_follow_the_purpose(spark: SparkSession) -> None:
    ev = events(spark,
                ("record", "crm:1", "email_marketing", "granted", "2026-01-01T00:00:00"),
                ("record", "shop:9", "email_marketing", "withdrawn", "2026-02-01T00:00:00"),
                ("record", "crm:1", "email_marketing", "granted", "2026-03-01T00:00:00"),
                ("record", "app:5", "email_marketing", "withdrawn", "2026-01-01T00:00:00"),
                ("record", "app:5", "email_marketing", "granted", "2025-12-01T00:00:00"))
    got = state(spark, ev, REC, XR)
    assert got["C1"]["email_marketing"] == ("granted", True)  # March grant after Feb withdrawal
    assert got["C2"]["email_marketing"] == ("withdrawn", False)
    # no event: opt-in purposes are not allowed, opt-out purposes are
    assert got["C1"]["analytics"] == ("none", True)


def test_a_tie_is_won_by_the_withdrawal(spark: SparkSession) -> None:
    ev = events(spark,
                ("record", "crm:1", "email_marketing", "granted", "2026-01-01T00:00:00"),
                ("record", "shop:9", "email_marketing", "withdrawn", "2026-01-01T00:00:00"))
    assert state(spark, ev, REC, XR)["C1"]["email_marketing"] == ("withdrawn", False)


def test_withdrawal_through_any_identifier_applies_to_the_customer(spark: SparkSession) -> None:
    ev = events(spark,
                ("record", "crm:1", "email_marketing", "granted", "2026-01-01T00:00:00"),
                ("record", "app:5", "email_marketing", "granted", "2026-01-01T00:00:00"),
                # an e-mail in another form (case, +tag) reaches both records holding it
                ("email", "Ann+news@X.com", "email_marketing", "withdrawn",
                 "2026-02-01T00:00:00"),
                ("phone", "+15550002", "email_marketing", "withdrawn", "2026-02-01T00:00:00"),
                ("customer", "C2", "analytics", "withdrawn", "2026-02-01T00:00:00"))
    got = state(spark, ev, REC, XR)
    assert got["C1"]["email_marketing"] == ("withdrawn", False)
    assert got["C2"]["email_marketing"] == ("withdrawn", False)  # mobile of app:5
    assert got["C2"]["analytics"] == ("withdrawn", False)
    assert got["C1"]["analytics"] == ("none", True)


def test_an_expired_grant_is_no_grant(spark: SparkSession) -> None:
    ev = events(spark,
                ("record", "crm:1", "email_marketing", "granted", "2026-01-01T00:00:00",
                 "2026-06-01T00:00:00"),
                ("record", "app:5", "email_marketing", "granted", "2026-01-01T00:00:00",
                 "2027-01-01T00:00:00"))
    got = state(spark, ev, REC, XR)
    assert got["C1"]["email_marketing"] == ("expired", False)
    assert got["C2"]["email_marketing"] == ("granted", True)


def test_consent_follows_a_merge(spark: SparkSession) -> None:
    """C2 merged into C1: C1 holds the events given through C2's records and id."""
    ev = events(spark,
                ("record", "crm:1", "email_marketing", "granted", "2026-01-01T00:00:00"),
                ("customer", "C2", "email_marketing", "withdrawn", "2026-02-01T00:00:00"))
    merged_xref = [("crm:1", "C1"), ("shop:9", "C1"), ("app:5", "C1")]
    identity = [("merged", "C2", "C1", ts("2026-03-01T00:00:00"))]
    got = state(spark, ev, REC, merged_xref, identity)
    assert set(got) == {"C1"}
    assert got["C1"]["email_marketing"] == ("withdrawn", False)


def test_consent_follows_a_split(spark: SparkSession) -> None:
    """C1 split: shop:9 becomes C3. Record events go with their record; a withdrawal given
    through the id C1 before the split stays with both parts; a grant only with C1."""
    ev = events(spark,
                ("record", "shop:9", "email_marketing", "granted", "2026-01-01T00:00:00"),
                ("customer", "C1", "analytics", "withdrawn", "2026-02-01T00:00:00"),
                ("customer", "C1", "email_marketing", "granted", "2026-02-15T00:00:00"))
    split_xref = [("crm:1", "C1"), ("shop:9", "C3"), ("app:5", "C2")]
    identity = [("split", "C3", "C1", ts("2026-03-01T00:00:00"))]
    got = state(spark, ev, REC, split_xref, identity)
    assert got["C3"]["email_marketing"] == ("granted", True)  # its own record's grant
    assert got["C1"]["email_marketing"] == ("granted", True)  # the id's grant
    assert got["C1"]["analytics"] == ("withdrawn", False)
    assert got["C3"]["analytics"] == ("withdrawn", False)  # withdrawal survives the split
    assert got["C2"]["analytics"] == ("none", True)
    # a grant given through C1 after the split does not reach C3
    ev2 = events(spark, ("customer", "C1", "analytics", "granted", "2026-01-01T00:00:00"),
                 ("customer", "C1", "email_marketing", "granted", "2026-04-01T00:00:00"))
    got2 = state(spark, ev2, REC, split_xref, identity)
    assert got2["C3"]["email_marketing"] == ("none", False)
    assert got2["C3"]["analytics"] == ("none", True)


def test_unknown_subjects_resolve_to_nobody(spark: SparkSession) -> None:
    ev = events(spark, ("email", "nobody@z.com", "email_marketing", "granted",
                        "2026-01-01T00:00:00"),
                ("customer", "C9", "email_marketing", "granted", "2026-01-01T00:00:00"))
    resolved = resolve_subjects(ev, spark.createDataFrame(REC, RECORDS),
                                spark.createDataFrame(XR, XREF), None)
    assert resolved.count() == 0


@pytest.mark.parametrize("purpose", ["email_marketing", "analytics"])
def test_consent_column_has_every_purpose(spark: SparkSession, purpose: str) -> None:
    df = spark.createDataFrame([("C1",)], "customer_id string").withColumn(
        "consent", consent_column(PURPOSES, F.lit(None).cast(
            "map<string,struct<status:string,allowed:boolean,occurred_at:timestamp,"
            "expires_at:timestamp,legal_basis:string,source:string,event_id:string>>")))
    row = df.first()
    assert row is not None and set(row["consent"]) == set(PURPOSES)
    assert row["consent"][purpose]["allowed"] is (not PURPOSES[purpose].requires_opt_in)


def test_every_configured_purpose_exports_existing_profile_columns() -> None:
    from pathlib import Path

    from udp_spark.config import PrivacySettings, load_config
    from udp_spark.profile.build import PROFILE_COLUMNS

    shipped = load_config(Path(__file__).resolve().parents[1] / "conf" / "pipeline.yaml")
    for settings in (shipped.privacy, PrivacySettings()):
        for name, purpose in settings.purposes.items():
            assert set(purpose.fields) <= set(PROFILE_COLUMNS), (name, purpose.fields)
