"""Segments: SQL predicates from config, checked up front, materialized on the profile; the
membership change set only holds transitions."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from pathlib import Path

import pytest
from _profile_data import interpreted  # noqa: F401 (fixture)
from chispa import assert_df_equality
from pydantic import ValidationError
from pyspark.sql import DataFrame, SparkSession

from udp_spark.config import ConfigError, PublishSettings, SegmentSpec, load_config
from udp_spark.profile.segments import SegmentError, check_segments, with_segments
from udp_spark.profile.versioning import segment_transitions

SEGMENTS = {
    "high_value": SegmentSpec(where="ltv > 1000 and recency_days < 90"),
    "open_support": SegmentSpec(where="open_tickets > 0"),
}

pytestmark = pytest.mark.usefixtures("interpreted")


def _profiles(spark: SparkSession) -> DataFrame:
    return spark.createDataFrame(
        [("C1", Decimal("1500.00"), 10, 0), ("C2", Decimal("1500.00"), 200, 2),
         ("C3", Decimal("1500.00"), None, 1), ("C4", Decimal("20.00"), 5, 0)],
        "customer_id string, ltv decimal(18,2), recency_days int, open_tickets int")


def test_segments_are_the_sorted_names_of_true_predicates(spark: SparkSession) -> None:
    out = _profiles(spark).transform(with_segments(SEGMENTS)).select("customer_id",
                                                                     "segments")
    expected = spark.createDataFrame(
        # C3: unknown recency is not "< 90" (null counts as false).
        [("C1", ["high_value"]), ("C2", ["open_support"]), ("C3", ["open_support"]),
         ("C4", [])], "customer_id string, segments array<string>")
    assert_df_equality(out, expected, ignore_row_order=True, ignore_nullable=True)


def test_no_segments_gives_empty_lists(spark: SparkSession) -> None:
    out = _profiles(spark).transform(with_segments({})).select("segments").collect()
    assert [r[0] for r in out] == [[], [], [], []]


@pytest.mark.parametrize(("where", "message"), [
    ("lifetime_value > 1000", r"segments\.big: 'lifetime_value > 1000' does not work on the "
                              r"profile.*lifetime_value.*profile columns are \['customer_id'"),
    ("ltv >", r"segments\.big: 'ltv >' does not work"),
    ("ltv + 1", r"segments\.big: 'ltv \+ 1' is a decimal.*not a condition"),
])
def test_bad_predicates_fail_before_any_job_naming_the_segment(
        spark: SparkSession, where: str, message: str) -> None:
    with pytest.raises(SegmentError, match=message):
        check_segments({"big": SegmentSpec(where=where)}, _profiles(spark))


def test_segment_config_shorthand_and_checks() -> None:
    settings = PublishSettings.model_validate({"segments": {
        "high_value": "ltv > 1000", "vip": {"where": "orders > 10", "description": "x"}}})
    assert settings.segments["high_value"] == SegmentSpec(where="ltv > 1000")
    assert settings.segments["vip"].description == "x"
    with pytest.raises(ValidationError, match="lower_snake_case"):
        PublishSettings.model_validate({"segments": {"High Value": "ltv > 1"}})
    with pytest.raises(ValidationError, match="unbalanced"):
        PublishSettings.model_validate({"segments": {"x": "(ltv > 1"}})
    with pytest.raises(ValidationError, match="no ';'"):
        PublishSettings.model_validate({"segments": {"x": "ltv > 1; drop table t"}})


def test_bad_segment_in_yaml_names_the_key(tmp_path: Path) -> None:
    (tmp_path / "pipeline.yaml").write_text(
        "publish:\n  segments:\n    big: \"(ltv > 1\"\n  metrics:\n    horizon: 3\n")
    with pytest.raises(ConfigError) as err:
        load_config(tmp_path / "pipeline.yaml")
    text = str(err.value)
    assert "publish.segments.big.where" in text and "unbalanced" in text
    assert "publish.metrics.horizon: unknown key" in text


def test_membership_changes_only_on_transitions(spark: SparkSession) -> None:
    at = datetime(2026, 7, 1, 12, 0)
    profiles = spark.createDataFrame(
        [("C1", ["high_value", "open_support"]), ("C3", [])],
        "customer_id string, segments array<string>")
    open_spells = spark.createDataFrame(
        [("C1", "high_value"), ("C2", "high_value"), ("C3", "open_support")],
        "customer_id string, segment string")
    out = segment_transitions(profiles, open_spells, at, "run-2").select(
        "customer_id", "segment", "entered_at", "entered_run_id", "_action")
    expected = spark.createDataFrame(
        [("C1", "open_support", at, "run-2", "insert"),  # entered
         ("C2", "high_value", None, None, "close"),      # customer gone (merged away)
         ("C3", "open_support", None, None, "close")],   # left the segment
        "customer_id string, segment string, entered_at timestamp, entered_run_id string, "
        "_action string")
    assert_df_equality(out, expected, ignore_row_order=True, ignore_nullable=True)
