"""Labelled record pairs for the supervised matcher: parsing, checking, deriving from truth.

A label is ``(record_id_l, record_id_r, is_match)`` with ``record_id_l < record_id_r``. Labels
come from clerical review (a pairs CSV ``record_id_a,record_id_b,is_match``) or, in the demo,
from the generator's truth over the candidate pairs. Rows that cannot be used are kept with a
``problem`` saying why, so the caller reports them instead of dropping them.
"""

from __future__ import annotations

from collections.abc import Sequence

from pyspark.sql import Column, DataFrame, Window
from pyspark.sql import functions as F

TRUE_VALUES = ("true", "t", "1", "yes", "y", "match")
FALSE_VALUES = ("false", "f", "0", "no", "n", "non-match", "nonmatch", "no match")

LABEL_COLUMNS = ("record_id_l", "record_id_r", "is_match")


def parse_is_match(col: Column) -> Column:
    """``'true'/'1'/'yes'/'match'`` -> True, ``'false'/'0'/'no'/'non-match'`` -> False, any
    other value -> null (case and surrounding spaces ignored)."""
    v = F.lower(F.trim(col.cast("string")))
    return (F.when(v.isin(*TRUE_VALUES), F.lit(True))
            .when(v.isin(*FALSE_VALUES), F.lit(False)).otherwise(F.lit(None).cast("boolean")))


def check_pair_labels(raw: DataFrame, record_ids: DataFrame) -> DataFrame:
    """Raw ``(record_id_a, record_id_b, is_match)`` strings -> ordered, typed labels with a
    ``problem`` (null when the row is usable).

    Problems: a missing record id, a self-pair, an ``is_match`` that is not a yes/no value, a
    record id not in ``record_ids`` (``record_id``), and a pair labelled both ways in the file.
    Usable duplicates are kept; :func:`usable_labels` removes them.
    """
    a, b = F.trim(F.col("record_id_a")), F.trim(F.col("record_id_b"))
    # least/greatest skip nulls, so a pair with one id missing must not reach them.
    both = a.isNotNull() & b.isNotNull() & (a != "") & (b != "")
    known = record_ids.select(F.col("record_id").alias("_known"))
    typed = raw.select(
        "record_id_a", "record_id_b", F.col("is_match").cast("string").alias("is_match_raw"),
        F.when(both, F.least(a, b)).alias("record_id_l"),
        F.when(both, F.greatest(a, b)).alias("record_id_r"),
        parse_is_match(F.col("is_match")).alias("is_match"))
    with_ids = (typed
                .join(known.withColumnRenamed("_known", "_known_l"),
                      F.col("record_id_l") == F.col("_known_l"), "left")
                .join(known.withColumnRenamed("_known", "_known_r"),
                      F.col("record_id_r") == F.col("_known_r"), "left"))
    pair = Window.partitionBy("record_id_l", "record_id_r")
    conflicting = (F.size(F.collect_set("is_match").over(pair)) > 1)
    unknown = F.concat_ws(", ", F.when(F.col("_known_l").isNull(), F.col("record_id_l")),
                          F.when(F.col("_known_r").isNull(), F.col("record_id_r")))
    problem = (F.when(F.col("record_id_l").isNull(), F.lit("missing record id"))
               .when(F.col("record_id_l") == F.col("record_id_r"),
                     F.lit("self-pair (record_id_a = record_id_b)"))
               .when(F.col("is_match").isNull(),
                     F.concat(F.lit("is_match "),
                              F.coalesce(F.concat(F.lit("'"), F.col("is_match_raw"), F.lit("'")),
                                         F.lit("empty")),
                              F.lit(" is not true/false, 1/0 or yes/no")))
               .when(F.col("_known_l").isNull() | F.col("_known_r").isNull(),
                     F.concat(F.lit("unknown record id: "), unknown))
               .when(conflicting, F.lit("pair labelled both match and non-match")))
    return with_ids.select("record_id_a", "record_id_b", "is_match_raw", *LABEL_COLUMNS,
                           problem.alias("problem"))


def usable_labels(checked: DataFrame) -> DataFrame:
    """The rows of :func:`check_pair_labels` without a problem, one per pair."""
    return checked.filter(F.col("problem").isNull()).select(*LABEL_COLUMNS).distinct()


def effective_labels(labels: DataFrame, manual_sources: Sequence[str]) -> DataFrame:
    """One decision per pair from ``silver.match_labels`` rows (keyed by pair *and* source).

    A pair can be labelled by several sources (a clerical review and the generator's truth,
    two review rounds); none overwrites another in the table. The decision that counts is a
    manual one (``manual_sources``: clerical review) over any other, then the newest
    (``labelled_at``), then the source name, so the choice never depends on row order.
    Returns ``(record_id_l, record_id_r, is_match, label_source, labelled_at)``.
    """
    manual = F.col("label_source").isin(*manual_sources) if manual_sources else F.lit(False)
    rank = F.row_number().over(Window.partitionBy("record_id_l", "record_id_r").orderBy(
        manual.desc(), F.col("labelled_at").desc_nulls_last(), F.col("label_source")))
    return (labels.withColumn("_rank", rank).filter(F.col("_rank") == 1)
            .select(*LABEL_COLUMNS, "label_source", "labelled_at"))


def problem_kind(col: Column) -> Column:
    """A problem message without its value (``unknown record id: crm:1`` -> ``unknown record
    id``), to count problems by kind."""
    return F.regexp_replace(F.regexp_replace(col, r":.*$", ""), r"^is_match .*$",
                            "unparseable is_match")


def truth_pair_labels(pairs: DataFrame, truth: DataFrame, sample: float = 1.0,
                      seed: int = 42) -> DataFrame:
    """Labels for candidate ``pairs`` whose records both appear in ``truth``
    (``record_id, entity_id``): same entity = match.

    ``sample`` keeps that share of the pairs, chosen by a seeded hash of the pair (the same
    pairs on every run).
    """
    t = truth.select("record_id", "entity_id")
    labelled = (pairs.select("record_id_l", "record_id_r")
                .join(t.withColumnsRenamed({"record_id": "record_id_l", "entity_id": "_e_l"}),
                      "record_id_l")
                .join(t.withColumnsRenamed({"record_id": "record_id_r", "entity_id": "_e_r"}),
                      "record_id_r"))
    if sample < 1.0:
        # Salted apart from the supervised matcher's hold-out hash: the same hash would make
        # the sampled pairs land in the hold-out far more often than its fraction says.
        bucket = F.pmod(F.xxhash64(F.lit("label-sample"), "record_id_l", "record_id_r",
                                   F.lit(seed)), F.lit(10_000))
        labelled = labelled.filter(bucket < F.lit(round(sample * 10_000)))
    return labelled.select("record_id_l", "record_id_r",
                           (F.col("_e_l") == F.col("_e_r")).alias("is_match"))
