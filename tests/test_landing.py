"""The bronze landing transform: raw values kept, unexpected columns rescued."""

from __future__ import annotations

from datetime import UTC, datetime

from chispa import assert_df_equality
from pyspark.sql import SparkSession
from pyspark.sql import types as T

from udp_spark.config import SourceConfig
from udp_spark.landing import to_bronze

AT = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)


def _source(columns: tuple[str, ...]) -> SourceConfig:
    return SourceConfig(name="crm", format="csv", path="x.csv", trust_rank=1, columns=columns,
                        party={"source_key": "id", "email": "email"})


def test_unexpected_columns_are_rescued_and_missing_ones_are_null(spark: SparkSession) -> None:
    raw = spark.createDataFrame(
        [("1", "a@x.com", "web", None, "b1", "f.csv"),
         ("2", None, None, "2,\"broken", "b1", "f.csv")],
        "id string, email string, referrer string, _corrupt_record string, "
        "_batch_id string, _file string")
    out = raw.transform(to_bronze(_source(("id", "email", "phone")), run_id="r1",
                                  ingested_at=AT))
    got = out.select("id", "email", "phone", "_rescued_data", "_corrupt_record", "_source",
                     "_batch_id", "_run_id")
    expected = spark.createDataFrame(
        [("1", "a@x.com", None, '{"referrer":"web"}', None, "crm", "b1", "r1"),
         ("2", None, None, None, '2,"broken', "crm", "b1", "r1")],
        "id string, email string, phone string, _rescued_data string, _corrupt_record string, "
        "_source string, _batch_id string, _run_id string")
    assert_df_equality(got, expected, ignore_row_order=True, ignore_nullable=True)
    row = out.filter("id = '1'").first()
    assert row["_ingested_at"] == AT.replace(tzinfo=None)
    assert len(row["_row_hash"]) == 64


def test_typed_values_become_strings_and_nested_json_stays(spark: SparkSession) -> None:
    schema = T.StructType([
        T.StructField("id", T.LongType()),
        T.StructField("amount", T.DoubleType()),
        T.StructField("ts", T.TimestampType()),
        T.StructField("name", T.StructType([T.StructField("first", T.StringType())])),
        T.StructField("_batch_id", T.StringType()),
        T.StructField("_file", T.StringType()),
    ])
    raw = spark.createDataFrame([(7, 12.5, datetime(2024, 5, 1, 10, 0), ("Ann",), "b", "f")],
                                schema)
    out = raw.transform(to_bronze(_source(()), run_id="r", ingested_at=AT))
    assert dict(out.dtypes)["id"] == "string"
    assert dict(out.dtypes)["name"] == "struct<first:string>"
    row = out.first()
    assert (row["id"], row["amount"], row["ts"]) == ("7", "12.5", "2024-05-01T10:00:00.000Z")
    assert row["name"]["first"] == "Ann" and row["_rescued_data"] is None


def test_identical_rows_hash_alike_and_batches_differ(spark: SparkSession) -> None:
    raw = spark.createDataFrame(
        [("1", "a", "b1", "f"), ("1", "a", "b1", "f"), ("1", "a", "b2", "g")],
        "id string, email string, _batch_id string, _file string")
    out = raw.transform(to_bronze(_source(("id", "email")), run_id="r", ingested_at=AT))
    hashes = [r["_row_hash"] for r in out.orderBy("_batch_id").collect()]
    assert hashes[0] == hashes[1] != hashes[2]
