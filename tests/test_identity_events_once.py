"""A merge is announced once in gold.profile_events, even when the publish that announced it
is repeated (killed after its profiles, before its watermarks: the chaos sweep's
``publish:after_profile`` re-run announced a merge twice)."""

from __future__ import annotations

from datetime import datetime

from chispa import assert_df_equality
from pyspark.sql import SparkSession

from udp_spark.profile.versioning import unannounced_identity_events

IDENTITY = "customer_id string, event_type string, related_customer_id string, event_at timestamp"
ANNOUNCED = ("event_id string, customer_id string, event_type string, detail string, "
             "related_customer_id string, run_id string, event_at timestamp")


def test_identity_events_already_passed_on_are_not_announced_again(spark: SparkSession
                                                                    ) -> None:
    resolved = datetime(2026, 12, 5, 3, 34, 52, 731000)
    identity = spark.createDataFrame(
        [("A", "merged", "B", resolved),  # announced by the killed publish
         ("C", "split", "D", resolved),  # not yet
         ("E", "merged", "F", resolved)],  # the same pair merged before, long ago
        IDENTITY)
    announced = spark.createDataFrame(
        [("e1", "A", "merged", None, "B", "publish-1", datetime(2026, 12, 5, 3, 34, 52)),
         ("e2", "A", "attributes_changed", "email", None, "publish-1",
          datetime(2026, 12, 5, 3, 34, 52)),
         ("e3", "E", "merged", None, "F", "publish-0", datetime(2026, 11, 1))],
        ANNOUNCED)
    got = unannounced_identity_events(identity, announced)
    expected = spark.createDataFrame(
        [("C", "split", "D", resolved), ("E", "merged", "F", resolved)], IDENTITY)
    assert_df_equality(got, expected, ignore_row_order=True)
