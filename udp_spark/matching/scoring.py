"""Spark side of the Fellegi-Sunter model: per-comparison weights, term frequencies, scores.

Everything is a column expression over comparison vectors (no UDF): each comparison's weight
is a map lookup by level, and the top level of a term-frequency comparison uses the value's
frequency instead of the average u, so agreeing on a rare name counts for more.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

from udp_spark.matching.fellegi_sunter import MISSING, FSModel

Transform = Callable[[DataFrame], DataFrame]

TF_FLOOR = 1e-6  # frequencies below this (very rare values) are treated as this rare


def tf_table(records: DataFrame, column: str) -> DataFrame:
    """``(value, tf)``: the share of records (with a value) that hold each value."""
    present = records.filter(F.col(column).isNotNull())
    counts = present.groupBy(F.col(column).alias("value")).agg(F.count("*").alias("n"))
    total = present.agg(F.count("*").alias("total"))
    return counts.crossJoin(total).select("value", (F.col("n") / F.col("total")).alias("tf"))


def _weight_map(model: FSModel, comparison: str) -> Column:
    pairs = []
    for level in model.levels[comparison]:
        w = 0.0 if level == MISSING else model.weight(comparison, level)
        pairs += [F.lit(level), F.lit(w)]
    return F.create_map(*pairs)


def weight_columns(model: FSModel, tf: dict[str, DataFrame] | None = None) -> Transform:
    """vectors -> adds ``w_<comparison>`` (log2 Bayes factor of the pair's level).

    ``tf``: comparison name -> its :func:`tf_table`; the top level of those comparisons gets
    ``log2(m_top / max(tf(value), TF_FLOOR))``. A value the table does not hold (a table
    frozen before the record arrived) counts as rare as the table's rarest value.
    """

    def transform(vectors: DataFrame) -> DataFrame:
        out = vectors
        for c in model.comparisons:
            base = F.element_at(_weight_map(model, c), F.col(c))
            tf_col = f"tf_value_{c}"
            if tf and c in tf and tf_col in vectors.columns:
                top = model.top_levels[c]
                m_top = max(model.m[c][top], 1e-12)
                table = F.broadcast(tf[c].select(F.col("value").alias(tf_col),
                                                 F.col("tf").alias(f"_tf_{c}")))
                rarest = F.broadcast(tf[c].agg(F.min("tf").alias(f"_rarest_{c}")))
                out = out.join(table, tf_col, "left").crossJoin(rarest)
                freq = F.coalesce(F.col(f"_tf_{c}"), F.col(f"_rarest_{c}"))
                adj = F.log2(F.lit(m_top) / F.greatest(freq, F.lit(TF_FLOOR)))
                base = F.when((F.col(c) == top) & freq.isNotNull(), adj).otherwise(base)
                out = out.withColumn(f"w_{c}", base).drop(f"_tf_{c}", f"_rarest_{c}")
            else:
                out = out.withColumn(f"w_{c}", base)
        return out

    return transform


def score(model: FSModel) -> Transform:
    """weights -> adds ``match_weight`` and ``match_probability``."""

    def transform(weighted: DataFrame) -> DataFrame:
        total = F.lit(model.prior_weight)
        for c in model.comparisons:
            total = total + F.coalesce(F.col(f"w_{c}"), F.lit(0.0))
        probability = F.lit(1.0) / (F.lit(1.0) + F.pow(F.lit(2.0), -F.col("match_weight")))
        return weighted.withColumn("match_weight", total).withColumn("match_probability",
                                                                      probability)

    return transform


class HasComparisons(Protocol):
    @property
    def comparisons(self) -> list[str]: ...


def contributions(model: HasComparisons) -> Column:
    """map<comparison, weight> of a scored pair (``w_<comparison>`` columns), for
    explanations; any matcher whose scores have those columns."""
    return F.create_map(*[x for c in model.comparisons for x in (F.lit(c), F.col(f"w_{c}"))])
