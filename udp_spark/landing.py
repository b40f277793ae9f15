"""Bronze landing transform: raw source rows -> the ``bronze.<source>`` shape.

Values are kept as they arrived (primitives as strings, nested JSON as structs); columns the
source config does not expect are packed into ``_rescued_data`` as JSON, never dropped.

``_ingested_at`` is when the row reached us as the source records it (its file's
modification time, its Kafka message's timestamp, its Delta source version's time), never
later than the ingest run: durable input, not the clock, so the same files landed again (a
re-run after a kill, a replayed micro-batch, a lakehouse rebuilt) land with the same time.
It is the observation time of a record whose source carries no time of its own
(:func:`udp_spark.profile.functions.observed_at`), e.g. an e-mail's ``last_seen_at``.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F
from pyspark.sql import types as T

from udp_spark.config import SourceConfig
from udp_spark.io import CORRUPT_COL, LANDED_COL

RESCUED_COL = "_rescued_data"
META_COLS = ("_source", "_batch_id", "_file", "_ingested_at", "_run_id", "_row_hash")
_READER_COLS = {"_file", "_batch_id", CORRUPT_COL, LANDED_COL}


def quoted(name: str) -> str:
    """``name`` as a quoted identifier: a header of garbage bytes may hold backticks too."""
    return "`" + name.replace("`", "``") + "`"


def _as_raw(df: DataFrame, name: str) -> Column:
    """Primitive values as strings; structs/arrays/maps (nested JSON) kept as they are."""
    dtype = df.schema[name].dataType
    col = F.col(quoted(name))
    if isinstance(dtype, (T.StructType, T.ArrayType, T.MapType)) or dtype == T.StringType():
        return col.alias(name)
    if isinstance(dtype, T.TimestampType):
        # ISO with offset so a later parse cannot misread the zone.
        return F.date_format(col, "yyyy-MM-dd'T'HH:mm:ss.SSSXXX").alias(name)
    return col.cast("string").alias(name)


def expected_columns(source: SourceConfig, raw_columns: list[str]) -> tuple[list[str], list[str],
                                                                          list[str]]:
    """Split the read columns into (expected, extra, missing) for a source."""
    data_cols = [c for c in raw_columns if c not in _READER_COLS]
    expected = list(source.columns) or data_cols
    extra = [c for c in data_cols if c not in expected]
    missing = [c for c in expected if c not in data_cols]
    return expected, extra, missing


def to_bronze(source: SourceConfig, *, run_id: str,
              ingested_at: datetime) -> Callable[[DataFrame], DataFrame]:
    """Return the transform that shapes a raw read of ``source`` into its bronze rows.

    Output: the expected columns (missing ones as nulls), ``_rescued_data`` (JSON of
    unexpected columns, null when there are none), ``_corrupt_record`` (the raw line of a
    malformed row), ``_source``, ``_batch_id``, ``_file``, ``_ingested_at``, ``_run_id`` and
    ``_row_hash`` (SHA-256 of the raw values, for change detection and quarantine ids).

    ``_ingested_at`` is the raw read's ``_landed_at`` (see :data:`udp_spark.io.LANDED_COL`)
    where the reader gives one, capped at ``ingested_at`` (the run's clock: a file stamped in
    the future by a skewed clock is not seen before it arrives); ``ingested_at`` itself for a
    row without one (a JDBC source).
    """

    def transform(raw: DataFrame) -> DataFrame:
        expected, extra, _ = expected_columns(source, raw.columns)
        present = set(raw.columns)
        cols = [_as_raw(raw, c) if c in present else F.lit(None).cast("string").alias(c)
                for c in expected]
        if extra:
            packed = F.to_json(F.struct(*[_as_raw(raw, c) for c in extra]))
            rescued = F.when(packed != F.lit("{}"), packed)
        else:
            rescued = F.lit(None).cast("string")
        corrupt = F.col(CORRUPT_COL) if CORRUPT_COL in present else F.lit(None).cast("string")
        clock = F.lit(ingested_at).cast("timestamp")
        # least() skips nulls: a row without a landing time gets the clock
        landed = F.least(F.col(LANDED_COL), clock) if LANDED_COL in present else clock
        shaped = raw.select(*cols, rescued.alias(RESCUED_COL), corrupt.alias(CORRUPT_COL),
                            F.col("_batch_id"), F.col("_file"), landed.alias("_ingested_at"))
        payload = F.to_json(F.struct(*[F.col(quoted(c)) for c in expected],
                                     F.col(RESCUED_COL), F.col(CORRUPT_COL)))
        return shaped.select(
            *[F.col(quoted(c)) for c in expected], RESCUED_COL, CORRUPT_COL,
            F.lit(source.name).alias("_source"),
            "_batch_id", "_file", "_ingested_at",
            F.lit(run_id).alias("_run_id"),
            F.sha2(F.concat_ws("|", F.col("_batch_id"), payload), 256).alias("_row_hash"),
        )

    return transform
