"""Segments: named Spark SQL predicates over profile columns, from ``publish.segments``.

Example (``conf/pipeline.yaml``)::

    publish:
      segments:
        high_value: "ltv > 1000 and recency_days < 90"
        open_support: {where: "open_tickets > 0", description: "has an unresolved ticket"}

A customer is in a segment when the predicate is true (null counts as false). The profile
gets ``segments`` (sorted names); ``gold.segment_membership`` records when each customer
entered and left each segment.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

from pyspark.sql import DataFrame
from pyspark.sql import functions as F
from pyspark.sql import types as T

from udp_spark.config import SegmentSpec
from udp_spark.profile.functions import predicate_problem

Transform = Callable[[DataFrame], DataFrame]

__all__ = ["SegmentError", "check_segments", "with_segments"]


class SegmentError(ValueError):
    """A segment predicate does not work on the profile; the message names the segment."""


def check_segments(segments: Mapping[str, SegmentSpec], profiles: DataFrame) -> None:
    """Resolve every predicate against the profile's columns (analysis only: no Spark job).

    Raises:
        SegmentError: naming the segment, the predicate, Spark's complaint and the columns.
    """
    for name, spec in segments.items():
        problem = predicate_problem(profiles, spec.where, "the profile")
        if problem:
            raise SegmentError(
                f"publish.segments.{name}: {spec.where!r} {problem}; write a "
                f"predicate such as 'ltv > 1000'; profile columns are "
                f"{sorted(profiles.columns)}")


def with_segments(segments: Mapping[str, SegmentSpec]) -> Transform:
    """Add ``segments``: the sorted names of the segments whose predicate holds."""

    def transform(profiles: DataFrame) -> DataFrame:
        check_segments(segments, profiles)
        members = [F.when(F.coalesce(F.expr(segments[n].where), F.lit(False)), F.lit(n))
                   for n in sorted(segments)]
        names = (F.filter(F.array(*members), lambda x: x.isNotNull()) if members
                 else F.array().cast(T.ArrayType(T.StringType())))
        return profiles.withColumn("segments", names)

    return transform
