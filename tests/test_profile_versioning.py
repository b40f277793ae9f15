"""Change sets: rows are classified by content hash, history rows open and close, and the
hash does not depend on the session's time zone."""

from __future__ import annotations

from datetime import datetime

import pytest
from _profile_data import interpreted  # noqa: F401 (fixture)
from chispa import assert_df_equality
from pyspark.sql import SparkSession
from pyspark.sql import functions as F

from udp_spark.profile.functions import content_hash
from udp_spark.profile.versioning import classify_changes, history_changes, profile_changes

pytestmark = pytest.mark.usefixtures("interpreted")


def test_changes_are_classified_by_hash_and_become_merge_actions(spark: SparkSession) -> None:
    new = spark.createDataFrame([("C1", "h1", "a"), ("C2", "h2-new", "b"), ("C4", "h4", "d")],
                                "customer_id string, _row_hash string, v string")
    current = spark.createDataFrame([("C1", "h1"), ("C2", "h2"), ("C3", "h3")],
                                    "customer_id string, _row_hash string")
    classified = classify_changes(new, current).cache()
    expected = spark.createDataFrame(
        [("C1", "h1", "a", "unchanged"), ("C2", "h2-new", "b", "update"),
         ("C4", "h4", "d", "insert"), ("C3", None, None, "delete")],
        "customer_id string, _row_hash string, v string, _change string")
    assert_df_equality(classified, expected, ignore_row_order=True, ignore_nullable=True)
    actions = {r["customer_id"]: r["_action"] for r in
               profile_changes(classified).select("customer_id", "_action").collect()}
    assert actions == {"C2": "upsert", "C4": "upsert", "C3": "delete"}
    at = datetime(2026, 7, 1, 12, 0)
    history = {r["customer_id"]: (r["_action"], r["change_type"], r["valid_from"],
                                  r["is_current"]) for r in
               history_changes(classified.withColumn("published_at", F.lit(at)), at).collect()}
    assert history == {"C2": ("replace", "updated", at, True),
                       "C4": ("insert", "created", at, True),
                       "C3": ("close", None, at, True)}
    # No current state yet: everything is new.
    first = classify_changes(new, None).select("_change").distinct().collect()
    assert [r[0] for r in first] == ["insert"]


def test_content_hash_ignores_the_session_time_zone(spark: SparkSession) -> None:
    df = spark.createDataFrame([("C1", datetime(2026, 7, 1, 12, 0))],
                               "customer_id string, t timestamp")
    key = "spark.sql.session.timeZone"
    before = spark.conf.get(key)
    try:
        utc = df.select(content_hash(["customer_id", "t"])).first()
        spark.conf.set(key, "America/New_York")
        new_york = df.select(content_hash(["customer_id", "t"])).first()
    finally:
        spark.conf.set(key, before)
    assert utc == new_york
    other = df.select(content_hash(["customer_id"])).first()
    assert other != utc
