"""Small hand-made silver/gold rows for the profile and publish tests (explicit schemas)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from typing import Any

import pytest
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import types as T

S, B, INT, D, TS = (T.StringType(), T.BooleanType(), T.IntegerType(), T.DoubleType(),
                    T.TimestampType())

# The silver.party_records columns survivorship reads (+ customer_id from the xref).
RECORD_SCHEMA = T.StructType([
    T.StructField("customer_id", S), T.StructField("record_id", S),
    T.StructField("source", S), T.StructField("source_key", S),
    T.StructField("source_rank", INT), T.StructField("completeness", D),
    *[T.StructField(c, S) for c in (
        "given_name", "middle_name", "family_name", "full_name", "given_name_norm",
        "middle_name_norm", "family_name_norm", "email", "email_canonical")],
    T.StructField("email_valid", B), T.StructField("phone_e164", S),
    T.StructField("phone_valid", B), T.StructField("phone_kind", S),
    T.StructField("mobile_e164", S),
    T.StructField("mobile_valid", B),
    *[T.StructField(c, S) for c in (
        "street", "street_norm", "city", "city_norm", "state", "postcode", "country")],
    T.StructField("date_of_birth", T.DateType()), T.StructField("birth_year", INT),
    T.StructField("gender", S), T.StructField("loyalty_id", S),
    T.StructField("attributes", T.MapType(S, S)),
    T.StructField("created_at", TS), T.StructField("updated_at", TS),
    T.StructField("_ingested_at", TS), T.StructField("_run_id", S),
    T.StructField("_batch_ids", T.ArrayType(S)),
])

INTERACTION_SCHEMA = T.StructType([
    T.StructField("interaction_id", S), T.StructField("record_id", S),
    T.StructField("source", S), T.StructField("interaction_key", S),
    T.StructField("type", S), T.StructField("occurred_at", TS),
    T.StructField("amount", T.DecimalType(18, 2)), T.StructField("currency", S),
    T.StructField("channel", S), T.StructField("status", S),
    T.StructField("attributes", T.MapType(S, S)),
])

XREF_SCHEMA = T.StructType([
    T.StructField("record_id", S), T.StructField("customer_id", S),
    T.StructField("cluster_size", INT), T.StructField("reason", S),
    T.StructField("best_link_probability", D), T.StructField("run_id", S),
])

EVENT_SCHEMA = T.StructType([
    T.StructField("event_type", S), T.StructField("customer_id", S),
    T.StructField("related_customer_id", S), T.StructField("records", T.LongType()),
    T.StructField("run_id", S), T.StructField("event_at", TS),
])

INGESTED = datetime(2026, 1, 1)
RANKS = {"crm": 1, "webshop_customers": 2, "support_tickets": 3, "app_users": 4,
         "email_subscribers": 5, "pos_transactions": 6}


def rec(record_id: str, customer_id: str = "C1", **values: Any) -> dict[str, Any]:
    """A party record: ``record_id`` is ``<source>:<key>``; normalized forms are derived."""
    source = record_id.split(":")[0]
    row: dict[str, Any] = {f.name: None for f in RECORD_SCHEMA.fields}
    row.update(customer_id=customer_id, record_id=record_id, source=source,
               source_key=record_id.split(":", 1)[1], source_rank=RANKS.get(source, 9),
               completeness=0.5, attributes={}, _ingested_at=INGESTED, _run_id="std-1",
               _batch_ids=["b1"])
    row.update(values)
    for col in ("given_name", "middle_name", "family_name", "street", "city"):
        if row[col] is not None and f"{col}_norm" in row and row[f"{col}_norm"] is None:
            row[f"{col}_norm"] = str(row[col]).lower()
    if row["email"] is not None and row["email_valid"] is None:
        row["email_valid"] = True
    if row["email"] is not None and row["email_canonical"] is None:
        row["email_canonical"] = str(row["email"]).lower()
    if row["phone_e164"] is not None and row["phone_valid"] is None:
        row["phone_valid"] = True
    if row["mobile_e164"] is not None and row["mobile_valid"] is None:
        row["mobile_valid"] = True
    return row


def records(spark: SparkSession, rows: list[dict[str, Any]]) -> DataFrame:
    return spark.createDataFrame([tuple(r[f.name] for f in RECORD_SCHEMA.fields) for r in rows],
                                 RECORD_SCHEMA)


def act(interaction_id: str, record_id: str | None, type_: str, occurred: datetime, *,
        amount: str | None = None, currency: str | None = "USD", channel: str | None = None,
        status: str | None = None, attributes: dict[str, str] | None = None
        ) -> tuple[Any, ...]:
    from decimal import Decimal

    return (interaction_id, record_id, interaction_id.split(":")[0], interaction_id, type_,
            occurred, Decimal(amount) if amount is not None else None, currency, channel,
            status, attributes or {})


def interactions(spark: SparkSession, rows: list[tuple[Any, ...]]) -> DataFrame:
    return spark.createDataFrame(rows, INTERACTION_SCHEMA)


def day(y: int, m: int, d: int) -> datetime:
    return datetime(y, m, d)




@pytest.fixture(scope="module")
def interpreted(spark: SparkSession) -> Iterator[None]:
    """Whole-stage code generation off for a module of tiny frames.

    Each scenario is a new plan, and compiling its generated code costs seconds while
    running it on five rows costs milliseconds. The publish tests keep it on, so the same
    expressions are still checked under code generation.
    """
    key = "spark.sql.codegen.wholeStage"
    before = spark.conf.get(key)
    spark.conf.set(key, "false")
    try:
        yield
    finally:
        spark.conf.set(key, before)
