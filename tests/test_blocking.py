"""Blocking: keys, rules, banded MinHash, oversized blocks, each pair once."""

from __future__ import annotations

import pytest
from chispa import assert_df_equality
from pyspark.sql import SparkSession
from pyspark.sql import functions as F

from udp_spark.config import BlockingKey, BlockingRule, BlockingSettings, LshSettings
from udp_spark.matching.blocking import (
    BlockingConfigError,
    block_cap,
    block_keys,
    block_methods,
    block_sizes,
    candidate_pairs,
    check_blocking,
    lsh_keys,
    oversized_blocks,
    pairs_of,
    shingles,
)

SCHEMA = ("record_id string, email_canonical string, phone_e164 string, mobile_e164 string, "
          "family_name_norm string, postcode string, given_name_norm string, street_norm string")


def _records(spark: SparkSession):
    return spark.createDataFrame([
        ("a", "ann@x.com", "+1415", None, "lee", "94107", "ann", "1 main st"),
        ("b", "ann@x.com", None, "+1415", "lee", "94107", "anne", "1 main st"),
        ("c", None, None, "+1415", "ray", "10001", "bob", "9 oak ave"),
        ("d", None, None, None, "ray", "10001", "rob", "9 oak ave"),
        ("e", None, None, None, None, None, None, None),
    ], SCHEMA)


def test_keys_rules_and_pairs(spark: SparkSession) -> None:
    settings = BlockingSettings(
        keys=(BlockingKey(name="email", columns=("email_canonical",)),
              BlockingKey(name="phone", columns=("phone_e164", "mobile_e164"))),
        replace_keys=True,
        rules=(BlockingRule(name="fam_pc", columns=("family_name_norm", "postcode")),),
        lsh=())
    keys = _records(spark).transform(block_keys(settings))
    pairs = keys.transform(candidate_pairs(100))
    expected = spark.createDataFrame([
        ("a", "b", ["key:email", "key:phone", "rule:fam_pc"]),
        ("a", "c", ["key:phone"]),
        ("b", "c", ["key:phone"]),
        ("c", "d", ["rule:fam_pc"]),
    ], "record_id_l string, record_id_r string, methods array<string>")
    assert_df_equality(pairs, expected, ignore_row_order=True, ignore_nullable=True)


def test_oversized_blocks_are_reported_not_expanded(spark: SparkSession) -> None:
    rows = [(f"r{i}", "noemail@example.com", None, None, None, None, None, None)
            for i in range(6)] + [("x", "x@y.com", None, None, None, None, None, None),
                                  ("y", "x@y.com", None, None, None, None, None, None)]
    settings = BlockingSettings(keys=(BlockingKey(name="email", columns=("email_canonical",)),),
                                replace_keys=True, rules=(), lsh=())
    keys = spark.createDataFrame(rows, SCHEMA).transform(block_keys(settings))
    pairs = keys.transform(candidate_pairs(max_block_size=5))
    assert [(r[0], r[1]) for r in pairs.collect()] == [("x", "y")]
    big = oversized_blocks(keys, 5).collect()
    # the six nameless records also share their local part's letters (e-mail names)
    assert sorted((r["block"], r["size"], r["method"]) for r in big) == [
        ("key:email:noemail@example.com", 6, "key:email"),
        ("key:email_name:noemail", 6, "key:email_name")]


def test_shingles(spark: SparkSession) -> None:
    df = spark.createDataFrame([("abcd",), ("ab",), (None,)], "t string")
    got = [r[0] for r in df.select(F.sort_array(shingles(F.col("t"), 3))).collect()]
    assert got == [["abc", "bcd"], [], []]


def test_lsh_pairs_similar_text_and_not_dissimilar(spark: SparkSession) -> None:
    settings = BlockingSettings(keys=(), rules=(), lsh=(LshSettings(
        columns=("given_name_norm", "family_name_norm", "street_norm"), bands=16, rows=3),))
    recs = spark.createDataFrame([
        ("a", None, None, None, "johnson", None, "katherine", "12 willow brook lane"),
        ("b", None, None, None, "johnson", None, "katharine", "12 willow brook ln"),
        ("c", None, None, None, "nguyen", None, "bao", "400 industrial pkwy"),
    ], SCHEMA)
    pairs = recs.transform(block_keys(settings)).transform(candidate_pairs(100))
    got = {(r[0], r[1]) for r in pairs.collect()}
    assert ("a", "b") in got
    assert ("a", "c") not in got and ("b", "c") not in got


def test_lsh_band_keys_are_the_minhash_of_each_record_s_shingles(spark: SparkSession) -> None:
    """The band keys are those of the signature's definition, computed record by record:
    band ``b`` is ``b:xxhash64(m[b*rows]..m[(b+1)*rows-1])`` with ``m[s]`` the least
    ``xxhash64(s, shingle)``. Blocking indexes already written hold keys made this way, and
    new records must meet them."""
    index = LshSettings(columns=("given_name_norm", "family_name_norm", "street_norm"),
                        bands=4, rows=3, min_shingles=6)
    recs = spark.createDataFrame([
        ("a", None, None, None, "johnson", None, "katherine", "12 willow brook lane"),
        ("b", None, None, None, "nguyen", None, "bao", "400 industrial pkwy"),
        ("c", None, None, None, "li", None, "al", None),  # too few shingles: no band
    ], SCHEMA)
    got = {(r[0], r[1]) for r in recs.transform(lsh_keys(index)).collect()}

    text = F.concat_ws(" ", *[F.coalesce(F.col(c), F.lit("")) for c in index.columns])
    sh = shingles(F.trim(F.regexp_replace(text, r"\s+", " ")), 3)

    def hashed(seed: int):
        return lambda x: F.xxhash64(F.lit(seed), x)

    mins = [F.array_min(F.transform(sh, hashed(s))) for s in range(12)]
    bands = F.array(*[F.concat(F.lit(f"lsh:name_address:{b}:"),
                               F.xxhash64(*mins[3 * b:3 * b + 3]).cast("string"))
                      for b in range(4)])
    want = {(r[0], r[1]) for r in recs.filter(F.size(sh) >= 6).select(
        "record_id", F.explode(bands)).collect()}
    assert len(want) == 8 and got == want


def test_expressions_block_on_derived_values_and_identifiers(spark: SparkSession) -> None:
    """Rules and keys are SQL expressions: an initial, a mapped identifier."""
    recs = spark.createDataFrame([
        ("a", "katrina", "smith", {"national_id": "X1"}),
        ("b", "k", "smith", {}),
        ("c", "john", "smith", {"national_id": "X1"}),
        ("d", "kim", "jones", {"national_id": None}),
    ], "record_id string, given_name_norm string, family_name_norm string, "
       "identifiers map<string,string>")
    settings = BlockingSettings(
        keys=(BlockingKey(name="national_id", columns=("identifiers['national_id']",)),),
        replace_keys=True,
        rules=(BlockingRule(name="family_initial", columns=(
            "family_name_norm", "substring(given_name_norm, 1, 1)")),), lsh=())
    check_blocking(settings, recs)
    pairs = recs.transform(block_keys(settings)).transform(candidate_pairs(100))
    expected = spark.createDataFrame([
        ("a", "b", ["rule:family_initial"]),
        ("a", "c", ["key:national_id"]),
    ], "record_id_l string, record_id_r string, methods array<string>")
    assert_df_equality(pairs, expected, ignore_row_order=True, ignore_nullable=True)


def test_bad_expression_names_the_rule(spark: SparkSession) -> None:
    recs = spark.createDataFrame([("a", "lee")], "record_id string, family_name_norm string")
    settings = BlockingSettings(keys=(), lsh=(), rules=(
        BlockingRule(name="fam_zip", columns=("family_name_norm", "zip_code")),))
    with pytest.raises(BlockingConfigError, match=r"rules\.fam_zip.*'zip_code'.*family_name_norm"):
        check_blocking(settings, recs)


def test_repeated_lsh_names_fail_config() -> None:
    with pytest.raises(ValueError, match="repeated"):
        BlockingSettings(lsh=(LshSettings(name="n"), LshSettings(name="n")))


def test_an_e_mail_without_a_name_meets_the_names_it_spells(spark: SparkSession) -> None:
    """A sign-up holding only ``thomas.ross82@...`` meets Thomas Ross, and Ross Thomas
    written family name first; not Tom Ross, nor a record with neither e-mail nor name."""
    records = spark.createDataFrame([
        ("s", "thomas.ross82@mail.com", None, None, None, None, None, None),
        ("t", None, None, None, "ross", None, "thomas", None),
        ("u", "tr@x.com", None, None, "thomas", None, "ross", None),
        ("v", None, None, None, "ross", None, "tom", None),
        ("w", None, None, None, None, None, None, None),
    ], SCHEMA)
    settings = BlockingSettings(keys=(), replace_keys=True, rules=(), lsh=())
    pairs = records.transform(block_keys(settings)).transform(candidate_pairs(100))
    expected = spark.createDataFrame([
        ("s", "t", ["key:email_name"]), ("s", "u", ["key:email_name"]),
        ("t", "u", ["key:email_name"]),
    ], "record_id_l string, record_id_r string, methods array<string>")
    assert_df_equality(pairs, expected, ignore_row_order=True, ignore_nullable=True)
    off = settings.model_copy(update={"email_names": False, "rules": (
        BlockingRule(name="family", columns=("family_name_norm",)),)})
    assert {r["block"] for r in records.transform(block_keys(off)).collect()} == {
        "rule:family:ross", "rule:family:thomas"}


def test_each_method_has_its_own_block_size_cap(spark: SparkSession) -> None:
    """Four records share an e-mail, a family name and postcode, and the same LSH text: the
    e-mail key capped at 3 and the LSH index capped at 3 expand nothing, the rule (the
    global cap, 100) pairs all four; an LSH cap never exceeds the global one."""
    rows = [(f"r{i}", "shop@x.com", None, None, "lee", "94107", "ann", "1 main st")
            for i in range(4)]
    settings = BlockingSettings(
        keys=(BlockingKey(name="email", columns=("email_canonical",), max_block_size=3),),
        replace_keys=True, email_names=False,
        rules=(BlockingRule(name="fam_pc", columns=("family_name_norm", "postcode")),),
        lsh=(LshSettings(name="text", columns=("given_name_norm", "street_norm"),
                         max_block_size=3),),
        max_block_size=100)
    assert settings.block_caps() == {"key:email:": 3, "lsh:text:": 3}
    assert settings.cap_of("lsh:text:2:-77") == 3 and settings.cap_of("rule:fam_pc:lee") == 100
    keys = spark.createDataFrame(rows, SCHEMA).transform(block_keys(settings))
    assert {r[0] for r in block_sizes(keys).select("method").collect()} == {
        "key:email", "rule:fam_pc", "lsh:text"}
    pairs = keys.transform(candidate_pairs(block_cap(settings)))
    assert {(r[0], r[1], tuple(r[2])) for r in pairs.collect()} == {
        (f"r{i}", f"r{j}", ("rule:fam_pc",)) for i in range(4) for j in range(i + 1, 4)}
    big = oversized_blocks(keys, block_cap(settings)).select("method").distinct().collect()
    assert sorted(r[0] for r in big) == ["key:email", "lsh:text"]
    # the LSH default (20) is held to a smaller global cap
    small = BlockingSettings(lsh=(LshSettings(),), max_block_size=10)
    assert small.cap_of("lsh:name_address:0:1") == 10
    assert BlockingSettings().cap_of("lsh:name_address:0:1") == 20


def test_pairs_from_the_index_name_their_methods_as_the_blocks_do(spark: SparkSession) -> None:
    """The block stage's pairs (methods as bits) equal the plain form's (``collect_set``),
    from every record or from some; a block of a method the settings do not name fails
    instead of losing its method."""
    settings = BlockingSettings(
        keys=(BlockingKey(name="email", columns=("email_canonical",)),
              BlockingKey(name="phone", columns=("phone_e164", "mobile_e164"))),
        replace_keys=True,
        rules=(BlockingRule(name="fam_pc", columns=("family_name_norm", "postcode")),),
        lsh=(LshSettings(columns=("given_name_norm", "family_name_norm", "street_norm"),
                         min_shingles=3),))
    keys = _records(spark).transform(block_keys(settings))
    index = keys.select("block", "record_id")
    methods = block_methods(settings)
    plain = keys.transform(candidate_pairs(100))
    assert plain.filter(F.size("methods") > 1).count() >= 2  # pairs of several methods
    assert_df_equality(pairs_of(index.select("record_id"), index, 100, methods,
                                all_records=True), plain, ignore_row_order=True,
                       ignore_nullable=True)
    some = spark.createDataFrame([("c",)], "record_id string")
    assert_df_equality(pairs_of(some, index, 100, methods),
                       plain.filter("record_id_l = 'c' or record_id_r = 'c'"),
                       ignore_row_order=True, ignore_nullable=True)
    with pytest.raises(Exception, match="not in the blocking settings: rule:fam_pc"):
        pairs_of(some, index, 100, [m for m in methods if m != "rule:fam_pc"]).collect()

