"""Scoring inputs: term-frequency weights (a common full name proves less than its two names
apart) and the random pairs u comes from."""

from __future__ import annotations

import math

import pytest
from pyspark.sql import DataFrame, SparkSession

from udp_spark.matching.comparisons import FULL_NAME
from udp_spark.matching.fellegi_sunter import FSModel
from udp_spark.matching.scoring import (
    joint_tf_table,
    tf_table,
    tf_tables,
    weight_columns,
)
from udp_spark.matching.training import random_pairs

# Two sources; each row is a different person. Maria Garcia is five people, John Smith three.
RECORDS = [
    *[("a", "maria", "garcia")] * 3, ("a", "john", "smith"), ("a", "john", "smith"),
    ("a", "peter", "smith"), ("a", "anna", "jones"), ("a", "peter", "jones"),
    *[("b", "maria", "garcia")] * 2, ("b", "john", "smith"), ("b", "anna", "smith"),
    ("b", "peter", "jones"), ("b", "tom", "jones"), ("b", "tom", "smith"),
    ("b", None, "jones"),
]


def _model() -> FSModel:
    return FSModel(
        comparisons=["given_name", "family_name"],
        levels={"given_name": [-1, 0, 5], "family_name": [-1, 0, 3]},
        labels={"given_name": {-1: "missing", 0: "else", 5: "exact"},
                "family_name": {-1: "missing", 0: "else", 3: "exact"}},
        m={"given_name": {0: 0.1, 5: 0.9}, "family_name": {0: 0.2, 3: 0.8}},
        u={"given_name": {0: 0.9, 5: 0.1}, "family_name": {0: 0.9, 3: 0.1}},
        prior=0.01,
        tf_columns={"given_name": "given_name_norm", "family_name": "family_name_norm"},
        joint_tf={FULL_NAME: ["given_name", "family_name"]},
        top_levels={"given_name": 5, "family_name": 3},
    )


def test_joint_frequency_counts_other_people_per_source(spark: SparkSession) -> None:
    records = spark.createDataFrame(
        RECORDS, "source string, given_name_norm string, family_name_norm string")
    got = {r["value"]: r["tf"] for r in joint_tf_table(
        records, ("given_name_norm", "family_name_norm")).collect()}
    # 15 records hold both names. maria|garcia: 3 in a, 2 in b -> (3-1) + (2-1) others.
    # john|smith: 2 in a, 1 in b -> 1. Full names held once per source are left out.
    assert got == {"maria|garcia": pytest.approx(3 / 15), "john|smith": pytest.approx(1 / 15)}


def test_frequency_counts_other_people_per_source(spark: SparkSession) -> None:
    records = spark.createDataFrame(
        RECORDS, "source string, given_name_norm string, family_name_norm string")
    given = {r["value"]: r["tf"] for r in tf_table(records, "given_name_norm").collect()}
    family = {r["value"]: r["tf"] for r in tf_table(records, "family_name_norm").collect()}
    # 15 records hold a first name. maria: 3 in a, 2 in b -> (3-1) + (2-1) others; john: 2 in
    # a, 1 in b -> 1; peter 2 + 1 -> 1; tom twice in b -> 1; anna once per source: no one else.
    assert given == {"maria": pytest.approx(3 / 15), "john": pytest.approx(1 / 15),
                     "peter": pytest.approx(1 / 15), "anna": 0.0, "tom": pytest.approx(1 / 15)}
    # 16 records hold a family name: garcia 3 + 2, smith 3 + 3, jones 2 + 3 (one unnamed)
    assert family == {"garcia": pytest.approx(3 / 16), "smith": pytest.approx(4 / 16),
                      "jones": pytest.approx(3 / 16)}


def _name_frequencies(records: DataFrame) -> tuple[dict[str, float], dict[str, float]]:
    """The full-name (joint) and first-name frequency tables as ``value -> tf``."""
    joint = {r["value"]: r["tf"] for r in joint_tf_table(
        records, ("given_name_norm", "family_name_norm")).collect()}
    given = {r["value"]: r["tf"] for r in tf_table(records, "given_name_norm").collect()}
    return joint, given


def test_a_person_s_own_repeated_records_are_not_their_namesakes(spark: SparkSession) -> None:
    """A census holds Ann Lee once a decade: her five records (one birth date, two
    addresses) are one holder of her names, not five. Two John Smiths with other birth
    dates are two people; records with neither birth date nor address each count."""
    import datetime as dt

    d = dt.date
    rows = [(f"c{i}", "census", "ann", "lee", d(1950, 3, 4), None, None) for i in range(5)]
    rows += [
        ("t1", "tax", "ann", "lee", None, "1 main st", "94107"),
        ("t2", "tax", "ann", "lee", None, "1 main st", "94107"),
        ("c6", "census", "john", "smith", d(1960, 1, 1), "9 oak ave", "10001"),
        ("c7", "census", "john", "smith", d(1970, 1, 1), "9 oak ave", "10001"),
        ("t3", "tax", "john", "smith", None, None, None),
        ("t4", "tax", "john", "smith", None, None, None),
    ]
    records = spark.createDataFrame(rows, "record_id string, source string, given_name_norm "
                                    "string, family_name_norm string, date_of_birth date, "
                                    "street_norm string, postcode string")
    joint, given = _name_frequencies(records)
    # holders: ann|lee once in each source; john|smith twice in each -> 6 holders in all
    assert joint == {"john|smith": pytest.approx(2 / 6)}
    assert given == {"ann": 0.0, "john": pytest.approx(2 / 6)}


def test_a_record_without_birth_date_or_address_is_one_of_the_holders_its_source_knows(
        spark: SparkSession) -> None:
    """Benefit claims hold Ann Lee five times with her birth date and once keyed without it:
    the undated claim is most likely hers, not a namesake's (counted as one, it gave a third
    of the people with a claim a phantom namesake). Where the source knows no dated or
    addressed holder, every undated record still counts (nothing says they are one)."""
    import datetime as dt

    d = dt.date
    rows = [(f"b{i}", "claims", "ann", "lee", d(1950, 3, 4), None) for i in range(5)]
    rows += [
        ("b5", "claims", "ann", "lee", None, None),
        ("b6", "claims", "tom", "baker", d(1961, 7, 8), None),
        ("b7", "claims", "tom", "baker", d(1970, 1, 2), None),
        ("b8", "claims", "tom", "baker", None, None),
        ("t1", "tips", "ann", "lee", None, None),
        ("t2", "tips", "ann", "lee", None, None),
    ]
    records = spark.createDataFrame(rows, "record_id string, source string, given_name_norm "
                                    "string, family_name_norm string, date_of_birth date, "
                                    "street_norm string")
    joint, given = _name_frequencies(records)
    # claims: ann|lee 1 holder, tom|baker 2 (the undated claim one of them); tips: ann|lee 2
    # undated records, 2 holders. 1 + 2 + 2 = 5 holders; others: tom|baker 1, ann|lee 1
    assert joint == {"ann|lee": pytest.approx(1 / 5), "tom|baker": pytest.approx(1 / 5)}
    assert given == {"ann": pytest.approx(1 / 5), "tom": pytest.approx(1 / 5)}


def test_a_full_name_is_held_by_the_people_a_source_shows_at_once(spark: SparkSession) -> None:
    """An electoral roll lists Ann Lee at each home she had, years apart: one holder of her
    full name, not three. Two Tom Bakers at two addresses in one canvass are two people,
    and birth dates tell holders apart whenever they were seen. Single names are counted
    per address as before."""
    import datetime as dt

    d, t = dt.date, dt.datetime
    rows = [
        ("r1", "roll", "ann", "lee", None, "1 main st", t(2002, 3, 1)),
        ("r2", "roll", "ann", "lee", None, "1 main st", t(2006, 3, 1)),
        ("r3", "roll", "ann", "lee", None, "7 elm rd", t(2010, 3, 1)),
        ("r4", "roll", "ann", "lee", None, "2 oak ave", t(2018, 3, 1)),
        ("r5", "roll", "tom", "baker", None, "3 high st", t(2010, 3, 1)),
        ("r6", "roll", "tom", "baker", None, "9 mill ln", t(2010, 3, 1)),
        ("r7", "roll", "tom", "baker", None, "9 mill ln", t(2014, 3, 1)),
        ("b1", "claims", "ann", "lee", d(1950, 3, 4), None, t(2001, 1, 1)),
        ("b2", "claims", "ann", "lee", d(1961, 7, 8), None, t(2020, 1, 1)),
        ("b3", "claims", "ann", "lee", d(1950, 3, 4), None, t(2020, 1, 1)),
    ]
    records = spark.createDataFrame(rows, "record_id string, source string, given_name_norm "
                                    "string, family_name_norm string, date_of_birth date, "
                                    "street_norm string, updated_at timestamp")
    joint, given = _name_frequencies(records)
    # roll: ann|lee one holder at a time, tom|baker two in 2010; claims: two birth dates.
    # 1 + 2 + 2 = 5 holders; others: tom|baker 1, ann|lee 0 (roll) + 1 (claims)
    assert joint == {"ann|lee": pytest.approx(1 / 5), "tom|baker": pytest.approx(1 / 5)}
    # per address: ann 3 in the roll + 2 in claims, tom 2 (3 high st, 9 mill ln): 7 holders
    assert given == {"ann": pytest.approx(3 / 7), "tom": pytest.approx(1 / 7)}


def _tf_weight(m: float, freq: float) -> float:
    return math.log2(m / freq)


def test_a_full_name_commoner_than_its_parts_weighs_less(spark: SparkSession) -> None:
    records = spark.createDataFrame(
        RECORDS, "source string, given_name_norm string, family_name_norm string")
    model = _model()
    tf = tf_tables(records, model)
    vectors = spark.createDataFrame([
        ("maria garcia", 5, 3, "maria", "garcia"),
        ("john smith", 5, 3, "john", "smith"),
        ("peter jones", 5, 3, "peter", "jones"),
        ("maria, other family", 5, 0, "maria", "lopez"),
    ], "pair string, given_name int, family_name int, tf_value_given_name string, "
       "tf_value_family_name string")
    got = {r["pair"]: (r["w_given_name"], r["w_family_name"])
           for r in vectors.transform(weight_columns(model, tf)).collect()}
    given = {"maria": 3 / 15, "john": 1 / 15, "peter": 1 / 15}  # test above
    family = {"garcia": 3 / 16, "smith": 4 / 16, "jones": 3 / 16}
    # maria|garcia: other people hold it 3 times in 15, far more than 3/15 * 3/16 says
    penalty = math.log2(given["maria"] * family["garcia"] / (3 / 15))
    assert penalty < -2
    assert got["maria garcia"] == pytest.approx(
        (_tf_weight(0.9, given["maria"]), _tf_weight(0.8, family["garcia"]) + penalty))
    # john|smith: one other john smith, where 1/15 * 4/16 are expected
    assert got["john smith"] == pytest.approx(
        (_tf_weight(0.9, given["john"]),
         _tf_weight(0.8, family["smith"]) + math.log2(given["john"] * family["smith"] / (1 / 15))))
    # peter|jones: no other person holds it in any source: frequencies apart, unchanged
    assert got["peter jones"] == pytest.approx(
        (_tf_weight(0.9, given["peter"]), _tf_weight(0.8, family["jones"])))
    # only agreement on both names is adjusted
    assert got["maria, other family"] == pytest.approx(
        (_tf_weight(0.9, given["maria"]), math.log2(0.2 / 0.9)))


def test_a_value_no_one_else_holds_is_as_rare_as_the_level_when_that_is_rarer(
        spark: SparkSession) -> None:
    """An e-mail address is shared by chance far less often than once in the data."""
    records = spark.createDataFrame(
        RECORDS, "source string, given_name_norm string, family_name_norm string")
    model = _model()
    model.u["given_name"] = {0: 0.999, 5: 0.001}
    tf = tf_tables(records, model)
    vectors = spark.createDataFrame(
        [("anna", 5, -1, "anna"), ("maria", 5, -1, "maria"), ("new", 5, -1, "zbigniew")],
        "pair string, given_name int, family_name int, tf_value_given_name string")
    got = {r["pair"]: r["w_given_name"]
           for r in vectors.transform(weight_columns(model, tf)).collect()}
    assert got["anna"] == pytest.approx(_tf_weight(0.9, 0.001))
    assert got["maria"] == pytest.approx(_tf_weight(0.9, 3 / 15))
    # a name the (frozen) table has never seen: no one else holds it either
    assert got["new"] == pytest.approx(got["anna"])
    # with u above one other holder (1/15), one other holder it is
    model.u["given_name"] = {0: 0.9, 5: 0.1}
    again = vectors.transform(weight_columns(model, tf)).filter("pair = 'anna'").first()
    assert again is not None and again["w_given_name"] == pytest.approx(_tf_weight(0.9, 1 / 15))


def test_a_full_name_rarer_than_its_parts_weighs_no_more(spark: SparkSession) -> None:
    model = _model()
    tf = {"given_name": spark.createDataFrame([("john", 0.5)], "value string, tf double"),
          "family_name": spark.createDataFrame([("smith", 0.5)], "value string, tf double"),
          FULL_NAME: spark.createDataFrame([("john|smith", 0.01)], "value string, tf double")}
    vectors = spark.createDataFrame([(5, 3, "john", "smith")],
                                    "given_name int, family_name int, tf_value_given_name "
                                    "string, tf_value_family_name string")
    row = vectors.transform(weight_columns(model, tf)).first()
    assert row is not None
    assert (row["w_given_name"], row["w_family_name"]) == pytest.approx(
        (_tf_weight(0.9, 0.5), _tf_weight(0.8, 0.5)))


def test_random_pairs_do_not_depend_on_partitioning(spark: SparkSession) -> None:
    """The same records give the same u sample (and model) however Spark lays them out."""
    records = spark.createDataFrame([(f"r{i:04d}",) for i in range(2000)], "record_id string")
    runs = [{tuple(r) for r in random_pairs(records.repartition(n), 2000, 500, seed=7).collect()}
            for n in (1, 5)]
    assert runs[0] == runs[1]
    assert 400 <= len(runs[0]) <= 600
    assert all(a < b for a, b in runs[0])
