"""Column helpers of udp_spark.standardize: one small inline frame per function.

Each test builds (input, expected) rows with an explicit schema, applies the function once
and compares with chispa, so every test is one or two tiny Spark jobs.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, date, datetime
from typing import Any

import pandas as pd
import pytest
from chispa import assert_column_equality, assert_df_equality
from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import functions as F

from udp_spark.standardize import functions as sf
from udp_spark.standardize import reference as ref
from udp_spark.standardize.phones import _normalize_batch, normalize_phone, parse_phone

NAME_PARTS = "struct<given:string,middle:string,family:string>"


def check(
    spark: SparkSession,
    fn: Callable[[Column], Column],
    cases: list[tuple[Any, Any]],
    in_type: str = "string",
    out_type: str = "string",
) -> None:
    """Assert ``fn(value) == expected`` on every (value, expected) row."""
    df = spark.createDataFrame(cases, f"value {in_type}, expected {out_type}")
    assert_column_equality(df.withColumn("actual", fn(F.col("value"))), "actual", "expected")


def check_many(
    spark: SparkSession,
    fns: dict[str, Callable[[Column], Column]],
    cases: list[tuple[Any, ...]],
    schema: str,
) -> None:
    """Assert several functions of ``value`` at once; ``schema`` names ``value`` then ``fns``."""
    expected: DataFrame = spark.createDataFrame(cases, schema)
    actual = expected.select("value", *[fn(F.col("value")).alias(n) for n, fn in fns.items()])
    assert_df_equality(actual, expected, ignore_row_order=True, ignore_nullable=True)


# --------------------------------------------------------------------------------------------
# Text
# --------------------------------------------------------------------------------------------


def test_clean_text(spark: SparkSession) -> None:
    check(spark, sf.clean_text, [
        ("  John \t Smith ", "John Smith"),
        ("x\u00a0\u2003y\n z", "x y z"),
        ("a\u200bb\u0001c\ufeff", "abc"),  # zero-width, control, BOM dropped
        ("O'Brien", "O'Brien"),
        ("", None),
        ("   ", None),
        ("N/A", None),
        (" null ", None),
        ("Unknown", None),
        ("--", None),
        ("?", None),
        ("NaN", None),
        ("none", None),
        ("n/a/b", "n/a/b"),
        (None, None),
    ])


def test_fold_accents(spark: SparkSession) -> None:
    check(spark, sf.fold_accents, [
        ("Émile Müller-Łoś", "emile muller-los"),
        ("Straße", "strasse"),
        ("Æsop Œuvre Þór", "aesop oeuvre thor"),
        ("Ñúñez Çelik Ørsted Dvořák", "nunez celik orsted dvorak"),
        ("Ştefan Țiriac", "stefan tiriac"),
        ("e\u0301", "e"),  # decomposed accent
        ("İstanbul", "istanbul"),
        ("日本", "日本"),  # other scripts pass through
        ("", ""),
        (None, None),
    ])


# --------------------------------------------------------------------------------------------
# Person names
# --------------------------------------------------------------------------------------------


def test_normalize_name(spark: SparkSession) -> None:
    check(spark, sf.normalize_name, [
        ("Dr. Seán O'Brien-Smith Jr.", "sean obrien smith"),
        ("MR JOHN SMITH III", "john smith"),
        ("José  Ñúñez", "jose nunez"),
        ("Anne-Marie d\u2019Arc", "anne marie darc"),
        ("Zoë", "zoe"),
        ("Mrs.", None),
        ("  ", None),
        ("n/a", None),
        (None, None),
    ])


def test_display_name(spark: SparkSession) -> None:
    check(spark, sf.display_name, [
        ("JOHN SMITH", "John Smith"),
        ("  john   smith ", "John Smith"),
        ("o'brien", "O'Brien"),
        ("jean-luc picard", "Jean-Luc Picard"),
        ("ÉMILE ZOLA", "Émile Zola"),
        ("McDonald", "McDonald"),  # mixed case kept as typed
        ("JOHN SMITH III", "John Smith III"),
        ("N/A", None),
        (None, None),
    ])


def test_split_full_name(spark: SparkSession) -> None:
    check(spark, sf.split_full_name, [
        ("Smith, John A", ("John", "A", "Smith")),
        ("john a. smith", ("john", "a.", "smith")),
        ("Madonna", ("Madonna", None, None)),
        ("Mr Smith", (None, None, "Smith")),
        ("Dr. John Smith Jr.", ("John", None, "Smith")),
        ("John Smith, Jr.", ("John", None, "Smith")),
        ("Smith, John, Jr.", ("John", None, "Smith")),
        ("SMITH/JOHN", ("JOHN", None, "SMITH")),
        ("Ludwig van Beethoven", ("Ludwig", None, "van Beethoven")),
        ("Maria de la Cruz", ("Maria", None, "de la Cruz")),
        ("Anna Maria Rossi", ("Anna", "Maria", "Rossi")),
        ("José Ñúñez", ("José", None, "Ñúñez")),
        ("N/A", None),
        (None, None),
    ], out_type=NAME_PARTS)


def test_name_phonetic(spark: SparkSession) -> None:
    check(spark, sf.name_phonetic, [
        ("obrien", "O165"),
        ("robert", "R163"),
        ("rupert", "R163"),
        ("müller", "M460"),
        ("mary ann", "M650"),
        ("日本", None),
        ("", None),
        (None, None),
    ])


def test_nickname_aliases(spark: SparkSession) -> None:
    check(spark, sf.nickname_aliases, [
        ("bob", ["bob", "robert"]),
        ("liz", ["elizabeth", "liz"]),
        ("robert", ["robert"]),
        ("Bob ", ["bob", "robert"]),
        ("jim", ["james", "jim"]),
        ("zzyzx", ["zzyzx"]),
        # European short forms the nicknames package lacks
        ("basti", ["basti", "sebastian"]),
        ("lola", ["delores", "dolores", "lola"]),
        # classic English forms the package lacks ('jack' is John's)
        ("jack", ["jack", "jackson", "jacqueline", "john"]),
        ("kitty", ["catherine", "katherine", "kitty"]),
        # a compound name stands for its parts too
        # (the nicknames package lists 'maria' under 'mariah' and 'marietta', and 'peter'
        # under 'patrick')
        ("maria dolores", ["dolores", "maria", "maria dolores", "mariah", "marietta"]),
        ("hans peter", ["hans", "hans peter", "johannes", "patrick", "peter"]),
        ("chema", ["chema", "jose maria"]),
        ("", None),
        (None, None),
    ], out_type="array<string>")


def test_nickname_table_is_sorted_and_includes_the_name() -> None:
    table = ref.nickname_table()
    assert 500 < len(table) < 3000
    assert table["bob"] == ("bob", "robert")
    assert "robert" not in table and "elizabeth" not in table
    bad = {k: v for k, v in table.items() if k not in v or list(v) != sorted(set(v))}
    assert bad == {}


# --------------------------------------------------------------------------------------------
# E-mail
# --------------------------------------------------------------------------------------------


def test_email_functions(spark: SparkSession) -> None:
    check_many(
        spark,
        {"norm": sf.normalize_email, "valid": sf.email_is_valid, "key": sf.canonical_email},
        [
            (" John.Doe+news@GoogleMail.com ", "john.doe+news@googlemail.com", True,
             "johndoe@gmail.com"),
            ("j.o.h.n@gmail.com", "j.o.h.n@gmail.com", True, "john@gmail.com"),
            ("a.b+x@corp.com", "a.b+x@corp.com", True, "a.b@corp.com"),
            ("j.doe@mail.co.uk", "j.doe@mail.co.uk", True, "j.doe@mail.co.uk"),
            ("john@", "john@", False, None),
            ("a@b", "a@b", False, "a@b"),
            ("john..doe@x.com", "john..doe@x.com", False, "john..doe@x.com"),
            (".john@x.com", ".john@x.com", False, ".john@x.com"),
            ("john.@x.com", "john.@x.com", False, "john.@x.com"),
            ("john@x.c", "john@x.c", False, "john@x.c"),
            ("john doe@x.com", "john doe@x.com", False, None),
            ("a@b@c.com", "a@b@c.com", False, None),
            ("", None, None, None),
            (None, None, None, None),
        ],
        "value string, norm string, valid boolean, key string",
    )


# --------------------------------------------------------------------------------------------
# Addresses
# --------------------------------------------------------------------------------------------


def test_normalize_street(spark: SparkSession) -> None:
    check(spark, sf.normalize_street, [
        ("12 Main Street", "12 main st"),
        ("12 MAIN ST.", "12 main st"),
        ("5th Avenue", "5th ave"),
        ("Sunset Blvd.", "sunset blvd"),
        ("Mulholland Drive", "mulholland dr"),
        ("St. Mary's Rd", "st marys rd"),
        ("Apt #4, 5 Elm Lane", "apt # 4 5 elm ln"),
        ("Hauptstraße 5", "haupt str 5"),
        ("Hauptstr. 5", "haupt str 5"),
        ("Haupt Straße 5", "haupt str 5"),
        ("Marienplatz 1", "marien pl 1"),
        ("Lindenweg 3", "lindenweg 3"),
        ("42 rue de la Paix", "42 rue de la paix"),
        ("C/ Mayor, 3", "calle mayor 3"),
        ("Avenida de Mayo 1", "avda de mayo 1"),
        ("Cl. Santiago, 33, 7º B", "calle santiago 33 7º b"),
        ("Pza. Mayor 1", "pl mayor 1"),
        ("Plaza Mayor 1", "pl mayor 1"),
        ("19 R. de l'Église", "19 rue de leglise"),
        ("4 ch. des Vignes", "4 ch des vignes"),
        ("Strand", "strand"),  # whole words only
        ("n/a", None),
        (None, None),
    ])


def test_normalize_city_and_postcode(spark: SparkSession) -> None:
    check_many(
        spark,
        {"city": sf.normalize_city, "postcode": sf.normalize_postcode},
        [
            ("St. Louis", "st louis", "STLOUIS"),
            ("München", "munchen", "MÜNCHEN"),
            ("  NEW   york ", "new york", "NEWYORK"),
            ("sw1a 1aa", "sw1a 1aa", "SW1A1AA"),
            ("75008", "75008", "75008"),
            ("D-10115", "d 10115", "D10115"),
            ("n/a", None, None),
            ("", None, None),
            (None, None, None),
        ],
        "value string, city string, postcode string",
    )


def test_us_zip_codes_get_their_leading_zeros_back(spark: SparkSession) -> None:
    """A spreadsheet reads '02131' as the number 2131; a record of a country with five-digit
    codes gets the zeros back (a four-digit country's code stays as written), the old
    European country prefix goes, and the API's twin agrees."""
    from udp_spark.standardize import pure

    rows = [("2131", "US", "02131"), ("501", "US", "00501"), ("02131", "US", "02131"),
            ("4246", "DE", "04246"), ("1000", "FR", "01000"), ("501", "DE", "501"),
            ("2131", "AT", "2131"), ("2131", "CH", "2131"), ("2131", None, "2131"),
            ("D-22752", "DE", "22752"), ("F-75001", "FR", "75001"), ("D-22752", "FR", "D22752"),
            ("12", "US", "12"), ("2131-0001", "US", "21310001"),
            ("sw1a 1aa", "GB", "SW1A1AA"), (None, "US", None)]
    df = spark.createDataFrame(rows, "value string, country string, want string")
    got = df.select("want", sf.normalize_postcode(F.col("value"), F.col("country")).alias(
        "got")).collect()
    assert [r["got"] for r in got] == [r[2] for r in rows]
    assert [pure.normalize_postcode(v, c) for v, c, _ in rows] == [r[2] for r in rows]


def test_normalize_country(spark: SparkSession) -> None:
    check(spark, sf.normalize_country, [
        ("US", "US"), ("usa", "US"), ("U.S.A.", "US"), ("United States", "US"),
        ("United States of America", "US"), ("America", "US"),
        ("UK", "GB"), ("GB", "GB"), ("Great Britain", "GB"), ("United Kingdom", "GB"),
        ("England", "GB"),
        ("Deutschland", "DE"), ("Germany", "DE"), ("DE", "DE"), ("DEU", "DE"),
        ("Allemagne", "DE"),
        ("France", "FR"), ("FR", "FR"), ("Spain", "ES"), ("España", "ES"), ("ES", "ES"),
        ("Italia", "IT"), ("The Netherlands", "NL"), ("Côte d\u2019Ivoire", "CI"),
        ("Schweiz", "CH"), ("österreich", "AT"),
        ("Narnia", None), ("XX", None), ("NA", None),
        ("", None), ("n/a", None), (None, None),
    ])


def test_normalize_country_default(spark: SparkSession) -> None:
    df = spark.createDataFrame(
        [("fr", "FR"), (None, "DE"), ("n/a", "DE"), ("Narnia", None)],
        "value string, expected string",
    )
    out = df.select(
        "expected",
        sf.normalize_country(F.col("value"), "Germany").alias("with_str"),
        sf.normalize_country(F.col("value"), F.lit("DE")).alias("with_col"),
    )
    assert_df_equality(
        out.select("with_str", "with_col"),
        out.select(F.col("expected").alias("with_str"), F.col("expected").alias("with_col")),
        ignore_nullable=True,
    )
    with pytest.raises(ValueError, match="not a known country"):
        sf.normalize_country(F.col("value"), "Narnia")


def test_country_table_round_trips_through_spark(spark: SparkSession) -> None:
    """Every code, name and alias of the reference table maps to its code in Spark too,
    i.e. the Spark lookup key and reference.lookup_key agree."""
    names = [(a2, a2) for a2, _, _ in ref.COUNTRIES]
    names += [(a3, a2) for a2, a3, _ in ref.COUNTRIES]
    names += [(name, a2) for a2, _, names_ in ref.COUNTRIES for name in names_]
    names += list(ref.COUNTRY_ALIASES.items())
    # 'NA' (Namibia) is also the 'n/a' placeholder: read as missing, like 'n/a'.
    names = [(name, code) for name, code in names if name != "NA"]
    check(spark, sf.normalize_country, names)


# --------------------------------------------------------------------------------------------
# Dates
# --------------------------------------------------------------------------------------------


def test_parse_date(spark: SparkSession) -> None:
    formats = ["dd/MM/yyyy", "yyyyMMdd", "iso8601", "epoch_millis"]
    check(spark, lambda c: sf.parse_date(c, formats), [
        ("31/01/1980", date(1980, 1, 31)),
        ("29/02/1980", date(1980, 2, 29)),
        ("31/02/1980", None),  # impossible date
        ("19800131", date(1980, 1, 31)),
        ("1980-01-31", date(1980, 1, 31)),
        ("2020-01-02T23:30:00Z", date(2020, 1, 2)),
        ("1577836800000", date(2020, 1, 1)),
        ("-2678400000", date(1969, 12, 1)),
        ("1980", None),  # neither a partial ISO date nor a short number is a date
        ("86400000", None),
        ("99999999999999999999", None),  # out of range, no overflow error
        ("garbage", None),
        ("", None),
        (None, None),
    ], out_type="date")


def test_parse_timestamp(spark: SparkSession) -> None:
    formats = ["yyyy-MM-dd HH:mm:ss", "iso8601", "epoch_seconds"]
    check(spark, lambda c: sf.parse_timestamp(c, formats), [
        ("2020-01-02 03:04:05", datetime(2020, 1, 2, 3, 4, 5, tzinfo=UTC)),
        ("2020-01-02T03:04:05+02:00", datetime(2020, 1, 2, 1, 4, 5, tzinfo=UTC)),
        ("2020-01-02", datetime(2020, 1, 2, tzinfo=UTC)),
        ("1577836800", datetime(2020, 1, 1, tzinfo=UTC)),
        ("1577836800.5", datetime(2020, 1, 1, 0, 0, 0, 500000, tzinfo=UTC)),
        ("2020-02-30 00:00:00", None),
        ("later", None),
        (None, None),
    ], out_type="timestamp")


def test_parse_date_needs_formats() -> None:
    with pytest.raises(ValueError, match="non-empty list"):
        sf.parse_date(F.col("d"), [])
    with pytest.raises(ValueError, match="non-empty list"):
        sf.parse_timestamp(F.col("d"), "yyyy-MM-dd")


# --------------------------------------------------------------------------------------------
# Other fields
# --------------------------------------------------------------------------------------------


def test_gender_and_id(spark: SparkSession) -> None:
    check_many(
        spark,
        {"gender": sf.normalize_gender, "id": sf.normalize_id},
        [
            ("M", "M", "M"),
            ("male", "M", "MALE"),
            ("Mr.", "M", "MR"),
            ("f", "F", "F"),
            ("Woman", "F", "WOMAN"),
            ("Mrs", "F", "MRS"),
            ("weiblich", "F", "WEIBLICH"),
            ("x", "X", "X"),
            ("Non-Binary", "X", "NONBINARY"),
            ("diverse", "X", "DIVERSE"),
            ("u", None, "U"),
            ("ab-12.34 5", None, "AB12345"),
            ("unknown", None, None),
            (" - ", None, None),
            (None, None, None),
        ],
        "value string, gender string, id string",
    )


# --------------------------------------------------------------------------------------------
# Phones
# --------------------------------------------------------------------------------------------


def test_normalize_phone(spark: SparkSession) -> None:
    rows = [
        ("+1 (415) 555-2671", None, ("+14155552671", True, "fixed_line_or_mobile")),
        ("(415) 555-2671", "US", ("+14155552671", True, "fixed_line_or_mobile")),
        ("415.555.2671 x123", "us", ("+14155552671", True, "fixed_line_or_mobile")),
        ("1-800-356-9377", "US", ("+18003569377", True, "other")),  # toll free
        ("020 7946 0958", "GB", ("+442079460958", True, "fixed_line")),
        ("07911 123456", "UK", ("+447911123456", True, "mobile")),
        ("+44 7911 123456", "FR", ("+447911123456", True, "mobile")),
        ("0049 151 23456789", "US", ("+4915123456789", True, "mobile")),
        ("0151/23456789", "DE", ("+4915123456789", True, "mobile")),
        ("+49 (0)30 1234567", "DE", ("+49301234567", True, "fixed_line")),
        ("01 23 45 67 89", "FR", ("+33123456789", True, "fixed_line")),
        ("06.12.34.56.78", "FR", ("+33612345678", True, "mobile")),
        ("612 34 56 78", "ES", ("+34612345678", True, "mobile")),
        ("0034 91 123 45 67", "GB", ("+34911234567", True, "fixed_line")),
        ("123", "US", (None, False, None)),
        ("000000", None, (None, False, None)),
        ("n/a", "DE", (None, False, None)),
        ("  ", "DE", (None, None, None)),
        (None, "DE", None),
    ]
    df = spark.createDataFrame(
        rows, "raw string, country string, expected struct<e164:string,valid:boolean,kind:string>"
    )
    out = df.withColumn("actual", normalize_phone(F.col("raw"), F.col("country")))
    assert_column_equality(out, "actual", "expected")


def test_phone_batch_dedupes_and_maps_back() -> None:
    parse_phone.cache_clear()
    raw = pd.Series(["+1 415 555 2671", None, "+1 415 555 2671", "0049 151 23456789", "x"])
    country = pd.Series(["US", "US", None, "US", None])
    out = _normalize_batch(raw, country)
    assert out.to_dict("list") == {
        "e164": ["+14155552671", None, "+14155552671", "+4915123456789", None],
        "valid": [True, None, True, True, False],
        "kind": ["fixed_line_or_mobile", None, "fixed_line_or_mobile", "mobile", None],
    }
    assert parse_phone.cache_info().misses == 3  # the repeated (number, region) parsed once
