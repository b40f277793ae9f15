"""Column -> Column helpers for golden profiles."""

from __future__ import annotations

from collections.abc import Sequence

from pyspark.errors import AnalysisException
from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F
from pyspark.sql import types as T

__all__ = ["content_hash", "observed_at", "predicate_problem", "score_band", "source_time"]


def predicate_problem(df: DataFrame, sql: str, table: str) -> str | None:
    """Why the SQL text ``sql`` is not a usable condition over ``df``'s columns (it does not
    resolve, or is not boolean), or None when it is. Analysis only: no Spark job runs."""
    try:
        dtype = df.select(F.expr(sql).alias("_p")).schema["_p"].dataType
    except AnalysisException as exc:
        return f"does not work on {table}: {str(exc).splitlines()[0]}"
    if not isinstance(dtype, T.BooleanType):
        return f"is a {dtype.simpleString()}, not a condition"
    return None


def source_time() -> Column:
    """When the source system says a party record last changed: ``updated_at``, else
    ``created_at``; null when the source gives neither."""
    return F.coalesce(F.col("updated_at"), F.col("created_at"))


def observed_at() -> Column:
    """When a party record was last known true: its :func:`source_time`, else the time it
    landed (``_ingested_at``: its file's modification time, not the clock of the run that
    read it, see :mod:`udp_spark.landing`; every silver record has that)."""
    return F.coalesce(source_time(), F.col("_ingested_at"))


def score_band(value: Column, cuts: Sequence[float], *, lower_is_better: bool = False
               ) -> Column:
    """1 + the number of cut points ``value`` reaches (``>=``; ``<=`` when lower is better).

    Four ascending cut points give scores 1-5; null stays null. With cuts (30, 90, 180, 365)
    and ``lower_is_better``, a recency of 10 days scores 5 and one of 400 days scores 1.
    """
    hits = [(value <= F.lit(c)) if lower_is_better else (value >= F.lit(c)) for c in cuts]
    total = F.lit(1)
    for hit in hits:
        total = total + hit.cast("int")
    return F.when(value.isNotNull(), total)


def content_hash(columns: Sequence[str]) -> Column:
    """SHA-256 of the JSON of ``columns``: equal content, equal hash (arrays must be sorted).

    Times are written in UTC, so the hash does not change with the session's time zone.
    """
    json = F.to_json(F.struct(*[F.col(f"`{c}`") for c in columns]), {"timeZone": "UTC"})
    return F.sha2(json, 256)
