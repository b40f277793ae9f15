"""Households from small hand-built profile rows: address + family name, phone, the caps,
time overlap, stable ids across runs, roles by age, and the config's error messages.

Every scenario lives side by side in one population (its own customer ids, addresses,
family names and phones, so no two scenarios can link), built once by a module fixture:
each build costs seconds of Spark stages whatever its size, so one build per test made
this file take minutes. Three more builds cover what one cannot: the next state with the
first as ``previous`` (stable ids), the same rebuilt only around the changed customers
(incremental), and one with phones switched off.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path
from typing import Any

import pytest
from _profile_data import interpreted  # noqa: F401 (fixture)
from chispa import assert_df_equality
from pyspark.sql import DataFrame, Row, SparkSession
from pyspark.sql import functions as F
from pyspark.sql import types as T

from udp_spark.config import ConfigError, HouseholdSettings, load_config
from udp_spark.profile.households import (
    HOUSEHOLD_COLUMNS,
    build_households,
    household_input_changes,
    looks_like_placeholder_phone,
    with_household_ids,
)

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
PLACEHOLDER = "+12175555555"
DEFAULT_CAP = HouseholdSettings().max_address_customers


def home(n: int) -> tuple[str, str, str]:
    """An address of its own for each scenario: no other scenario shares its key."""
    return (f"{n} Oak Avenue", "Ogdenville", f"{30000 + n}")


def number(n: int) -> str:
    """A phone number of its own (last seven digits 555nnnn: not a placeholder)."""
    return f"+1217555{n:04d}"


def addr(where: tuple[str, str, str], first: int = 2020, last: int = 2025,
         rid: str = "") -> tuple[Any, ...]:
    return (where[0], where[1], None, where[2], "US", datetime(first, 1, 1),
            datetime(last, 1, 1), 1, ["crm"], [rid])


def phone(value: str, first: int = 2020, last: int = 2025, rid: str = "") -> tuple[Any, ...]:
    return (value, datetime(first, 1, 1), datetime(last, 1, 1), 1, ["crm"], [rid])


def person(cid: str, family: str | None, addresses: list[tuple[str, str, str]] | None = None,
           phones: list[str] | None = None, dob: date | None = None,
           birth_year: int | None = None) -> tuple[Any, ...]:
    rid = f"crm:{cid}"
    return (cid, family, dob, birth_year,
            [addr(a, rid=rid) for a in addresses or []],
            [phone(p, rid=rid) for p in phones or []])


def spelled(cid: str, family: str, spells: list[tuple[tuple[str, str, str], int, int]]
            ) -> tuple[Any, ...]:
    """A customer seen at each address from the first to the last year given."""
    return (cid, family, None, None,
            [addr(a, first, last, f"crm:{cid}") for a, first, last in spells], [])


# --------------------------------------------------------------------------- scenarios
# Customer ids are prefixed by scenario; within one, sorted as the assertions list them.

SAME = [person("SAME-C1", "Lee", [MAIN]), person("SAME-C2", "LEE", [MAIN]),
        person("SAME-C3", "Ray", [ELM])]
OTHER = [person("OTHER-C1", "Kim", [home(1)]), person("OTHER-C2", "Park", [home(1)])]
PHONE = [person("PHONE-C1", "Diaz", [home(2)], phones=[number(142)]),
         person("PHONE-C2", "Ortiz", phones=[number(142)]),
         person("PHONE-C3", "Dunn", phones=[number(199)])]
# one more customer than the default cap at one address (a care home), and exactly the cap
# at another; two strangers giving the same placeholder number
OVER_CAP = [person(f"CARE-C{i:02d}", "Moss", [home(3)]) for i in range(1, DEFAULT_CAP + 2)]
AT_CAP = [person(f"FULL-C{i:02d}", "Hart", [home(4)]) for i in range(1, DEFAULT_CAP + 1)]
PLACEHOLDERS = [person("PH-P1", "Cole", phones=[PLACEHOLDER]),
                person("PH-P2", "Webb", phones=[PLACEHOLDER])]
# C1 left home(5) when first seen at home(6) (2013); C3, seen once in 2011 and never
# elsewhere, is still there: C1-C3 overlap in 2011-2013, C3-C2 from 2015. Without C3
# (home(7), home(8)) C1 and C2 never overlap.
OVERLAP = [spelled("TIME-C1", "Ford", [(home(5), 2010, 2012), (home(6), 2013, 2025)]),
           spelled("TIME-C2", "Ford", [(home(5), 2015, 2025)]),
           spelled("TIME-C3", "Ford", [(home(5), 2011, 2011)])]
NO_OVERLAP = [spelled("GAP-C1", "Gray", [(home(7), 2010, 2012), (home(8), 2013, 2025)]),
              spelled("GAP-C2", "Gray", [(home(7), 2015, 2025)])]
# stable ids: the first run holds these; the second (previous = the first) the next state
AGAIN = [person("AGAIN-C1", "Hill", [home(9)]), person("AGAIN-C2", "Hill", [home(9)]),
         person("AGAIN-C3", "Vance", [home(10)])]
ADD = [person("ADD-C1", "Ives", [home(11)]), person("ADD-C2", "Ives", [home(11)]),
       person("ADD-C3", "Judd", [home(12)])]
ADDED = [*ADD, person("ADD-C4", "Ives", [home(11)])]            # C4 moves in
LEAVE = [person("LEAVE-C1", "Kerr", [home(13)]), person("LEAVE-C2", "Kerr", [home(13)]),
         person("LEAVE-C3", "Lamb", [home(14)]), person("LEAVE-C4", "Kerr", [home(13)])]
LEFT = [r for r in LEAVE if r[0] != "LEAVE-C1"]                  # C1 erased / merged away
MERGE = [person("MERGE-A1", "Mott", [home(15)]), person("MERGE-A2", "Mott", [home(15)]),
         person("MERGE-B1", "Nunn", [home(16)], phones=[number(242)])]
MERGED = [person("MERGE-A1", "Mott", [home(15)], phones=[number(242)]), *MERGE[1:]]
ROLES = [person("ROLE-C1", "Nash", [home(17)], dob=date(1980, 5, 1)),
         person("ROLE-C2", "Nash", [home(17)], dob=date(2008, 7, 1)),   # 17 on 2026-06-30
         person("ROLE-C3", "Nash", [home(17)], dob=date(2008, 6, 30)),  # 18 that day
         person("ROLE-C4", "Nash", [home(17)], birth_year=2015),
         person("ROLE-C5", "Nash", [home(17)], birth_year=2008),        # 17 or 18: unknown
         person("ROLE-C6", "Nash", [home(17)])]
# one address written two ways, both seen last at the same time (members landed in one
# file): the household's address must not depend on which row comes first
SPELLING = [person("SPELL-C1", "Pratt", [("21 PINE STREET", "Ogdenville", "30121")]),
            person("SPELL-C2", "Pratt", [("21 Pine St", "Ogdenville", "30121")])]
ON_PROFILE = [person("PROF-C1", "Owen", [home(18)]), person("PROF-C2", "Owen", [home(18)]),
              person("PROF-C3", "Pratt")]

# rebuilt around the changed customers only: what the changes below reach
FULL_HOUSE = [person(f"INC-Q{i:02d}", "Quinn", [home(20)]) for i in range(1, DEFAULT_CAP + 1)]
NEWCOMER = person("INC-QNEW", "Reed", [home(20)])  # the 13th holder: no Quinn linked now
# one over the cap until S01 vanishes (merged away: only its profile before has the key)
OVER_FULL = [person(f"INC-S{i:02d}", "Stone", [home(21)]) for i in range(1, DEFAULT_CAP + 2)]
# B2 and B3 share a number with seven strangers (nine: over the phone cap): it links no
# one, though B2 and B3 alone are rebuilt (B1 moved); X1 gives B1 a number: B and X merge
BRIDGED = [person("INC-B1", "Yates", [home(24)]),
           person("INC-B2", "Yates", [home(24)], phones=[number(300)]),
           person("INC-B3", "Yates", [home(24)], phones=[number(300)]),
           person("INC-X1", "Zane", [home(23)], phones=[number(301)]),
           person("INC-X2", "Zane", [home(23)])]
SWITCHBOARD = [person(f"INC-W{i}", f"Walsh{i}", phones=[number(300)]) for i in range(1, 8)]
# T2 drops the number that linked U1: the household splits
SPLIT = [person("INC-T1", "Tate", [home(25)]),
         person("INC-T2", "Tate", [home(25)], phones=[number(302)]),
         person("INC-U1", "Ural", [home(26)], phones=[number(302)])]
INCREMENTAL = [*FULL_HOUSE, *OVER_FULL, *BRIDGED, *SWITCHBOARD, *SPLIT]
INCREMENTAL_AFTER = [*FULL_HOUSE, NEWCOMER, *OVER_FULL[1:],
                     person("INC-B1", "Yates", [home(24)], phones=[number(301)]),
                     *BRIDGED[1:], *SWITCHBOARD,
                     SPLIT[0], person("INC-T2", "Tate", [home(25)]), SPLIT[2]]

FIRST_RUN = [*SAME, *OTHER, *PHONE, *OVER_CAP, *AT_CAP, *PLACEHOLDERS, *OVERLAP,
             *NO_OVERLAP, *AGAIN, *ADD, *LEAVE, *MERGE, *ROLES, *ON_PROFILE, *INCREMENTAL,
             *SPELLING]
# everyone again, the stable-id and incremental scenarios in their next state
SECOND_RUN = [*SAME, *OTHER, *PHONE, *OVER_CAP, *AT_CAP, *PLACEHOLDERS, *OVERLAP,
              *NO_OVERLAP, *AGAIN, *ADDED, *LEFT, *MERGED, *ROLES, *ON_PROFILE,
              *INCREMENTAL_AFTER, *reversed(SPELLING)]
# created, changed or vanished between the two
CHANGED = ["ADD-C4", "LEAVE-C1", "MERGE-A1", "INC-QNEW", "INC-S01", "INC-B1", "INC-T2"]


def ids(rows: list[tuple[Any, ...]]) -> list[str]:
    return [r[0] for r in rows]


def profiles(spark: SparkSession, rows: list[tuple[Any, ...]]) -> DataFrame:
    return spark.createDataFrame(rows, PROFILE_SCHEMA)


@dataclass
class Built:
    """One build's result, materialised: frames and their rows."""

    households: DataFrame
    assignment: DataFrame
    blocked: DataFrame
    rows: list[Row]
    blocked_rows: list[Row]
    customers: set[str] | None = None  # rebuilt around changes: who, and what it replaces
    replaced: set[str] | None = None

    def of(self, scenario: list[tuple[Any, ...]]) -> list[Row]:
        """The households holding a customer of ``scenario``."""
        wanted = set(ids(scenario))
        return [r for r in self.rows if wanted & set(r["member_ids"])]

    def frame_of(self, scenario: list[tuple[Any, ...]]) -> DataFrame:
        return self.households.filter(F.arrays_overlap(
            "member_ids", F.array(*[F.lit(i) for i in ids(scenario)])))

    def members(self, scenario: list[tuple[Any, ...]]) -> set[tuple[str, ...]]:
        return {tuple(r["member_ids"]) for r in self.of(scenario)}

    def ids_by_members(self, scenario: list[tuple[Any, ...]]) -> dict[tuple[str, ...], str]:
        return {tuple(r["member_ids"]): r["household_id"] for r in self.of(scenario)}


def build(spark: SparkSession, rows: list[tuple[Any, ...]], previous: DataFrame | None = None,
          run_id: str = "run-1", changed: list[str] | None = None,
          before: list[tuple[Any, ...]] | None = None, driver_max_evidence: int | None = None,
          **settings: Any) -> Built:
    hh = build_households(
        profiles(spark, rows), previous, HouseholdSettings(**settings), AS_OF, run_id,
        changed=None if changed is None else spark.createDataFrame(
            [(c,) for c in changed], "customer_id string"),
        before=None if before is None else profiles(spark, before),
        **({} if driver_max_evidence is None else {"driver_max_evidence": driver_max_evidence}))
    households = hh.households.localCheckpoint()
    blocked = hh.blocked.localCheckpoint()
    return Built(households, households.select(F.explode("member_ids").alias("customer_id"),
                                               "household_id"),
                 blocked, households.collect(), blocked.collect(),
                 None if hh.customers is None else {r[0] for r in hh.customers.collect()},
                 None if hh.replaced is None else {r[0] for r in hh.replaced.collect()})


@pytest.fixture(scope="module")
def first(spark: SparkSession, interpreted: None) -> Built:  # noqa: F811
    """Every scenario, default settings, no previous households."""
    return build(spark, FIRST_RUN)


@pytest.fixture(scope="module")
def second(spark: SparkSession, first: Built) -> Built:
    """Everyone's households in the next state, with the first run as ``previous``."""
    return build(spark, SECOND_RUN, first.households, run_id="run-2")


@pytest.fixture(scope="module")
def rebuilt(spark: SparkSession, first: Built) -> Built:
    """The same, rebuilt only around the customers in :data:`CHANGED`."""
    return build(spark, SECOND_RUN, first.households, run_id="run-2", changed=CHANGED,
                 before=[r for r in FIRST_RUN if r[0] in CHANGED])


@pytest.fixture(scope="module")
def in_spark(spark: SparkSession, first: Built) -> dict[str, Built]:
    """The first, second and rebuilt builds again by the Spark plan (the fixtures above are
    small enough to be built in the driver)."""
    whole = build(spark, FIRST_RUN, driver_max_evidence=0)
    return {"first": whole,
            "second": build(spark, SECOND_RUN, whole.households, run_id="run-2",
                            driver_max_evidence=0),
            "rebuilt": build(spark, SECOND_RUN, whole.households, run_id="run-2",
                             changed=CHANGED, before=[r for r in FIRST_RUN if r[0] in CHANGED],
                             driver_max_evidence=0)}


@pytest.fixture(scope="module")
def phones_off(spark: SparkSession, interpreted: None) -> Built:  # noqa: F811
    return build(spark, PHONE, link_phones=False)


# --------------------------------------------------------------------------- tests


def test_same_address_and_family_name_is_one_household(first: Built) -> None:
    assert first.members(SAME) == {("SAME-C1", "SAME-C2"), ("SAME-C3",)}
    row = next(r for r in first.of(SAME) if r["size"] == 2)
    assert [tuple(x) for x in row["links"]] == [("address", "12 main st|12345|US|lee")]
    assert (row["address"]["street"], row["first_seen_at"], row["last_seen_at"]) == (
        "12 Main Street", datetime(2020, 1, 1), datetime(2025, 1, 1))
    assert list(first.households.columns) == list(HOUSEHOLD_COLUMNS)
    # no key of this scenario is blocked (the cap test: nothing but its keys is)
    assert not [r for r in first.blocked_rows
                if r["key"] in ("12 main st|12345|US", "4 elm rd|67890|US")]


def test_an_address_written_two_ways_and_seen_at_once_is_chosen_by_value(
        first: Built, second: Built) -> None:
    """Ties in when a spelling was last seen are broken by the value (the greater), not by
    row order (the second run lists the two the other way round): a re-run after a kill
    must write the same row."""
    for built in (first, second):
        assert built.members(SPELLING) == {("SPELL-C1", "SPELL-C2")}
        (row,) = built.of(SPELLING)
        assert row["address"]["street"] == max("21 PINE STREET", "21 Pine St")


def test_same_address_other_family_name_is_two_households(first: Built) -> None:
    assert first.members(OTHER) == {("OTHER-C1",), ("OTHER-C2",)}


def test_a_shared_phone_links_without_an_address(spark: SparkSession, first: Built,
                                                 phones_off: Built) -> None:
    # C3 has neither an address nor a link: no household
    expected = spark.createDataFrame(
        [(["PHONE-C1", "PHONE-C2"], 2, [("phone", number(142))])],
        "member_ids array<string>, size int, links array<struct<kind:string,key:string>>")
    assert_df_equality(first.frame_of(PHONE).select("member_ids", "size", "links"), expected,
                       ignore_row_order=True, ignore_nullable=True)
    # ... and no link at all with phones switched off
    assert phones_off.members(PHONE) == {("PHONE-C1",)}


def test_oversized_address_and_placeholder_phone_link_no_one(first: Built) -> None:
    assert first.members(OVER_CAP) == {(i,) for i in ids(OVER_CAP)}
    # the only blocked keys of the whole population (the last two: the incremental
    # scenarios' full house and switchboard)
    assert sorted((r["kind"], r["key"], r["customers"], r["reason"])
                  for r in first.blocked_rows) == [
        ("address", "21 oak ave|30021|US", DEFAULT_CAP + 1, "over_cap"),
        ("address", "3 oak ave|30003|US", DEFAULT_CAP + 1, "over_cap"),
        ("phone", number(300), 9, "over_cap"),
        ("phone", PLACEHOLDER, 2, "placeholder")]
    assert first.of(PLACEHOLDERS) == []
    # at the cap it still links
    assert first.members(AT_CAP) == {tuple(ids(AT_CAP))}


def test_no_link_without_overlapping_time(first: Built) -> None:
    assert first.members(OVERLAP) == {("TIME-C1", "TIME-C2", "TIME-C3")}
    assert first.members(NO_OVERLAP) == {("GAP-C1",), ("GAP-C2",)}


def test_ids_stay_when_a_member_is_added_or_leaves(first: Built, second: Built) -> None:
    assert all(r["household_id"].startswith("H") and len(r["household_id"]) == 16
               for r in first.rows)
    # the same input again: the same rows, and the same ids as without the previous table
    assert_df_equality(second.frame_of(AGAIN).drop("run_id"),
                       first.frame_of(AGAIN).drop("run_id"), ignore_row_order=True)
    # C4 moves in with the Iveses: the household keeps its id
    ids1 = first.ids_by_members(ADD)
    assert second.ids_by_members(ADDED) == {
        ("ADD-C1", "ADD-C2", "ADD-C4"): ids1[("ADD-C1", "ADD-C2")],
        ("ADD-C3",): ids1[("ADD-C3",)]}
    # C1 leaves (erased or merged away): C2 and C4 keep it
    ids1 = first.ids_by_members(LEAVE)
    assert second.ids_by_members(LEFT) == {
        ("LEAVE-C2", "LEAVE-C4"): ids1[("LEAVE-C1", "LEAVE-C2", "LEAVE-C4")],
        ("LEAVE-C3",): ids1[("LEAVE-C3",)]}


def test_two_households_merging_keep_the_larger_ones_id(first: Built, second: Built) -> None:
    ids1 = first.ids_by_members(MERGE)
    assert set(ids1) == {("MERGE-A1", "MERGE-A2"), ("MERGE-B1",)}
    assert second.ids_by_members(MERGED) == {
        ("MERGE-A1", "MERGE-A2", "MERGE-B1"): ids1[("MERGE-A1", "MERGE-A2")]}


def test_a_rebuild_around_the_changed_customers_equals_a_whole_one(first: Built,
                                                                   second: Built,
                                                                   rebuilt: Built) -> None:
    assert rebuilt.replaced is not None
    kept = first.households.filter(~F.col("household_id").isin(sorted(rebuilt.replaced)))
    assert_df_equality(kept.unionByName(rebuilt.households).drop("run_id"),
                       second.households.drop("run_id"), ignore_row_order=True)
    assert_df_equality(
        kept.select(F.explode("member_ids").alias("customer_id"), "household_id")
        .unionByName(rebuilt.assignment), second.assignment, ignore_row_order=True)
    # the changed customers, the holders of their keys (now and before) and the members
    # of the households those held: not the seven strangers behind B2's and B3's number
    assert rebuilt.customers == {
        "ADD-C1", "ADD-C2", "ADD-C4", "LEAVE-C1", "LEAVE-C2", "LEAVE-C4",
        "MERGE-A1", "MERGE-A2", "MERGE-B1", *ids(FULL_HOUSE), "INC-QNEW", *ids(OVER_FULL),
        *ids(BRIDGED), *ids(SPLIT)}
    # what the changes did: Quinns split up, Stones together, B and X one, T and U apart
    assert second.members([*FULL_HOUSE, NEWCOMER]) == {
        (i,) for i in [*ids(FULL_HOUSE), "INC-QNEW"]}
    assert second.members(OVER_FULL) == {tuple(ids(OVER_FULL)[1:])}
    assert second.members(BRIDGED) == {tuple(ids(BRIDGED))}
    assert second.members(SPLIT) == {("INC-T1", "INC-T2"), ("INC-U1",)}
    [row] = second.of(BRIDGED)
    assert [tuple(x) for x in row["links"]] == [
        ("address", "23 oak ave|30023|US|zane"), ("address", "24 oak ave|30024|US|yates"),
        ("phone", number(301))]


@pytest.mark.parametrize("name", ["first", "second", "rebuilt"])
def test_the_driver_builds_the_rows_and_types_the_spark_plan_builds(
        name: str, first: Built, second: Built, rebuilt: Built,
        in_spark: dict[str, Built]) -> None:
    driver, plan = {"first": first, "second": second, "rebuilt": rebuilt}[name], in_spark[name]
    # the same schema (nullability too: it is gold.households'), rows, blocked keys and
    # rebuild scope; ids included, so stable ids and minted ones agree as well
    assert_df_equality(driver.households, plan.households, ignore_row_order=True)
    assert_df_equality(driver.blocked, plan.blocked, ignore_row_order=True)
    assert (driver.customers, driver.replaced) == (plan.customers, plan.replaced)
    assert len(driver.rows) >= 10 and driver.blocked_rows


def test_a_small_build_is_planned_in_the_driver(spark: SparkSession) -> None:
    def plan(**kw: Any) -> str:
        hh = build_households(profiles(spark, FIRST_RUN), None, HouseholdSettings(), AS_OF,
                              "run-1", **kw)
        return hh.households._jdf.queryExecution().optimizedPlan().toString()

    # the driver's rows are a scan of collected rows; the Spark plan joins and aggregates
    driver, spark_plan = plan(), plan(driver_max_evidence=0)
    assert "Join" not in driver and "Aggregate" not in driver
    assert "Join" in spark_plan and "Aggregate" in spark_plan


def test_roles_by_age_at_as_of(first: Built) -> None:
    [row] = first.of(ROLES)
    assert [(m["customer_id"], m["role"]) for m in row["members"]] == [
        ("ROLE-C1", "adult"), ("ROLE-C2", "minor"), ("ROLE-C3", "adult"),
        ("ROLE-C4", "minor"), ("ROLE-C5", None), ("ROLE-C6", None)]


def test_profiles_get_their_household_id(spark: SparkSession, first: Built) -> None:
    from udp_spark.profile.build import CONTENT_COLUMNS

    base = profiles(spark, ON_PROFILE)
    full = base.select("customer_id", *[F.lit(None).cast("string").alias(c)
                                        for c in CONTENT_COLUMNS if c not in base.columns
                                        and c != "customer_id"],
                       *[c for c in base.columns if c != "customer_id"])
    out = full.transform(with_household_ids(first.assignment)).select(
        "customer_id", "household_id", "_row_hash").collect()
    by_id = {r["customer_id"]: r["household_id"] for r in out}
    assert by_id["PROF-C1"] == by_id["PROF-C2"] and by_id["PROF-C1"] is not None
    assert by_id["PROF-C3"] is None
    assert len({r["_row_hash"] for r in out}) == 3


def test_placeholder_numbers(spark: SparkSession, interpreted: None) -> None:  # noqa: F811
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


def test_only_changes_of_what_households_are_built_from_count(spark: SparkSession) -> None:
    """A publish rebuilds households only around customers created, vanished, or changed in
    family name, birth date or year, addresses or phones: the rest (a purchase, a new
    e-mail) cannot move a household."""
    before = [person("IN-C1", "Lee", [MAIN]), person("IN-C2", "Ray", [ELM]),
              person("IN-C3", "Kim", phones=[number(300)]), person("IN-C4", "Park", [home(40)]),
              person("IN-C5", "Dunn", [home(41)], dob=date(1990, 1, 1))]
    after = [person("IN-C1", "Lee", [MAIN]),                       # the same
             person("IN-C2", "Ray", [ELM, home(42)]),              # moved
             person("IN-C3", "Kim", phones=[number(301)]),         # new number
             person("IN-C5", "Dunn", [home(41)], dob=date(1991, 1, 1)),  # birth date fixed
             person("IN-C6", "Ives", [MAIN])]                      # created; C4 vanished
    frame = functools.partial(spark.createDataFrame, schema=PROFILE_SCHEMA)
    # columns outside the household inputs (orders, e-mail) do not count
    current = frame(before).withColumn("orders", F.lit(1))
    built = frame(after).withColumn("orders", F.lit(2))
    changed = {r["customer_id"] for r in household_input_changes(built, current).collect()}
    assert changed == {"IN-C2", "IN-C3", "IN-C4", "IN-C5", "IN-C6"}
    assert household_input_changes(frame(before), current.drop("orders")).isEmpty()
