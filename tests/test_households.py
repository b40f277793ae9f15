"""Households from small hand-built profile rows: address + family name, phone, the caps,
time overlap, stable ids across runs, roles by age, and the config's error messages."""

from __future__ import annotations

from datetime import date, datetime
from pathlib import Path
from typing import Any

import pytest
from _profile_data import interpreted  # noqa: F401 (fixture)
from chispa import assert_df_equality
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql import types as T

from udp_spark.config import ConfigError, HouseholdSettings, load_config
from udp_spark.profile.households import (
    HOUSEHOLD_COLUMNS,
    build_households,
    looks_like_placeholder_phone,
    with_household_ids,
)

pytestmark = pytest.mark.usefixtures("interpreted")

S, TS = T.StringType(), T.TimestampType()
SEEN = [T.StructField("first_seen_at", TS), T.StructField("last_seen_at", TS),
        T.StructField("source_count", T.IntegerType()),
        T.StructField("sources", T.ArrayType(S)), T.StructField("record_ids", T.ArrayType(S))]
# The gold.customer_profile columns households are built from, as the profile has them.
PROFILE_SCHEMA = T.StructType([
    T.StructField("customer_id", S), T.StructField("family_name", S),
    T.StructField("date_of_birth", T.DateType()), T.StructField("birth_year", T.IntegerType()),
    T.StructField("addresses", T.ArrayType(T.StructType(
        [T.StructField(f, S) for f in ("street", "city", "state", "postcode", "country")]
        + SEEN))),
    T.StructField("phones", T.ArrayType(T.StructType([T.StructField("value", S), *SEEN]))),
])
AS_OF = date(2026, 6, 30)
MAIN = ("12 Main Street", "Springfield", "12345")
ELM = ("4 Elm Road", "Shelbyville", "67890")


def addr(where: tuple[str, str, str], first: int = 2020, last: int = 2025,
         rid: str = "") -> tuple[Any, ...]:
    return (where[0], where[1], None, where[2], "US", datetime(first, 1, 1),
            datetime(last, 1, 1), 1, ["crm"], [rid])


def phone(number: str, first: int = 2020, last: int = 2025, rid: str = "") -> tuple[Any, ...]:
    return (number, datetime(first, 1, 1), datetime(last, 1, 1), 1, ["crm"], [rid])


def person(cid: str, family: str | None, addresses: list[tuple[str, str, str]] | None = None,
           phones: list[str] | None = None, dob: date | None = None,
           birth_year: int | None = None) -> tuple[Any, ...]:
    rid = f"crm:{cid}"
    return (cid, family, dob, birth_year,
            [addr(a, rid=rid) for a in addresses or []],
            [phone(p, rid=rid) for p in phones or []])


def profiles(spark: SparkSession, rows: list[tuple[Any, ...]]) -> DataFrame:
    return spark.createDataFrame(rows, PROFILE_SCHEMA)


def members(hh: DataFrame) -> set[tuple[str, ...]]:
    return {tuple(r[0]) for r in hh.select("member_ids").collect()}


def build(spark: SparkSession, rows: list[tuple[Any, ...]], previous: DataFrame | None = None,
          **settings: Any) -> Any:
    return build_households(profiles(spark, rows), previous, HouseholdSettings(**settings),
                            AS_OF, "run-1")


def test_same_address_and_family_name_is_one_household(spark: SparkSession) -> None:
    hh = build(spark, [person("C1", "Lee", [MAIN]), person("C2", "LEE", [MAIN]),
                       person("C3", "Ray", [ELM])])
    assert members(hh.households) == {("C1", "C2"), ("C3",)}
    row = hh.households.filter(F.col("size") == 2).first()
    assert [tuple(x) for x in row["links"]] == [("address", "12 main st|12345|US|lee")]
    assert (row["address"]["street"], row["first_seen_at"], row["last_seen_at"]) == (
        "12 Main Street", datetime(2020, 1, 1), datetime(2025, 1, 1))
    assert list(hh.households.columns) == list(HOUSEHOLD_COLUMNS)
    assert hh.blocked.isEmpty()


def test_same_address_other_family_name_is_two_households(spark: SparkSession) -> None:
    hh = build(spark, [person("C1", "Lee", [MAIN]), person("C2", "Ray", [MAIN])])
    assert members(hh.households) == {("C1",), ("C2",)}


def test_a_shared_phone_links_without_an_address(spark: SparkSession) -> None:
    hh = build(spark, [person("C1", "Lee", [MAIN], phones=["+12175550142"]),
                       person("C2", "Ray", phones=["+12175550142"]),
                       person("C3", "Dunn", phones=["+12175550199"])])
    # C3 has neither an address nor a link: no household
    expected = spark.createDataFrame([(["C1", "C2"], 2, [("phone", "+12175550142")])],
                                     "member_ids array<string>, size int, "
                                     "links array<struct<kind:string,key:string>>")
    assert_df_equality(hh.households.select("member_ids", "size", "links"), expected,
                       ignore_row_order=True, ignore_nullable=True)
    # ... and no link at all with phones switched off
    off = build(spark, [person("C1", "Lee", [MAIN], phones=["+12175550142"]),
                        person("C2", "Ray", phones=["+12175550142"])], link_phones=False)
    assert members(off.households) == {("C1",)}


def test_oversized_address_and_placeholder_phone_link_no_one(spark: SparkSession) -> None:
    rows = [person(f"C{i}", "Lee", [MAIN]) for i in range(1, 5)]  # a care home, cap 3
    rows += [person("P1", "Ray", phones=["+12175555555"]),
             person("P2", "Dunn", phones=["+12175555555"])]
    hh = build(spark, rows, max_address_customers=3)
    assert members(hh.households) == {("C1",), ("C2",), ("C3",), ("C4",)}
    assert sorted((r["kind"], r["key"], r["customers"], r["reason"])
                  for r in hh.blocked.collect()) == [
        ("address", "12 main st|12345|US", 4, "over_cap"),
        ("phone", "+12175555555", 2, "placeholder")]
    # at the cap it still links
    at_cap = build(spark, rows[:3], max_address_customers=3)
    assert members(at_cap.households) == {("C1", "C2", "C3")}


def test_no_link_without_overlapping_time(spark: SparkSession) -> None:
    moved = ("C1", "Lee", None, None,
             [addr(MAIN, 2010, 2012, "crm:C1"), addr(ELM, 2013, 2025, "crm:C1")], [])
    later = ("C2", "Lee", None, None, [addr(MAIN, 2015, 2025, "crm:C2")], [])
    still = ("C3", "Lee", None, None, [addr(MAIN, 2011, 2011, "crm:C3")], [])
    hh = build(spark, [moved, later, still])
    # C1 left Main Street when first seen at Elm Road (2013); C3, seen once in 2011 and
    # never elsewhere, is still there: C1-C3 overlap in 2011-2013, C3-C2 from 2015.
    assert members(hh.households) == {("C1", "C2", "C3")}
    hh2 = build(spark, [moved, later])
    assert members(hh2.households) == {("C1",), ("C2",)}


def test_ids_stay_when_a_member_is_added_or_leaves(spark: SparkSession) -> None:
    first = build(spark, [person("C1", "Lee", [MAIN]), person("C2", "Lee", [MAIN]),
                          person("C3", "Ray", [ELM])]).households.localCheckpoint()
    ids1 = {tuple(r["member_ids"]): r["household_id"] for r in first.collect()}
    assert all(i.startswith("H") and len(i) == 16 for i in ids1.values())
    # the same input again: the same ids, and the same ids without the previous table
    again = build(spark, [person("C1", "Lee", [MAIN]), person("C2", "Lee", [MAIN]),
                          person("C3", "Ray", [ELM])], first).households
    assert_df_equality(again.drop("run_id"), first.drop("run_id"), ignore_row_order=True)
    # C4 moves in with the Lees: the household keeps its id
    second = build(spark, [person("C1", "Lee", [MAIN]), person("C2", "Lee", [MAIN]),
                           person("C3", "Ray", [ELM]), person("C4", "Lee", [MAIN])],
                   first).households.localCheckpoint()
    ids2 = {tuple(r["member_ids"]): r["household_id"] for r in second.collect()}
    assert ids2 == {("C1", "C2", "C4"): ids1[("C1", "C2")], ("C3",): ids1[("C3",)]}
    # C1 leaves (erased or merged away): C2 and C4 keep it
    third = build(spark, [person("C2", "Lee", [MAIN]), person("C3", "Ray", [ELM]),
                          person("C4", "Lee", [MAIN])], second).households
    assert {tuple(r["member_ids"]): r["household_id"] for r in third.collect()} == {
        ("C2", "C4"): ids1[("C1", "C2")], ("C3",): ids1[("C3",)]}


def test_two_households_merging_keep_the_larger_ones_id(spark: SparkSession) -> None:
    run1 = build(spark, [person("A1", "Lee", [MAIN]), person("A2", "Lee", [MAIN]),
                         person("B1", "Ray", [ELM], phones=["+12175550142"])]
                 ).households.localCheckpoint()
    ids1 = {tuple(r["member_ids"]): r["household_id"] for r in run1.collect()}
    run2 = build(spark, [person("A1", "Lee", [MAIN], phones=["+12175550142"]),
                         person("A2", "Lee", [MAIN]),
                         person("B1", "Ray", [ELM], phones=["+12175550142"])], run1).households
    assert {tuple(r["member_ids"]): r["household_id"] for r in run2.collect()} == {
        ("A1", "A2", "B1"): ids1[("A1", "A2")]}


def test_roles_by_age_at_as_of(spark: SparkSession) -> None:
    rows = [person("C1", "Lee", [MAIN], dob=date(1980, 5, 1)),
            person("C2", "Lee", [MAIN], dob=date(2008, 7, 1)),   # 17 on 2026-06-30
            person("C3", "Lee", [MAIN], dob=date(2008, 6, 30)),  # 18 that day
            person("C4", "Lee", [MAIN], birth_year=2015),
            person("C5", "Lee", [MAIN], birth_year=2008),        # 17 or 18: unknown
            person("C6", "Lee", [MAIN])]
    hh = build(spark, rows).households
    row = hh.first()
    assert [(m["customer_id"], m["role"]) for m in row["members"]] == [
        ("C1", "adult"), ("C2", "minor"), ("C3", "adult"), ("C4", "minor"), ("C5", None),
        ("C6", None)]


def test_profiles_get_their_household_id(spark: SparkSession) -> None:
    from udp_spark.profile.build import CONTENT_COLUMNS

    rows = [person("C1", "Lee", [MAIN]), person("C2", "Lee", [MAIN]), person("C3", "Dunn")]
    hh = build(spark, rows)
    base = profiles(spark, rows)
    full = base.select("customer_id", *[F.lit(None).cast("string").alias(c)
                                        for c in CONTENT_COLUMNS if c not in base.columns
                                        and c != "customer_id"],
                       *[c for c in base.columns if c != "customer_id"])
    out = full.transform(with_household_ids(hh.assignment)).select(
        "customer_id", "household_id", "_row_hash").collect()
    by_id = {r["customer_id"]: r["household_id"] for r in out}
    assert by_id["C1"] == by_id["C2"] and by_id["C1"] is not None and by_id["C3"] is None
    assert len({r["_row_hash"] for r in out}) == 3


def test_placeholder_numbers(spark: SparkSession) -> None:
    df = spark.createDataFrame([("+12175555555", True), ("+12171234567", True),
                                ("+12179876543", True), ("+12175550142", False),
                                ("+4915123456780", False), (None, None)],
                               "n string, expected boolean")
    got = [(r["n"], r["p"]) for r in df.select(
        "n", looks_like_placeholder_phone(F.col("n")).alias("p")).collect()]
    assert got == [(r["n"], r["expected"]) for r in df.collect()]


def test_bad_settings_name_the_key(tmp_path: Path) -> None:
    conf = tmp_path / "pipeline.yaml"
    conf.write_text("publish:\n  households:\n    max_address_customers: 1\n"
                    "    max_phone: 3\n")
    with pytest.raises(ConfigError) as exc:
        load_config(conf)
    text = str(exc.value)
    assert "publish.households.max_address_customers: Input should be greater than or " \
           "equal to 2" in text
    assert "publish.households.max_phone: unknown key" in text
