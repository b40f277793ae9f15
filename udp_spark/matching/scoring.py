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

from udp_spark import io
from udp_spark.matching.comparisons import (
    comparison_vectors,
    comparisons_named,
    pair_frame,
    record_time,
)
from udp_spark.matching.fellegi_sunter import MISSING, FSModel
from udp_spark.matching.supervised import SupervisedMatcher, supervised_scores

Transform = Callable[[DataFrame], DataFrame]

TF_FLOOR = 1e-6  # frequencies below this (very rare values) are treated as this rare


def tf_table(records: DataFrame, column: str, source: str = "source") -> DataFrame:
    """``(value, tf)``: how often a record of *another* person holds each value, as a share of
    the holders of one (0 for a value no one else holds).

    A pair agreeing on a value is weighed against the chance that a non-match agrees on it,
    so the holders the pair is about are not counted: each source counts its holders less
    one, as :func:`joint_tf_table` does, and a holder is a person as far as the source
    tells them apart (:func:`person_key`), not a record. Counting every holder made an
    e-mail or a name that only one person holds look two or three times as common as it
    is. :func:`weight_columns` says what a value no one else holds weighs.
    """
    present = records.filter(F.col(column).isNotNull())
    return _other_holders(present, F.col(column).alias("value"), source)


def person_key(records: DataFrame) -> Column:
    """Who a record is, as far as one source tells people apart without matching: its date
    of birth, else its address, else the record itself.

    A source may hold a person many times (a record per year, per order, per census):
    those records share a name with the same birth date or address, and counted as holders
    of the name they made the person their own namesakes (an exact full name weighed 2.5
    instead of 8.8 where a source held ten records per person). Two records of one name,
    birth date and source are taken as one holder; without a birth date or an address,
    every record is its own holder (nothing says they are one person) unless its source
    knows dated or addressed holders of the value (:func:`_other_holders`).
    """
    cols = set(records.columns)
    parts: list[Column] = []
    if "date_of_birth" in cols:
        parts.append(F.concat(F.lit("d:"), F.col("date_of_birth").cast("string")))
    address = [c for c in ("street_norm", "postcode") if c in cols]
    if address:
        text = F.concat_ws(" ", *[F.col(c) for c in address])
        parts.append(F.when(text != F.lit(""), F.concat(F.lit("a:"), text)))
    parts.append(F.concat(F.lit("r:"), F.col("record_id").cast("string"))
                 if "record_id" in cols else
                 F.concat(F.lit("n:"), F.monotonically_increasing_id().cast("string")))
    return F.coalesce(*parts)


def _keyed(person: Column) -> Column:
    """A :func:`person_key` that tells people apart (a birth date or an address), not the
    record itself."""
    return person.startswith("d:") | person.startswith("a:")


def _other_holders(present: DataFrame, key: Column, source: str,
                   at_least: int = 0, *, over_time: bool = False) -> DataFrame:
    """``(value, tf)``: per ``key`` value, its holders (:func:`person_key`) in each source
    less one, summed, as a share of all holders of any value; values with fewer than
    ``at_least`` such holders left out.

    ``over_time``: of a value's records without a birth date, a source holds as many people
    as it shows at once: the most distinct holders in any one year of :func:`record_time`
    (records without a time are one year). A person lives at one address at a time, so a
    register that lists them every few years at each home they had holds them once, not
    once per home; two holders seen in the same year are two people. Holders with a birth
    date are counted over all time (it tells them apart whenever they were seen).
    """
    person = person_key(present).alias("_person")
    if over_time and "date_of_birth" in present.columns:
        dated = F.col("date_of_birth").isNotNull()
    else:
        dated = F.lit(False)
    # "dob": the birth-date holders, counted over all time; else the record's year
    period = (F.when(dated, F.lit("dob"))
              .otherwise(F.coalesce(F.year(record_time(present)).cast("string"), F.lit("-")))
              if over_time else F.lit("dob"))
    per_period = (present.select(F.col(source), key, period.alias("_period"), person)
                  .distinct()
                  .groupBy(source, "value", "_period", _keyed(F.col("_person")).alias("_keyed"))
                  .agg(F.count("*").alias("_n")))
    by_dob = F.col("_period") == F.lit("dob")

    def count(keyed: Column) -> Column:
        return (F.coalesce(F.sum(F.when(by_dob & keyed, F.col("_n"))), F.lit(0))
                + F.coalesce(F.max(F.when(~by_dob & keyed, F.col("_n"))), F.lit(0)))

    # Records with neither birth date nor address are holders of their own only where the
    # source knows no one else of the value: beside holders it can tell apart, such a record
    # is most likely one of them (a claim keyed without its birth date).
    holders = (per_period.groupBy(source, "value")
               .agg(count(F.col("_keyed")).alias("_k"), count(~F.col("_keyed")).alias("_u"))
               .select(source, "value",
                       F.when(F.col("_k") > 0, F.col("_k")).otherwise(F.col("_u")).alias("n")))
    others = (holders.groupBy("value").agg(F.sum(F.col("n") - 1).alias("others"))
              .filter(F.col("others") >= at_least))
    total = holders.agg(F.sum("n").alias("total"))
    return others.crossJoin(total).select(
        "value", (F.col("others") / F.col("total")).alias("tf"))




def joint_tf_table(records: DataFrame, columns: tuple[str, str],
                   source: str = "source") -> DataFrame:
    """``(value, tf)`` for value pairs (``"given|family"``): how often a record of *another*
    person holds both, where that is more than never.

    Given and family names are not independent (Spanish first names come with Spanish
    family names), so the product of their frequencies makes a common full name look rarer
    than it is, and namesakes look like matches more as the data grows. Counting the full
    name itself would count one person's duplicates as namesakes, so each source counts
    its holders (:func:`person_key`: records of one name and birth date or address are one
    holder) less one: the holder the pair is about is not another person. Values no other
    person holds are left out (no adjustment).

    Records without a birth date are counted by the most holders seen in one year
    (``over_time`` in :func:`_other_holders`): an electoral roll lists a person at each
    home they had, and counting each home made their own full name look held by two to
    four people (on 1,500 people with register sources, name-only pairs of one person
    scored p 0.6 to 0.8 where 92% to 98% were matches). The single-name tables count every
    holder as before: counted over time they let given-name agreement outweigh a
    disagreeing family name (pairwise precision 0.963 -> 0.957 there).
    """
    a, b = columns
    present = records.filter(F.col(a).isNotNull() & F.col(b).isNotNull())
    key = F.concat_ws("|", F.col(a), F.col(b)).alias("value")
    return _other_holders(present, key, source, at_least=1, over_time=True)


def tf_tables(records: DataFrame, model: FSModel) -> dict[str, DataFrame]:
    """Every term-frequency table ``model`` uses, computed from ``records``."""
    tables = {c: tf_table(records, col) for c, col in model.tf_columns.items()}
    for name, (first, second) in model.joint_tf.items():
        tables[name] = joint_tf_table(
            records, (model.tf_columns[first], model.tf_columns[second]))
    return tables


def _weight_map(model: FSModel, comparison: str) -> Column:
    pairs = []
    for level in model.levels[comparison]:
        w = 0.0 if level == MISSING else model.weight(comparison, level)
        pairs += [F.lit(level), F.lit(w)]
    return F.create_map(*pairs)


def weight_columns(model: FSModel, tf: dict[str, DataFrame] | None = None) -> Transform:
    """vectors -> adds ``w_<comparison>`` (log2 Bayes factor of the pair's level).

    ``tf``: comparison name -> its :func:`tf_table` (a comparison in ``model.shared_tf``
    reads the table named there); the top level of those comparisons gets
    ``log2(m_top / tf(value))``. A value no one else holds (or one the table does not hold:
    a table frozen before the record arrived) counts as the rarer of one other holder and the
    level's u: an e-mail address is shared by chance far less often than once in the data
    (u among non-matches 1.7e-6 at 21,830 records, one holder 6.7e-5), a first name is not.

    A joint table (:func:`joint_tf_table`, ``model.joint_tf``) lowers the second
    comparison's weight when both agree exactly on values that occur together more often
    than their separate frequencies say: by ``log2(tf_a * tf_b / tf_joint)``, never raising it.
    """

    def transform(vectors: DataFrame) -> DataFrame:
        out = vectors
        freqs: dict[str, Column] = {}
        for c in model.comparisons:
            base = F.element_at(_weight_map(model, c), F.col(c))
            tf_col = f"tf_value_{c}"
            name = model.shared_tf.get(c, c)
            if tf and name in tf and tf_col in vectors.columns and c not in model.not_estimated:
                top = model.top_levels[c]
                m_top = max(model.m[c][top], 1e-12)
                table = F.broadcast(tf[name].select(F.col("value").alias(tf_col),
                                                    F.col("tf").alias(f"_tf_{c}")))
                u_top = F.lit(model.u[c][top])
                rarest = F.broadcast(tf[name].filter(F.col("tf") > 0).agg(
                    F.least(F.min("tf"), u_top).alias(f"_rarest_{c}")))
                out = out.join(table, tf_col, "left").crossJoin(rarest)
                # least() skips the null min() of a table without a positive frequency
                freq = F.greatest(F.coalesce(F.col(f"_tf_{c}"), F.lit(0.0)),
                                  F.col(f"_rarest_{c}"), F.lit(TF_FLOOR))
                out = out.withColumn(f"_freq_{c}", freq).drop(f"_tf_{c}", f"_rarest_{c}")
                freqs[c] = F.col(f"_freq_{c}")
                adj = F.log2(F.lit(m_top) / freqs[c])
                base = F.when(F.col(c) == top, adj).otherwise(base)
            out = out.withColumn(f"w_{c}", base)
        for name, (a, b) in model.joint_tf.items():
            if not tf or name not in tf or a not in freqs or b not in freqs:
                continue
            key = F.concat_ws("|", F.col(f"tf_value_{a}"), F.col(f"tf_value_{b}"))
            joint = F.broadcast(tf[name].select(F.col("value").alias(f"_key_{name}"),
                                                F.col("tf").alias(f"_joint_{name}")))
            out = out.withColumn(f"_key_{name}", key).join(joint, f"_key_{name}", "left")
            both_exact = ((F.col(a) == model.top_levels[a]) & (F.col(b) == model.top_levels[b])
                          & F.col(f"_joint_{name}").isNotNull())
            penalty = F.least(F.lit(0.0), F.log2(
                freqs[a] * freqs[b] / F.greatest(F.col(f"_joint_{name}"), F.lit(TF_FLOOR))))
            out = out.withColumn(f"w_{b}", F.when(both_exact, F.col(f"w_{b}") + penalty)
                                 .otherwise(F.col(f"w_{b}"))).drop(f"_key_{name}",
                                                                   f"_joint_{name}")
        return out.drop(*[f"_freq_{c}" for c in freqs])

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


def score_pairs(records: DataFrame, pairs: DataFrame, model: FSModel | SupervisedMatcher,
                *, checkpoint: bool = False, tf: dict[str, DataFrame] | None = None
                ) -> DataFrame:
    """Pairs -> levels, per-comparison weights, match weight and probability.

    ``checkpoint``: materialize the comparison vectors first (a supervised matcher reads them
    twice: distinct vectors to score, then all of them to join the scores back).
    ``tf``: term-frequency tables (``udp_spark.pipeline.score.frozen_tf_tables``);
    computed from ``records`` when not given.
    """
    comps = comparisons_named(model.comparisons, model.comparison_settings)
    vectors = pair_frame(records, pairs).transform(comparison_vectors(comps))
    if isinstance(model, SupervisedMatcher):
        if checkpoint:
            vectors = vectors.transform(io.checkpoint)
        return vectors.transform(supervised_scores(model))
    if tf is None:
        tf = tf_tables(records, model)
    return vectors.transform(weight_columns(model, tf)).transform(score(model))
