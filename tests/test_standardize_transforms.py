"""Standardize transforms on small bronze frames: canonical records, issues, quarantine."""

from __future__ import annotations

import datetime as dt

import pytest
from chispa import assert_df_equality
from pyspark.sql import DataFrame, SparkSession

from udp_spark.config import ExprSpec, SourceConfig, StandardizeSettings
from udp_spark.standardize.transforms import (
    MappingError,
    check_interactions,
    check_party,
    interaction_records,
    party_records,
    quarantine_rows,
)

BRONZE = ("id string, first string, last string, full string, email string, phone string, "
          "dob string, country string, upd string, loyalty string, _rescued_data string, "
          "_corrupt_record string, _batch_id string, _file string, _ingested_at timestamp, "
          "_row_hash string")
AT = dt.datetime(2026, 1, 1)
SETTINGS = StandardizeSettings()


def _source(**kw: object) -> SourceConfig:
    party = {"source_key": "id", "given_name": "first", "family_name": "last",
             "email": "email", "phone": "phone", "date_of_birth": "dob", "country": "country",
             "updated_at": "upd", "loyalty_id": "loyalty"}
    return SourceConfig(name="crm", format="csv", path="x", trust_rank=1,
                        date_formats=("MM/dd/yyyy", "yyyy-MM-dd"),
                        timestamp_formats=("yyyy-MM-dd HH:mm:ss",), party=party, **kw)


def _bronze(spark: SparkSession, rows: list[tuple]) -> DataFrame:
    full = [(*r, None, None, "b1", "f.csv", AT, f"h{i}") for i, r in enumerate(rows)]
    return spark.createDataFrame(full, BRONZE)


def test_party_fields_are_normalized(spark: SparkSession) -> None:
    bronze = _bronze(spark, [
        ("1", "  JOHN ", "O'BRIEN", None, " John.Doe+shop@GMAIL.com", "(415) 555-2671",
         "02/29/1980", "USA", "2024-01-02 03:04:05", "ab-12 3"),
    ])
    out = bronze.transform(check_party(_source(), SETTINGS)).transform(party_records("r1"))
    row = out.first()
    assert row["record_id"] == "crm:1" and row["source_rank"] == 1
    assert (row["given_name"], row["family_name"]) == ("John", "O'Brien")
    assert (row["given_name_norm"], row["family_name_norm"]) == ("john", "obrien")
    assert row["email"] == "john.doe+shop@gmail.com"
    assert row["email_canonical"] == "johndoe@gmail.com"
    assert row["email_valid"] is True
    assert row["phone_e164"] == "+14155552671" and row["phone_valid"] is True
    assert row["date_of_birth"] == dt.date(1980, 2, 29) and row["birth_year"] == 1980
    assert row["country"] == "US" and row["loyalty_id"] == "AB123"
    assert row["updated_at"] == dt.datetime(2024, 1, 2, 3, 4, 5)
    assert row["_run_id"] == "r1" and 0 < row["completeness"] <= 1


def test_bad_values_are_nulled_and_quarantined_with_reasons(spark: SparkSession) -> None:
    bronze = _bronze(spark, [
        ("1", "Ann", "Lee", None, "ann@", "123", "31/02/1980", "Atlantis", "yesterday", None),
        ("2", "Bo", "Ray", None, "noemail@example.com", None, "1850-01-01", None, None, None),
        ("3", "Cy", "Day", None, "cy@day.org", None, "01/01/1900", None, None, None),
    ])
    checked = bronze.transform(check_party(_source(), SETTINGS))
    records = {r["record_id"]: r for r in checked.transform(party_records("r")).collect()}
    assert records["crm:1"]["email"] is None and records["crm:1"]["email_valid"] is False
    assert records["crm:1"]["phone_e164"] is None and records["crm:1"]["date_of_birth"] is None
    assert records["crm:2"]["email"] is None and records["crm:2"]["date_of_birth"] is None
    assert records["crm:3"]["date_of_birth"] is None and records["crm:3"]["birth_year"] is None
    q = checked.transform(quarantine_rows("party", "r")).select(
        "record_id", "field", "raw_value", "reason", "action")
    expected = spark.createDataFrame([
        ("crm:1", "email", "ann@", "invalid email", "field_nulled"),
        ("crm:1", "phone", "123", "invalid phone number", "field_nulled"),
        ("crm:1", "date_of_birth", "31/02/1980", "unparseable date", "field_nulled"),
        ("crm:1", "country", "Atlantis", "unknown country", "field_nulled"),
        ("crm:1", "updated_at", "yesterday", "unparseable timestamp", "field_nulled"),
        ("crm:2", "email", "noemail@example.com", "placeholder email", "field_nulled"),
        ("crm:2", "date_of_birth", "1850-01-01", "date of birth out of range", "field_nulled"),
        ("crm:3", "date_of_birth", "01/01/1900", "placeholder date of birth", "field_nulled"),
    ], "record_id string, field string, raw_value string, reason string, action string")
    assert_df_equality(q, expected, ignore_row_order=True, ignore_nullable=True)


def test_common_placeholder_emails_are_nulled_by_default(spark: SparkSession) -> None:
    emails = ["x@x.com", "NoEmail@NoEmail.com", "none@none.com", "na@na.com",
              "test@test.com", "no@email.com"]
    bronze = _bronze(spark, [(str(i), "Ann", "Lee", None, e, None, None, None, None, None)
                             for i, e in enumerate(emails)])
    checked = bronze.transform(check_party(_source(), StandardizeSettings()))
    assert {r["email"] for r in checked.transform(party_records("r")).collect()} == {None}
    q = checked.transform(quarantine_rows("party", "r")).select("raw_value", "reason", "action")
    expected = spark.createDataFrame([(e, "placeholder email", "field_nulled") for e in emails],
                                     "raw_value string, reason string, action string")
    assert_df_equality(q, expected, ignore_row_order=True, ignore_nullable=True)


def test_repo_config_lists_the_common_placeholder_emails() -> None:
    from pathlib import Path

    from udp_spark.config import load_config

    cfg = load_config(Path(__file__).resolve().parents[1] / "conf" / "pipeline.yaml")
    assert {"x@x.com", "noemail@noemail.com"} <= set(cfg.standardize.placeholder_emails)
    assert set(StandardizeSettings().placeholder_emails) <= set(
        cfg.standardize.placeholder_emails)


def test_unusable_rows_are_rejected_not_dropped(spark: SparkSession) -> None:
    rows = [(None, "Ann", "Lee", None, None, None, None, None, None, None),
            ("2", None, None, None, "bad@", None, None, None, None, None),
            ("3", None, None, None, None, None, None, None, None, "L1"),
            ("4", None, None, None, None, None, None, None, None, None)]
    full = [(*r, None, "4,broken" if r[0] == "4" else None, "b", "f", AT, f"h{i}")
            for i, r in enumerate(rows)]
    bronze = spark.createDataFrame(full, BRONZE)
    checked = bronze.transform(check_party(_source(require_name=True), SETTINGS))
    kept = [r["record_id"] for r in checked.transform(party_records("r")).collect()]
    assert kept == ["crm:3"]
    q = {(r["record_id"], r["reason"], r["action"]) for r in
         checked.transform(quarantine_rows("party", "r")).collect()}
    assert q == {
        (None, "missing source key", "row_rejected"),
        ("crm:2", "no usable identifier", "row_rejected"),
        ("crm:4", "malformed row", "row_rejected"),
        ("crm:3", "empty name", "kept_without_name"),
    }


def test_repeated_source_key_takes_latest_non_null_per_field(spark: SparkSession) -> None:
    bronze = _bronze(spark, [
        ("7", "Ann", "Lee", None, "old@x.com", "+1 415 555 2671", None, None,
         "2024-01-01 00:00:00", None),
        ("7", "Ann", "Lee-Ray", None, "new@x.com", None, None, None, "2025-01-01 00:00:00",
         None),
    ])
    out = bronze.transform(check_party(_source(), SETTINGS)).transform(party_records("r"))
    rows = out.collect()
    assert len(rows) == 1
    r = rows[0]
    assert (r["family_name"], r["email"], r["phone_e164"]) == ("Lee-Ray", "new@x.com",
                                                               "+14155552671")
    assert r["_source_rows"] == 2


def test_a_tie_between_rows_does_not_depend_on_where_they_were_landed(
        spark: SparkSession) -> None:
    """Two rows of one record with the same update and landing time: the record takes the
    same values whatever the rows' batch ids and row hashes (they name the landed file's
    path, so the same file landed from another folder had other hashes and, on ties, other
    values: bench repetitions differed by a few candidate pairs)."""
    rows = [("7", "Ann", "Lee", None, "ann@x.com", None, None, None, "2024-01-01 00:00:00",
             None),
            ("7", "Ann", "Lee", None, "lee@y.org", None, None, None, "2024-01-01 00:00:00",
             None)]

    def landed(hashes: tuple[str, str]) -> str:
        full = [(*r, None, None, f"b-{h}", "f.csv", AT, h) for r, h in zip(rows, hashes,
                                                                            strict=True)]
        bronze = spark.createDataFrame(full, BRONZE)
        (rec,) = bronze.transform(check_party(_source(), SETTINGS)).transform(
            party_records("r")).collect()
        return str(rec["email"])

    assert landed(("h0", "h1")) == landed(("h1", "h0"))


def test_a_contact_keeps_the_validity_of_the_row_it_came_from(spark: SparkSession) -> None:
    """A later row's mistyped phone and e-mail (nulled as invalid) do not mark the earlier
    valid ones invalid: the record keeps them, flagged valid, as survivorship's valid_only
    needs; a record that never gave a valid one is flagged invalid."""
    bronze = _bronze(spark, [
        ("7", "Ann", "Lee", None, "ann@x.com", "+1 415 555 2671", None, None,
         "2024-01-01 00:00:00", None),
        ("7", "Ann", "Lee", None, "ann@", "+1 415 555", None, None, "2025-01-01 00:00:00",
         None),
        ("8", "Bo", "Kim", None, "bo@", "12", None, None, "2025-01-01 00:00:00", None),
    ])
    out = bronze.transform(check_party(_source(), SETTINGS)).transform(party_records("r"))
    got = {r["record_id"]: (r["email"], r["email_valid"], r["phone_e164"], r["phone_valid"],
                            r["phone_kind"]) for r in out.collect()}
    assert got == {"crm:7": ("ann@x.com", True, "+14155552671", True, "fixed_line_or_mobile"),
                   "crm:8": (None, False, None, False, None)}


def test_full_name_is_split(spark: SparkSession) -> None:
    src = SourceConfig(name="pos", format="parquet", path="x", trust_rank=2,
                       party={"source_key": "id", "full_name": "full"})
    bronze = _bronze(spark, [("1", None, None, "SMITH/JOHN", None, None, None, None, None, None),
                             ("2", None, None, "Lee, Ann B", None, None, None, None, None, None)])
    out = {r["record_id"]: r for r in
           bronze.transform(check_party(src, SETTINGS)).transform(party_records("r")).collect()}
    assert (out["pos:1"]["given_name_norm"], out["pos:1"]["family_name_norm"]) == ("john",
                                                                                   "smith")
    assert (out["pos:2"]["given_name"], out["pos:2"]["middle_name"],
            out["pos:2"]["family_name"]) == ("Ann", "B", "Lee")


def test_mapping_of_a_missing_column_fails_with_the_columns(spark: SparkSession) -> None:
    src = SourceConfig(name="crm", format="csv", path="x", trust_rank=1,
                       party={"source_key": "id", "email": "e_mail"})
    with pytest.raises(MappingError, match=r"party\.email maps column 'e_mail'"):
        _bronze(spark, []).transform(check_party(src, SETTINGS))


def test_unparseable_expression_fails_naming_source_key_and_expression(
        spark: SparkSession) -> None:
    # Built in code, so the config-load check never saw it; Spark's parser rejects it.
    src = _source().model_copy(update={"party": _source().party.model_copy(
        update={"gender": ExprSpec(expr="upper(first last)")})})
    with pytest.raises(MappingError) as err:
        _bronze(spark, [("1", "A", "B", None, None, None, None, None, None, None)]).transform(
            check_party(src, SETTINGS))
    message = str(err.value)
    assert "source 'crm': party.gender.expr 'upper(first last)'" in message
    assert "not a valid Spark SQL expression over its columns" in message


def test_interactions(spark: SparkSession) -> None:
    schema = ("oid string, cust string, ts string, total string, _corrupt_record string, "
              "_batch_id string, _file string, _ingested_at timestamp, _row_hash string")
    bronze = spark.createDataFrame([
        ("o1", "c1", "2024-05-01 10:00:00", "$12.50", None, "b", "f", AT, "h1"),
        ("o2", None, "2024-05-02 10:00:00", "abc", None, "b", "f", AT, "h2"),
        ("o3", "c1", "not a time", "1", None, "b", "f", AT, "h3"),
    ], schema)
    src = SourceConfig(name="orders", format="json", path="x", trust_rank=2,
                       timestamp_formats=("yyyy-MM-dd HH:mm:ss",),
                       interactions=[{"type": {"const": "order"}, "key": "oid",
                                      "party_source": "shop", "party_key": "cust",
                                      "occurred_at": "ts", "amount": "total"}])
    checked = bronze.transform(check_interactions(src, src.interactions[0], 0))
    got = {r["interaction_key"]: r for r in checked.transform(interaction_records("r")).collect()}
    assert set(got) == {"o1", "o2"}
    assert got["o1"]["record_id"] == "shop:c1" and float(got["o1"]["amount"]) == 12.5
    assert got["o2"]["record_id"] is None and got["o2"]["amount"] is None  # anonymous
    q = {(r["field"], r["reason"], r["action"]) for r in
         checked.transform(quarantine_rows("interaction", "r")).collect()}
    assert q == {("amount", "unparseable amount", "field_nulled"),
                 (None, "unparseable timestamp", "row_rejected")}
