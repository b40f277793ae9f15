"""The plain-Python twins behind ``POST /v1/resolve`` agree with the Spark code they copy:
standardize functions on a shared set of tricky values, comparison levels on crafted record
pairs, and Fellegi-Sunter weights with term frequencies (joint ones included) on a model
built here. Spark runs the real functions; nothing is mocked."""

from __future__ import annotations

import math
from datetime import date
from typing import Any

import pytest
from pyspark.sql import SparkSession
from pyspark.sql import functions as F

from udp_spark.config import BlockingSettings, IdentifierComparison
from udp_spark.matching import pairwise
from udp_spark.matching.comparisons import (
    BUILTIN_COMPARISONS,
    IDENTIFIER_PREFIX,
    MIN_ID_NEAR_LENGTH,
    RECORD_COLUMNS,
    comparison_vectors,
    comparisons_for,
    pair_frame,
    with_identifier_columns,
)
from udp_spark.matching.fellegi_sunter import MISSING, FSModel
from udp_spark.matching.scoring import TF_FLOOR, score_pairs
from udp_spark.serve import resolve
from udp_spark.standardize import functions as sf
from udp_spark.standardize import pure

TRICKY = [
    None, "", " ", "N/A", "null", "  John \t Smith ", "John  \n Smith", "Mary\u00a0Ann",
    "Dr. Seán O'Brien-Smith Jr.", "JOSÉ DE LA O", "Müller-Łoś", "Ærøskøbing", "Straße",
    "e\u0301mile", "अमित", "Zoë\u200b", "\ufeffAnna", "o\u2019neil", "D'Angelo", "Mr",
    "Mr Smith", "Ludwig van Beethoven", "李小龙", "ΣΊΣΥΦΟΣ", "İstanbul", "x\u2028y",
    "x\x1cy", "Bob", "liz", "maria dolores", "Jean-Luc", "12 Main Street",
    "Hauptstraße 5", "C/ Mayor, 3", "Avenida de Mayo 1234 #5", "apt #4 12 elm st.",
    "Rue de l'Église", "Kurfürstendamm 21", "sw1a 1aa", "K1A-0B6", "St. Louis", "München",
    "ab-12.34 5", "loy\u2013123 456", "U.S.A.", "United Kingdom", "the gambia",
    "Deutschland", "España", "male", "Mrs.", "weiblich", "non-binary", "u",
    "John.Doe+news@GoogleMail.com", " A.B+x@Corp.COM ", "john@", "a@b", "john..doe@x.com",
    "j.doe+x@mail.co.uk", "@x.com", "a@b@c.com", "+tag@x.com", "noemail@example.com",
    "ÉMILE@exämple.com", "o'brien@x.ie", "a b@c.com",
    # Soundex corners: Y separates equal codes, H and W do not; a first letter's own code
    "Sykes", "Tyt", "Ashcraft", "Pfister Tymczak", "Washington", "Lloyd",
]

TEXT_FUNCTIONS = {
    "clean_text": (sf.clean_text, pure.clean_text),
    "fold_accents": (sf.fold_accents, pure.fold_accents),
    "normalize_name": (sf.normalize_name, pure.normalize_name),
    "normalize_email": (sf.normalize_email, pure.normalize_email),
    "email_is_valid": (sf.email_is_valid, pure.email_is_valid),
    "canonical_email": (sf.canonical_email, pure.canonical_email),
    "normalize_street": (sf.normalize_street, pure.normalize_street),
    "normalize_city": (sf.normalize_city, pure.normalize_city),
    "normalize_postcode": (sf.normalize_postcode, pure.normalize_postcode),
    "normalize_country": (lambda c: sf.normalize_country(c, None), pure.normalize_country),
    "normalize_gender": (sf.normalize_gender, pure.normalize_gender),
    "normalize_id": (sf.normalize_id, pure.normalize_id),
    # these two read normalize_name's output in standardize
    "name_phonetic": (lambda c: sf.name_phonetic(sf.normalize_name(c)),
                      lambda v: pure.name_phonetic(pure.normalize_name(v))),
    "nickname_aliases": (lambda c: sf.nickname_aliases(sf.normalize_name(c)),
                         lambda v: pure.nickname_aliases(pure.normalize_name(v))),
}


def test_constants_repeated_without_spark_are_the_same() -> None:
    assert resolve.RECORD_COLUMNS == RECORD_COLUMNS
    assert set(pairwise.BUILTIN) == BUILTIN_COMPARISONS
    assert (pairwise.TF_FLOOR, pairwise.IDENTIFIER_PREFIX, pairwise.MIN_ID_NEAR_LENGTH) == (
        TF_FLOOR, IDENTIFIER_PREFIX, MIN_ID_NEAR_LENGTH)


def test_standardize_functions_agree_with_spark(spark: SparkSession) -> None:
    df = spark.createDataFrame([(i, v) for i, v in enumerate(TRICKY)], "i int, v string")
    rows = df.select("i", *[fn(F.col("v")).alias(name)
                            for name, (fn, _) in TEXT_FUNCTIONS.items()]).collect()
    assert len(rows) == len(TRICKY)
    differences = []
    for row in rows:
        value = TRICKY[row["i"]]
        for name, (_, twin) in TEXT_FUNCTIONS.items():
            mine = twin(value)
            if mine != row[name]:
                differences.append((name, value, row[name], mine))
    assert not differences, differences
    # not a vacuous comparison: the values exercise the functions
    by_value = {TRICKY[r["i"]]: r for r in rows}
    assert by_value["Dr. Seán O'Brien-Smith Jr."]["normalize_name"] == "sean obrien smith"
    assert by_value["अमित"]["fold_accents"] == "अमित"
    assert by_value["John.Doe+news@GoogleMail.com"]["canonical_email"] == "johndoe@gmail.com"


def test_phone_regions_agree_with_spark(spark: SparkSession) -> None:
    from udp_spark.standardize.phones import normalize_phone

    cases = [("(202) 555-0143", "US"), ("020 7946 0958", "GB"), ("020 7946 0958", "UK"),
             ("0049 151 23456789", "US"), ("0151 23456789", "DE"), ("555-0143", None),
             ("+44 20 7946 0958", "xx"), ("not a phone", "US"), ("   ", "US")]
    df = spark.createDataFrame(cases, "raw string, country string")
    got = [(r["p"]["e164"], r["p"]["valid"]) if r["p"] is not None else (None, None)
           for r in df.select(normalize_phone(F.col("raw"), F.col("country")).alias("p"))
           .collect()]
    mine = [pure.parse_phone(raw, pure.phone_region(country, "US")) for raw, country in cases]
    assert [g[0] for g in got] == [m[0] for m in mine]
    assert [bool(g[1]) for g in got] == [bool(m[1]) for m in mine]
    assert got[1][0] == got[2][0] == "+442079460958"


# --- comparison levels -------------------------------------------------------------------

PEOPLE: list[dict[str, Any]] = [
    {"given_name": "Robert", "family_name": "Smith", "email": "bob.smith@gmail.com",
     "phone": "+12025550143", "street": "12 Main Street", "city": "Springfield",
     "postcode": "62704", "date_of_birth": date(1980, 3, 4), "gender": "m",
     "loyalty_id": "40161234", "identifiers": {"national_id": "396-91-9886"}},
    {"given_name": "Bob", "family_name": "Smith", "email": "b.o.b.smith+x@googlemail.com",
     "mobile": "+12025550143", "street": "12 main st", "city": "springfield",
     "postcode": "62740", "date_of_birth": date(1980, 4, 3), "gender": "male",
     "loyalty_id": "40161243", "identifiers": {"national_id": "396919868"}},
    {"given_name": "Smith", "family_name": "Robert", "email": "robertsmith@yahoo.com",
     "phone": "+13125550143", "city": "Springfield", "postcode": "627",
     "birth_year": 1981},
    {"given_name": "R", "middle_name": "James", "family_name": "Smyth",
     "email": "smithr@yaho.com", "street": "12 Main St.", "postcode": "62704",
     "date_of_birth": date(1980, 3, 14), "gender": "F", "loyalty_id": "4016"},
    {"given_name": "Roberta", "middle_name": "Jane", "family_name": "S",
     "email": "bob.smith@gmail.co", "street": "14 Main Street", "city": "Shelbyville",
     "postcode": "62705", "birth_year": 1979},
    {"given_name": "María Dolores", "family_name": "García López", "email": "lola@x.es",
     "street": "C/ Mayor, 3", "city": "Madrid", "date_of_birth": date(1975, 12, 1),
     "identifiers": {"national_id": "X1234567"}},
    {"given_name": "Lola", "middle_name": "J", "family_name": "Garcia Lopez",
     "email": "lola@x.es", "street": "Calle Mayor 3", "city": "Madrid",
     "date_of_birth": date(1975, 1, 12)},
    {"given_name": "Maria Pilar", "middle_name": "Jo", "family_name": "Garcia",
     "email": "mariagarcia@gmail.com", "postcode": "28013", "city": "madrid"},
    {"given_name": "Maria", "family_name": "Garcia", "email": "mariagarcia@hotmail.com",
     "postcode": "28013"},
    {"email": "only@mail.com"},
    # given and family name swapped, one of them a typo, a nickname or a compound's part
    {"given_name": "Castillo", "family_name": "Jstin"},
    {"given_name": "Justin", "family_name": "Castillo"},
    {"given_name": "Watson", "family_name": "Thomas"},
    {"given_name": "Tommy", "family_name": "Watson"},
    {"given_name": "Garcia", "family_name": "Maria"},
    # an e-mail and no name: its local part spells Maria Garcia (and Garcia Maria)
    {"email": "maria.garcia77@web.de"},
]


def _records() -> list[dict[str, Any]]:
    ident = [IdentifierComparison(name="national_id",
                                  expression="identifiers['national_id']")]
    add = resolve.identifier_columns(tuple(ident))
    out = []
    for i, raw in enumerate(PEOPLE):
        fields = pure.party_fields(raw, default_country="US", today=date(2026, 12, 4))
        assert not fields.problems, (raw, fields.problems)
        out.append(add({**fields.values, "record_id": f"r{i:02d}", "source": "test"}))
    return out


SCHEMA = ("record_id string, source string, given_name_norm string, "
          "given_name_aliases array<string>, middle_name_norm string, family_name_norm string, "
          "family_name_phonetic string, date_of_birth date, birth_year int, "
          "email_canonical string, phone_e164 string, mobile_e164 string, street_norm string, "
          "postcode string, city_norm string, loyalty_id string, gender string, "
          "identifiers map<string,string>")


def _frames(spark: SparkSession, records: list[dict[str, Any]]) -> tuple[Any, Any]:
    ident = (IdentifierComparison(name="national_id",
                                  expression="identifiers['national_id']"),)
    cols = [c.split(" ")[0] for c in SCHEMA.split(", ")]
    df = spark.createDataFrame([tuple(r.get(c) for c in cols) for r in records], SCHEMA)
    df = df.transform(with_identifier_columns(ident))
    ids = [r["record_id"] for r in records]
    pairs = spark.createDataFrame([(a, b) for a in ids for b in ids],
                                  "record_id_l string, record_id_r string")
    return df, pairs


def test_comparison_levels_agree_with_spark(spark: SparkSession) -> None:
    records = _records()
    ident = (IdentifierComparison(name="national_id",
                                  expression="identifiers['national_id']"),)
    comps = comparisons_for(ident)
    df, pairs = _frames(spark, records)
    spark_idc = {r["record_id"]: r["idc_national_id"]
                 for r in df.select("record_id", "idc_national_id").collect()}
    assert spark_idc == {r["record_id"]: r["idc_national_id"] for r in records}
    got = pair_frame(df, pairs).transform(comparison_vectors(comps)).collect()
    by_id = {r["record_id"]: r for r in records}
    differences = []
    seen_levels: dict[str, set[int]] = {}
    for row in got:
        left, right = by_id[row["record_id_l"]], by_id[row["record_id_r"]]
        for c in comps:
            mine = pairwise.level_function(c.name)(left, right)
            seen_levels.setdefault(c.name, set()).add(row[c.name])
            if mine != row[c.name]:
                differences.append((c.name, row["record_id_l"], row["record_id_r"],
                                    row[c.name], mine))
    assert len(got) == len(records) ** 2
    assert not differences, differences
    # the pairs reach more than the top, 0 and missing levels of most comparisons
    assert sum(len(v - {MISSING, 0}) >= 2 for v in seen_levels.values()) >= 6, seen_levels


def _model(names: list[str]) -> FSModel:
    tops = {"given_name": 5, "middle_name": 2, "family_name": 3, "date_of_birth": 5,
            "email": 3, "phone": 2, "address": 5, "loyalty_id": 2, "gender": 1,
            "national_id": 2, "email_name": 1}
    levels = {c: [MISSING, *range(tops[c] + 1)] for c in names}

    def dist(c: str, power: float) -> dict[int, float]:
        raw = {lv: (lv + 1.0) ** power for lv in range(tops[c] + 1)}
        total = sum(raw.values())
        return {lv: v / total for lv, v in raw.items()}

    return FSModel(
        comparisons=names, levels=levels,
        labels={c: {lv: f"level {lv}" for lv in levels[c]} for c in names},
        m={c: dist(c, 2.0) for c in names}, u={c: dist(c, -2.5) for c in names},
        prior=2e-4,
        tf_columns={"given_name": "given_name_norm", "family_name": "family_name_norm",
                    "email": "email_canonical", "national_id": "idc_national_id"},
        joint_tf={"full_name": ["given_name", "family_name"]}, top_levels=tops,
        not_estimated=["gender"], shared_tf={"email_name": "full_name"})


def test_weights_with_term_frequencies_agree_with_spark(spark: SparkSession) -> None:
    records = _records()
    names = [*(c for c in pairwise.BUILTIN), "national_id"]
    model = _model(names)
    tf = {"given_name": {"robert": 0.02, "lola": 0.0, "maria": 3e-7},
          "family_name": {"smith": 0.05, "garcia lopez": 0.001},
          "email": {"lola@x.es": 1e-4},
          "national_id": {},
          "full_name": {"robert|smith": 0.004, "lola|garcia lopez": 0.5, "maria|garcia": 0.01}}
    tf_frames = {c: spark.createDataFrame(list(v.items()), "value string, tf double")
                 for c, v in tf.items()}
    df, pairs = _frames(spark, records)
    rows = score_pairs(df, pairs, model, tf=tf_frames).collect()
    scorer = pairwise.PairScorer(model, tf)
    by_id = {r["record_id"]: r for r in records}
    checked = 0
    for row in rows:
        mine = scorer.score(by_id[row["record_id_l"]], by_id[row["record_id_r"]])
        for cs in mine.comparisons:
            assert cs.level == row[cs.comparison]
            assert cs.weight == pytest.approx(row[f"w_{cs.comparison}"], abs=1e-9), (
                cs, row["record_id_l"], row["record_id_r"])
        assert mine.match_weight == pytest.approx(row["match_weight"], abs=1e-9)
        assert mine.match_probability == pytest.approx(row["match_probability"], abs=1e-12)
        checked += 1
    assert checked == len(records) ** 2
    # the joint frequency lowered an exact full name's family weight: a real adjustment
    self_pair = scorer.score(by_id["r00"], by_id["r00"])
    plain = pairwise.PairScorer(model, {**tf, "full_name": {}}).score(by_id["r00"],
                                                                      by_id["r00"])
    fam = {c.comparison: c.weight for c in self_pair.comparisons}["family_name"]
    assert fam < {c.comparison: c.weight for c in plain.comparisons}["family_name"]
    # the e-mail spelling Maria Garcia is weighed by how common her full name is
    mail = next(r for r in records if r.get("email_canonical") == "maria.garcia77@web.de")
    maria = next(r for r in records if (r.get("given_name_norm"), r.get("family_name_norm"))
                 == ("maria", "garcia"))
    spelled = {c.comparison: c for c in scorer.score(maria, mail).comparisons}["email_name"]
    assert spelled.level == 1
    assert spelled.weight == pytest.approx(math.log2(model.m["email_name"][1] / 0.01))


def test_block_keys_evaluate_default_settings_expressions() -> None:
    keys = resolve.BlockKeys.from_settings(BlockingSettings())
    assert not keys.skipped  # every default key and rule runs without Spark
    rec = {"email_canonical": "a@b.co", "phone_e164": "+1202", "mobile_e164": "+1202",
           "loyalty_id": None, "given_name_norm": "anna", "family_name_norm": "smith",
           "family_name_phonetic": "S530", "postcode": "  ", "date_of_birth": date(1990, 1, 2)}
    assert keys.blocks(rec) == [
        "key:email:a@b.co", "key:phone:+1202", "key:email_name:annasmith",
        "key:email_name:smithanna", "rule:given_family:anna|smith",
        "rule:family_dob:smith|1990-01-02", "rule:given_dob:anna|1990-01-02",
        "rule:given_family_phonetic:anna|S530", "rule:family_initial:smith|a"]
    assert resolve.key_function("lower(email_canonical)") is None
    fn = resolve.key_function("substring(given_name_norm, -3, 2)")
    assert fn is not None and fn[0]({"given_name_norm": "abcdef"}) == "de"
