"""Comparison levels: graded agreement, missing as its own level, identifiers by config."""

from __future__ import annotations

import datetime as dt

import pytest
from pyspark.sql import SparkSession
from pyspark.sql import functions as F

from udp_spark.config import IdentifierComparison, MatchingSettings
from udp_spark.matching.clustering import conflict_flag
from udp_spark.matching.comparisons import (
    MISSING,
    address,
    comparison_vectors,
    comparisons_for,
    date_of_birth,
    email,
    email_name,
    family_name,
    given_name,
    identifier,
    loyalty_id,
    middle_name,
    pair_frame,
    phone,
    record_columns,
    with_identifier_columns,
)


def _levels(spark: SparkSession, comparison, schema: str, rows: list[tuple]) -> list[int]:
    df = spark.createDataFrame(rows, schema)
    return [r[0] for r in df.select(comparison.level()).collect()]


def test_given_name_levels(spark: SparkSession) -> None:
    schema = ("given_name_norm_l string, given_name_norm_r string, family_name_norm_l string, "
              "family_name_norm_r string, given_name_aliases_l array<string>, "
              "given_name_aliases_r array<string>")
    rows = [
        ("katherine", "katherine", "lee", "lee", ["kate"], ["kate"]),      # exact
        ("lee", "kim", "kim", "lee", [], []),                               # swapped
        ("bill", "william", "x", "x", ["bill", "william"], ["william", "bill"]),  # nickname
        ("katherine", "katharine", "x", "x", [], []),                       # jaro-winkler
        ("k", "katherine", "x", "x", [], []),                               # initial
        ("karl", "kunigunde", "x", "x", [], []),                            # first letter
        ("anna", "maria", "x", "x", [], []),                                # else
        (None, "maria", "x", "x", [], []),                                  # missing
    ]
    assert _levels(spark, given_name(), schema, rows) == [5, 5, 4, 3, 2, 1, 0, MISSING]


def test_names_swapped_with_a_typo_nickname_or_compound_part_agree(
        spark: SparkSession) -> None:
    """Given and family name in each other's fields agree on both when one of them is exact
    and the other a little off; not when the other is another name or an initial."""
    schema = ("given_name_norm_l string, given_name_norm_r string, family_name_norm_l string, "
              "family_name_norm_r string, given_name_aliases_l array<string>, "
              "given_name_aliases_r array<string>, family_name_phonetic_l string, "
              "family_name_phonetic_r string")
    rows = [
        ("castillo", "justin", "jstin", "castillo", [], ["justin"], "J235", "C234"),  # typo
        ("watson", "tommy", "thomas", "watson", [], ["tommy", "thomas", "tom"],
         "T520", "W325"),                                                  # nickname
        ("sanchez ibanez", "fernando", "fernando", "sanchez", [], ["fernando"],
         "F655", "S522"),                                                  # compound part
        ("goldcombe", "larry", "lily", "goldcombe", [], ["larry"], "L400", "G425"),  # sibling
        ("robert", "m", "m", "roberts", [], ["m"], "M000", "R163"),        # an initial
    ]
    df = spark.createDataFrame(rows, schema)
    got = [(r[0], r[1]) for r in df.select(given_name().level(),
                                           family_name().level()).collect()]
    assert got == [(5, 3), (5, 3), (5, 3), (0, 0), (0, 0)]


def test_email_name_spells_the_named_record_s_full_name(spark: SparkSession) -> None:
    """Only a record with an e-mail and no name against one with both names has the
    evidence; its top level is weighed by the named side's full name."""
    schema = ("email_canonical_l string, given_name_norm_l string, family_name_norm_l string, "
              "email_canonical_r string, given_name_norm_r string, family_name_norm_r string")
    rows = [
        ("thomas.ross82@x.com", None, None, None, "thomas", "ross"),      # spells it
        (None, "mary ann", "o'neil", "oneilmaryann@x.com", None, None),   # family first
        ("tom.ross@x.com", None, None, None, "thomas", "ross"),           # another name
        ("thomasross@x.com", "thomas", "ross", None, "thomas", "ross"),   # both named
        ("thomasross@x.com", None, None, "thomasross@y.com", None, None),  # neither named
        ("thomasross@x.com", None, None, None, "thomas", None),           # half a name
    ]
    df = spark.createDataFrame(rows, schema).transform(comparison_vectors([email_name()]))
    got = [(r["email_name"], r["tf_value_email_name"]) for r in df.collect()]
    assert got == [(1, "thomas|ross"), (1, "mary ann|o'neil"), (0, "thomas|ross"),
                   (MISSING, None), (MISSING, None), (MISSING, None)]


def test_given_name_nicknames_and_compound_parts_meet(spark: SparkSession) -> None:
    """Aliases from the standardize step: European short forms and the parts of a compound
    name agree at the nickname level, two different compounds sharing a part do not."""
    from udp_spark.standardize.functions import nickname_aliases

    pairs = [("basti", "sebastian"), ("liam", "william"), ("lola", "maria dolores"),
             ("maria dolores", "dolores"), ("hans peter", "hans"),
             ("maria dolores", "maria pilar"), ("dolores", "pilar")]
    df = spark.createDataFrame(pairs, "given_name_norm_l string, given_name_norm_r string")
    df = df.select("*", nickname_aliases(F.col("given_name_norm_l")).alias("given_name_aliases_l"),
                   nickname_aliases(F.col("given_name_norm_r")).alias("given_name_aliases_r"),
                   F.lit("x").alias("family_name_norm_l"), F.lit("y").alias("family_name_norm_r"))
    levels = [r[0] for r in df.select(given_name().level()).collect()]
    assert levels == [4, 4, 4, 4, 4, 2, 0]


def test_family_name_levels_treat_an_initial_as_weak_agreement(spark: SparkSession) -> None:
    schema = ("given_name_norm_l string, given_name_norm_r string, family_name_norm_l string, "
              "family_name_norm_r string, family_name_phonetic_l string, "
              "family_name_phonetic_r string, given_name_aliases_l array<string>, "
              "given_name_aliases_r array<string>")
    rows = [
        ("x", "y", "johnson", "johnson", "J525", "J525", [], []),   # exact
        ("x", "y", "johnson", "jonson", "J525", "J525", [], []),    # jaro-winkler >= 0.92
        ("x", "y", "j", "johnson", "J000", "J525", [], []),  # an initial: weak, not disagreement
        ("x", "y", "j", "j", "J000", "J000", [], []),        # two initials are not an exact name
        ("x", "y", "k", "johnson", "K000", "J525", [], []),         # else
    ]
    assert _levels(spark, family_name(), schema, rows) == [3, 2, 1, 1, 0]


def test_address_levels_keep_a_missing_street_apart_from_another_street(
        spark: SparkSession) -> None:
    schema = ("street_norm_l string, street_norm_r string, postcode_l string, postcode_r string, "
              "city_norm_l string, city_norm_r string")
    rows = [
        ("1 main st", "1 main st", "94107", "94107", "sf", "sf"),     # same street and place
        ("1 main st", "1 mian st", "94107", "94107", "sf", "sf"),     # similar street
        (None, "1 main st", "94107", "94107", None, "sf"),            # street on one side only
        ("9 oak ave", "1 main st", "94107", "94107", "sf", "sf"),     # neighbours
        ("9 oak ave", "1 main st", "94110", "94107", "sf", "sf"),     # same city
        ("9 oak ave", "1 main st", "10001", "94107", "ny", "sf"),     # else
        (None, "1 main st", None, "94107", None, "sf"),               # missing
    ]
    assert _levels(spark, address(), schema, rows) == [5, 4, 3, 2, 1, 0, MISSING]


def test_a_postcode_typo_keeps_an_identical_street_at_the_top_level(
        spark: SparkSession) -> None:
    schema = ("street_norm_l string, street_norm_r string, postcode_l string, postcode_r string, "
              "city_norm_l string, city_norm_r string")
    rows = [
        ("1 main st", "1 main st", "94107", "94108", "sf", "sf"),     # one digit off
        ("1 main st", "1 main st", "94107", "94170", None, None),     # transposed, no city
        ("1 main st", "1 mian st", "94107", "94117", "sf", "sf"),     # similar street, typo
        ("1 main st", "1 main st", "94107", "10001", "sf", "sf"),     # same street and city
        ("1 main st", "1 main st", "94107", "10001", "sf", "ny"),     # another place
        ("9 oak ave", "1 main st", "94107", "94108", "sf", "sf"),     # other street: city
    ]
    assert _levels(spark, address(), schema, rows) == [5, 5, 4, 5, 0, 1]


def test_middle_names_and_initials(spark: SparkSession) -> None:
    schema = "middle_name_norm_l string, middle_name_norm_r string"
    rows = [
        ("james", "james"),        # same name
        ("katherine", "katharine"),  # one letter off
        ("anne marie", "anne"),    # first of two middle names
        ("j", "james"),            # initial agrees with the name
        ("j", "j"),                # two initials agree
        ("j", "k"),                # different initials
        ("james", "john"),         # different names, same initial
        (None, "j"),               # one side has none: no evidence
    ]
    assert _levels(spark, middle_name(), schema, rows) == [2, 2, 2, 1, 1, 0, 0, MISSING]


def test_an_identifier_typo_is_a_near_match_not_a_conflict(spark: SparkSession) -> None:
    ids = (IdentifierComparison(name="national_id", expression="identifiers['ssn']"),)
    records = spark.createDataFrame([
        ("a", {"ssn": "396-91-9886"}), ("b", {"ssn": "396-11-9886"}),
        ("c", {"ssn": "396919868"}), ("d", {"ssn": "396-91-98"}), ("e", {"ssn": "123-45-6789"}),
        ("f", {"ssn": "12a4"}), ("g", {"ssn": "12A5"}),
    ], "record_id string, identifiers map<string,string>").transform(
        with_identifier_columns(ids))
    pairs = spark.createDataFrame(
        [("a", "b"), ("a", "c"), ("a", "d"), ("a", "e"), ("f", "g")],
        "record_id_l string, record_id_r string")
    vec = pair_frame(records, pairs, ["record_id", "idc_national_id"]).transform(
        comparison_vectors([identifier("national_id")]))
    got = {(r["record_id_l"], r["record_id_r"]): (r["national_id"], r["conflict"]) for r in
           vec.withColumn("conflict", conflict_flag(dob=False, given_name=False,
                                                    loyalty_id=False,
                                                    identifiers=["national_id"])).collect()}
    assert got == {
        ("a", "b"): (1, False),   # one digit off: a typo
        ("a", "c"): (1, False),   # two digits swapped
        ("a", "d"): (0, True),    # two digits short: a clear disagreement
        ("a", "e"): (0, True),
        ("f", "g"): (0, True),    # short ids: one character off is another id
    }


def test_first_names_sharing_only_an_initial_letter_conflict(spark: SparkSession) -> None:
    levels = spark.createDataFrame([(5,), (2,), (1,), (0,), (MISSING,)], "given_name int")
    got = [r[0] for r in levels.select(conflict_flag(dob=False, loyalty_id=False)).collect()]
    assert got == [False, False, True, True, False]


def test_different_middle_names_conflict_where_asked(spark: SparkSession) -> None:
    """Levels: same name (or a letter off) 2, same initial 1, different 0, one side without
    a middle name MISSING: only 'different' keeps two records apart, and only when asked."""
    pairs = spark.createDataFrame([
        ("paul", "paul"), ("catherine", "katherine"), ("k", "kayla"), ("paul", "peter"),
        ("paul", "j"), (None, "paul"),
    ], "middle_name_norm_l string, middle_name_norm_r string").select(middle_name().level())
    got = [(r[0], r[1], r[2]) for r in pairs.select(
        "middle_name", conflict_flag(dob=False, given_name=False, loyalty_id=False,
                                     middle_name=True).alias("asked"),
        conflict_flag(dob=False, given_name=False, loyalty_id=False).alias("default")
    ).collect()]
    assert got == [(2, False, False), (2, False, False), (1, False, False), (0, True, False),
                   (0, True, False), (MISSING, False, False)]


def test_date_of_birth_levels(spark: SparkSession) -> None:
    schema = "date_of_birth_l date, date_of_birth_r date, birth_year_l int, birth_year_r int"
    d = dt.date
    rows = [
        (d(1980, 3, 4), d(1980, 3, 4), 1980, 1980),   # exact
        (d(1980, 3, 4), d(1980, 4, 3), 1980, 1980),   # day/month transposed
        (d(1980, 3, 4), d(1980, 3, 14), 1980, 1980),  # one digit off
        (None, None, 1980, 1980),                     # same birth year (years only)
        (None, d(1981, 1, 1), 1980, 1981),            # year off by one
        (d(1980, 3, 4), d(1990, 7, 9), 1980, 1990),   # else
        (None, None, None, 1990),                     # missing
    ]
    assert _levels(spark, date_of_birth(), schema, rows) == [5, 4, 3, 2, 1, 0, MISSING]


def test_email_and_phone_levels(spark: SparkSession) -> None:
    e_schema = ("email_canonical_l string, email_canonical_r string, given_name_norm_l string, "
                "family_name_norm_l string, given_name_norm_r string, family_name_norm_r string")
    assert _levels(spark, email(), e_schema, [
        ("ann.lee@x.com", "ann.lee@x.com", "ann", "lee", "ann", "lee"),
        ("kitty.k@x.com", "kitty.k@yy.org", "ann", "lee", "ann", "lee"),
        ("ann.lee@x.com", "ann.lea@x.com", "ann", "lee", "ann", "lee"),
        ("ann@x.com", "bob@y.com", "ann", "lee", "bob", "day"), (None, "bob@y.com", *"abcd"),
        # one character apart, but other digits: two accounts, not a typo
        ("jsmith82@x.com", "jsmith87@x.com", "john", "smith", "john", "smith"),
        ("jsmith82@x.com", "jsmiht82@x.com", "john", "smith", "john", "smith"),
        # the local part is the names (and an initial, digits): no evidence at another
        # provider, whichever side holds the names; a domain typo is still the same address
        ("annlee@gmail.com", "annlee@sky.com", "ann", "lee", "ann", "lee"),
        ("a.lee1983@gmail.com", "a.lee1983@web.de", None, None, "ann", "lee"),
        ("marialopez@gmail.com", "marialopez@sky.com", "maria", "lopez garcia", "maria",
         "lopez"),
        ("annlee@yahoo.com", "annlee@yaho.com", "ann", "lee", "ann", "lee"),
        ("annleehome@gmail.com", "annleehome@sky.com", "ann", "lee", "ann", "lee"),
    ]) == [3, 2, 1, 0, MISSING, 0, 1, MISSING, MISSING, MISSING, 2, 2]
    p_schema = ("phone_e164_l string, mobile_e164_l string, phone_e164_r string, "
                "mobile_e164_r string")
    assert _levels(spark, phone(), p_schema, [
        ("+14155550100", None, None, "+14155550100"),   # shared across phone/mobile
        ("+14155550100", None, "+16505550100", None),   # same last 7 digits
        ("+14155550100", None, "+14155559999", None),   # else
        (None, None, "+14155559999", None),             # missing
    ]) == [2, 1, 0, MISSING]


def test_identifier_comparison_from_config_and_its_conflict(spark: SparkSession) -> None:
    ids = (IdentifierComparison(name="national_id", expression="identifiers['ssn']"),)
    records = spark.createDataFrame([
        ("a", {"ssn": "123"}), ("b", {"ssn": " 123 "}), ("c", {"ssn": "999"}), ("d", {}),
    ], "record_id string, identifiers map<string,string>")
    cols = [c for c in record_columns(ids) if c == "record_id" or c.startswith("idc_")]
    recs = records.transform(with_identifier_columns(ids))
    pairs = spark.createDataFrame([("a", "b"), ("a", "c"), ("a", "d")],
                                  "record_id_l string, record_id_r string")
    comps = [c for c in comparisons_for(ids) if c.name == "national_id"]
    vec = pair_frame(recs, pairs, cols).transform(comparison_vectors(comps))
    got = {(r["record_id_l"], r["record_id_r"]): (r["national_id"], r["conflict"]) for r in
           vec.withColumn("conflict", conflict_flag(dob=False, given_name=False,
                                                    loyalty_id=False,
                                                    identifiers=["national_id"])).collect()}
    assert got == {("a", "b"): (2, False), ("a", "c"): (0, True), ("a", "d"): (MISSING, False)}


def test_a_loyalty_card_typo_is_a_near_match_not_a_conflict(spark: SparkSession) -> None:
    pairs = spark.createDataFrame([
        ("401234567890", "401234567890"), ("401234567890", "401234567809"),
        ("401234567890", "401234557890"), ("401234567890", "409999999999"),
        (None, "401234567890"),
    ], "loyalty_id_l string, loyalty_id_r string").select(loyalty_id().level())
    got = [(r[0], r[1]) for r in pairs.withColumn(
        "conflict", conflict_flag(dob=False, given_name=False)).collect()]
    assert got == [(2, False), (1, False), (1, False), (0, True), (MISSING, False)]


def test_identifier_names_may_not_shadow_builtins() -> None:
    with pytest.raises(ValueError, match="email"):
        MatchingSettings(identifiers=(IdentifierComparison(name="email", expression="x"),))


def test_missing_is_not_disagreement(spark: SparkSession) -> None:
    """Every built-in comparison gives MISSING, never 0, when one side has no value."""
    cols = record_columns()
    schema = ", ".join(f"{c} {'array<string>' if c == 'given_name_aliases' else 'date' if c == 'date_of_birth' else 'int' if c == 'birth_year' else 'string'}"  # noqa: E501
                       for c in cols)
    full = {"record_id": "a", "source": "s", "given_name_norm": "ann",
            "given_name_aliases": ["ann"], "middle_name_norm": "j", "family_name_norm": "lee",
            "family_name_phonetic": "L000", "date_of_birth": dt.date(1980, 1, 2),
            "birth_year": 1980, "email_canonical": "a@x.com", "phone_e164": "+14155550100",
            "mobile_e164": None, "street_norm": "1 main st", "postcode": "94107",
            "city_norm": "sf", "loyalty_id": "L1", "gender": "F"}
    empty = {c: None for c in cols} | {"record_id": "b", "source": "s",
                                        "given_name_aliases": []}
    records = spark.createDataFrame([tuple(full[c] for c in cols),
                                     tuple(empty[c] for c in cols)], schema)
    pairs = spark.createDataFrame([("a", "b")], "record_id_l string, record_id_r string")
    comps = comparisons_for()
    row = pair_frame(records, pairs).transform(comparison_vectors(comps)).select(
        *[F.col(c.name) for c in comps]).first()
    assert row is not None and set(row.asDict().values()) == {MISSING}


def test_an_address_differing_years_apart_is_its_own_level(spark: SparkSession) -> None:
    """With moved_years, a different address between records dated (updated_at, else
    created_at) at least that many years apart is level 1 ("moved"), the agreement levels
    one higher; a pair without both dates, or dated closer, is the ordinary 0. The Python
    twin (serve's resolve) gives the same levels."""
    from udp_spark.matching import pairwise

    ts = dt.datetime
    records = spark.createDataFrame([
        ("a", "1 main st", "94107", "sf", ts(2010, 3, 1), ts(2010, 3, 1)),
        ("b", "1 main st", "94107", "sf", None, ts(2020, 3, 1)),     # created_at only
        ("c", "9 oak ave", "10001", "ny", ts(2009, 3, 1), ts(2020, 6, 1)),  # updated_at wins
        ("d", "9 oak ave", "10001", "ny", None, ts(2011, 1, 1)),
        ("e", "9 oak ave", "10001", "ny", None, None),               # no time
        ("f", "9 oak ave", "94110", "sf", ts(2020, 1, 1), ts(2020, 1, 1)),  # same city
    ], "record_id string, street_norm string, postcode string, city_norm string, "
       "created_at timestamp, updated_at timestamp")
    cols = ["record_id", "street_norm", "postcode", "city_norm"]
    pairs = spark.createDataFrame([("a", "b"), ("a", "c"), ("a", "d"), ("a", "e"),
                                   ("a", "f")], "record_id_l string, record_id_r string")
    moved = address(3)
    assert moved.top_level == 6 and moved.level_labels[1] == \
        "different, observed at least 3 years apart" and moved.params == (("moved_years", 3),)
    got = {(r["record_id_l"], r["record_id_r"]): r["address"] for r in
           pair_frame(records, pairs, cols).transform(comparison_vectors([moved])).collect()}
    assert got == {("a", "b"): 6, ("a", "c"): 1, ("a", "d"): 0, ("a", "e"): 0, ("a", "f"): 2}
    old = {(r["record_id_l"], r["record_id_r"]): r["address"] for r in
           pair_frame(records, pairs, cols).transform(comparison_vectors([address()])).collect()}
    assert old == {("a", "b"): 5, ("a", "c"): 0, ("a", "d"): 0, ("a", "e"): 0, ("a", "f"): 1}
    rows = {r["record_id"]: r.asDict() for r in records.collect()}
    twin = pairwise.level_function("address", {"moved_years": 3})
    assert {k: twin(rows[k[0]], rows[k[1]]) for k in got} == got
    assert {k: pairwise.address(rows[k[0]], rows[k[1]]) for k in old} == old


def test_a_model_keeps_the_address_settings_it_was_trained_with() -> None:
    from udp_spark.matching.comparisons import comparison_settings, comparisons_named

    comps = comparisons_for((), address_moved_years=4)
    settings = comparison_settings(comps)
    assert settings == {"address": {"moved_years": 4}}
    rebuilt = {c.name: c for c in comparisons_named([c.name for c in comps], settings)}
    assert rebuilt["address"].level_labels == {c.name: c for c in comps}["address"].level_labels
    # a model trained before the setting existed scores with the levels it was trained with
    assert {c.name: c for c in comparisons_named(["address"])}["address"].top_level == 5
