"""What the matching stages read: party records with identifier columns, a truth file."""

from __future__ import annotations

import logging
from pathlib import Path

from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from udp_spark import io
from udp_spark.matching.comparisons import (
    with_identifier_columns,
)
from udp_spark.pipeline.context import StageContext
from udp_spark.tables import (
    SILVER_PARTY_RECORDS,
)

log = logging.getLogger(__name__)


def party_records(ctx: StageContext, version: int | None = None) -> DataFrame:
    """``silver.party_records`` (at ``version``, default the latest) with the configured
    identifier columns, or a clear error."""
    ref = ctx.lakehouse.ref(SILVER_PARTY_RECORDS)
    if not io.table_exists(ctx.spark, ref):
        raise ValueError(f"{ref} does not exist: run `udp ingest` and `udp standardize` first")
    return io.read_table(ctx.spark, ref, version=version).transform(
        with_identifier_columns(ctx.cfg.matching.identifiers))


def read_truth(ctx: StageContext, path: str) -> DataFrame:
    """A truth file: CSV with ``record_id,entity_id`` or ``source,source_key,person_id``."""
    df = ctx.spark.read.option("header", "true").csv(path)
    if {"record_id", "entity_id"} <= set(df.columns):
        return df.select("record_id", "entity_id")
    if {"source", "source_key", "person_id"} <= set(df.columns):
        return df.select(F.concat_ws(":", "source", "source_key").alias("record_id"),
                         F.col("person_id").alias("entity_id"))
    raise ValueError(f"truth file {path}: needs columns record_id,entity_id or "
                     f"source,source_key,person_id; has {df.columns}")


def default_truth_path(data_root: str) -> str | None:
    """The demo's truth file under ``data_root``, if it is there."""
    p = Path(data_root) / "truth" / "records.csv"
    return str(p) if p.is_file() else None
