"""Which record pairs a clerk should label next (active learning for the matcher).

A label teaches the model most where it is unsure (match probability near 0.5) and where
many pairs look alike (the same comparison levels: one decision says something about all of
them). :func:`pick_for_review` ranks the scored, not yet labelled pairs by uncertainty and
spreads the picks over comparison patterns: every pattern in the uncertain band gets its
most uncertain pair before any pattern gets a second, patterns with more pairs first
(uncertainty sampling with diversity, weighted by density). The result is deterministic for
a seed.
"""

from __future__ import annotations

import html
import math
from collections.abc import Mapping, Sequence
from typing import Any

from pyspark.sql import DataFrame, Window
from pyspark.sql import functions as F

# The party-record fields a reviewer sees side by side (silver.party_records columns).
SHOWN_FIELDS = ("source", "source_key", "given_name", "middle_name", "family_name", "email",
                "phone_e164", "mobile_e164", "street", "city", "postcode", "country",
                "date_of_birth", "birth_year", "gender", "loyalty_id")


def uncertainty(probability: F.Column) -> F.Column:
    """1 at p = 0.5, 0 at p = 0 or 1 (linear in the distance from 0.5)."""
    return 1.0 - 2.0 * F.abs(probability - F.lit(0.5))


def pick_for_review(scores: DataFrame, comparisons: Sequence[str], n: int, *,
                    labelled: DataFrame | None = None, min_uncertainty: float = 0.1,
                    seed: int = 42) -> DataFrame:
    """The ``n`` pairs of ``scores`` most worth a clerk's decision, best first.

    Args:
        scores: ``silver.match_scores`` rows of one model version (``record_id_l``,
            ``record_id_r``, one level column per comparison, ``match_probability``).
        comparisons: the model's comparison columns: together they are a pair's pattern.
        labelled: pairs already labelled (``record_id_l``, ``record_id_r``): never picked.
        min_uncertainty: pairs below it are left out (0.1: p between 0.05 and 0.95).
        seed: breaks ties between equally uncertain pairs.

    Returns:
        ``record_id_l, record_id_r, match_probability, uncertainty, pattern,
        pattern_pairs, review_rank`` (1 = first to review).
    """
    if n <= 0:
        raise ValueError(f"n must be positive, got {n}")
    pattern = F.concat_ws(",", *[F.concat(F.lit(f"{c}="), F.coalesce(
        F.col(c).cast("string"), F.lit("null"))) for c in comparisons])
    pairs = scores.select("record_id_l", "record_id_r", "match_probability",
                          pattern.alias("pattern"))
    if labelled is not None:
        pairs = pairs.join(labelled.select("record_id_l", "record_id_r").distinct(),
                           ["record_id_l", "record_id_r"], "left_anti")
    pairs = pairs.withColumn("uncertainty", uncertainty(F.col("match_probability")))
    by_pattern = Window.partitionBy("pattern")
    tie = F.xxhash64(F.lit(seed), "record_id_l", "record_id_r")
    ranked = (pairs
              .withColumn("pattern_pairs", F.count(F.lit(1)).over(by_pattern))
              .filter(F.col("uncertainty") >= min_uncertainty)
              .withColumn("_round", F.row_number().over(by_pattern.orderBy(
                  F.desc("uncertainty"), tie)))
              # a pattern's weight: its best uncertainty, more for a denser pattern
              .withColumn("_weight", F.max("uncertainty").over(by_pattern)
                          * F.log1p(F.col("pattern_pairs"))))
    order = [F.col("_round"), F.desc("_weight"), F.desc("uncertainty"), F.col("pattern"),
             tie]
    picked = ranked.orderBy(*order).limit(n)
    # at most n rows: one window partition is fine
    everything = Window.partitionBy(F.lit(0)).orderBy(*order)
    return (picked.withColumn("review_rank", F.row_number().over(everything))
            .select("record_id_l", "record_id_r", "match_probability", "uncertainty",
                    "pattern", "pattern_pairs", "review_rank"))


def review_rows(picked: DataFrame, records: DataFrame) -> DataFrame:
    """The picked pairs with both records' :data:`SHOWN_FIELDS` (``a_<field>``,
    ``b_<field>``) and an empty ``is_match`` for the clerk: the CSV ``udp labels import``
    reads back (``record_id_a,record_id_b,is_match``; other columns are ignored)."""
    shown = [f for f in SHOWN_FIELDS if f in records.columns]
    side = {s: records.select(F.col("record_id").alias(f"record_id_{s}"), *[
        F.col(f).cast("string").alias(f"{s}_{f}") for f in shown]) for s in ("a", "b")}
    return (picked
            .withColumnRenamed("record_id_l", "record_id_a")
            .withColumnRenamed("record_id_r", "record_id_b")
            .join(side["a"], "record_id_a", "left").join(side["b"], "record_id_b", "left")
            .select("review_rank", "record_id_a", "record_id_b",
                    F.lit(None).cast("string").alias("is_match"),
                    F.round("match_probability", 4).alias("match_probability"),
                    "pattern", "pattern_pairs", *[f"{s}_{f}" for f in shown for s in "ab"])
            .orderBy("review_rank"))


def review_html(rows: Sequence[Mapping[str, Any]], level_labels: Mapping[str, Mapping[int, str]],
                *, title: str = "udp-spark: pairs to review") -> str:
    """A static page: per pair the two records side by side and the comparison levels the
    model saw, with an empty decision column to copy into the CSV."""
    def esc(v: object) -> str:
        return "" if v is None else html.escape(str(v))

    out = [f"<!doctype html><html><head><meta charset='utf-8'><title>{esc(title)}</title>",
           "<style>body{font-family:sans-serif;margin:2em}table{border-collapse:collapse;"
           "margin-bottom:2em}td,th{border:1px solid #ccc;padding:4px 8px;text-align:left}"
           "th{background:#f3f3f3}.diff{background:#fff3cd}.lv{color:#555;font-size:90%}"
           "</style></head><body>", f"<h1>{esc(title)}</h1>",
           f"<p>{len(rows)} pairs, most worth a decision first. Write yes or no in the "
           "<code>is_match</code> column of the CSV beside this page, then run "
           "<code>udp labels import &lt;csv&gt;</code>.</p>"]
    for r in rows:
        out.append(f"<h2>#{esc(r['review_rank'])}: {esc(r['record_id_a'])} / "
                   f"{esc(r['record_id_b'])}, match probability {esc(r['match_probability'])}"
                   f" ({esc(r['pattern_pairs'])} scored pairs share these levels)</h2>")
        out.append("<table><tr><th>field</th><th>A</th><th>B</th></tr>")
        for f in SHOWN_FIELDS:
            a, b = r.get(f"a_{f}"), r.get(f"b_{f}")
            if a is None and b is None:
                continue
            cls = " class='diff'" if a != b else ""
            out.append(f"<tr{cls}><td>{esc(f)}</td><td>{esc(a)}</td><td>{esc(b)}</td></tr>")
        out.append("</table><table><tr><th>comparison</th><th>level</th></tr>")
        for item in str(r["pattern"]).split(","):
            name, _, level = item.partition("=")
            label = (level_labels.get(name, {}).get(int(level), level)
                     if level.lstrip("-").isdigit() else level)
            out.append(f"<tr><td>{esc(name)}</td><td class='lv'>{esc(label)}</td></tr>")
        out.append("</table>")
    out.append("</body></html>")
    return "\n".join(out)


def expected_gain(uncertainties: Sequence[float]) -> float:
    """Sum of the picked pairs' binary entropies (bits): how much the batch can teach."""
    def h(u: float) -> float:
        p = 0.5 - (1.0 - u) / 2.0
        return 0.0 if p <= 0.0 else -(p * math.log2(p) + (1 - p) * math.log2(1 - p))
    return sum(h(u) for u in uncertainties)
