"""Accuracy against a truth mapping ``(record_id, entity_id)``: blocking and clustering.

Computed from contingency counts with aggregations only: nothing data-sized reaches the
driver (each function returns one small dict); the blocking figures cache the labelled
candidate pairs while they are taken.
"""

from __future__ import annotations

from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from udp_spark.io import one_row


def _pairs_of(n: str) -> F.Column:
    return F.col(n).cast("double") * (F.col(n).cast("double") - 1) / 2


def _ratio(a: float, b: float) -> float:
    return a / b if b else 0.0


def _f1(p: float, r: float) -> float:
    return 2 * p * r / (p + r) if p + r else 0.0


def _true_pairs(truth: DataFrame, entity: str = "entity_id") -> float:
    return float(one_row(truth.groupBy(entity).count().select(
        F.sum(_pairs_of("count")).alias("t")))["t"] or 0.0)


def _reachable_pairs(labelled: DataFrame, left: str, right: str) -> float:
    """True pairs joined by a chain of true candidate pairs (``left`` = ``right``): the
    recall clustering can reach, since it is transitive."""
    from udp_spark.graph import connected_components

    tp_edges = labelled.filter(F.col(left) == F.col(right)).select(
        F.col("record_id_l").alias("src"), F.col("record_id_r").alias("dst"))
    vertices = tp_edges.select(F.col("src").alias("id")).unionByName(
        tp_edges.select(F.col("dst").alias("id"))).distinct()
    comps = connected_components(vertices, tp_edges, backend="auto")
    return float(one_row(comps.groupBy("component").count().select(
        F.sum(_pairs_of("count")).alias("r")))["r"] or 0.0)


def blocking_metrics(pairs: DataFrame, truth: DataFrame, n_records: int, *,
                     linkable: DataFrame | None = None) -> dict[str, float]:
    """Pair completeness, reduction ratio and pairs per true match of candidate ``pairs``.

    Args:
        pairs: ``(record_id_l, record_id_r)``.
        truth: ``(record_id, entity_id)`` for the records being blocked.
        n_records: number of records blocked (for the reduction ratio).
        linkable: :func:`linkable_truth` of the same records: adds ``linkable_true_pairs``,
            ``linkable_pair_completeness`` and ``linkable_reachable_pair_completeness``,
            from the same pass over the pairs.
    """
    true_pairs = _true_pairs(truth)
    t = truth.select("record_id", "entity_id")
    if linkable is not None:
        t = t.join(linkable.select("record_id", F.col("entity_id").alias("link_id")),
                   "record_id", "left")
    labelled = (pairs.select("record_id_l", "record_id_r")
                .join(t.withColumnsRenamed({c: f"{c}_l" for c in t.columns}), "record_id_l")
                .join(t.withColumnsRenamed({c: f"{c}_r" for c in t.columns}), "record_id_r")
                .persist())  # counted, then its true pairs clustered (once per truth)
    try:
        found_cols = [F.sum((F.col("entity_id_l") == F.col("entity_id_r")).cast("long"))
                      .alias("tp")]
        if linkable is not None:
            found_cols.append(F.sum(F.coalesce(F.col("link_id_l") == F.col("link_id_r"),
                                               F.lit(False)).cast("long")).alias("ltp"))
        row = one_row(labelled.agg(*found_cols))
        n_pairs, found = float(pairs.count()), float(row["tp"] or 0)
        all_pairs = n_records * (n_records - 1) / 2
        out = {
            "candidate_pairs": n_pairs,
            "true_pairs": true_pairs,
            "true_pairs_found": found,
            "pair_completeness": _ratio(found, true_pairs),
            "reachable_pair_completeness": _ratio(
                _reachable_pairs(labelled, "entity_id_l", "entity_id_r"), true_pairs),
            "pair_quality": _ratio(found, n_pairs),
            "pairs_per_true_match": _ratio(n_pairs, found),
            "reduction_ratio": 1 - _ratio(n_pairs, all_pairs),
        }
        if linkable is not None:
            link_pairs = _true_pairs(linkable)
            out.update({
                "linkable_true_pairs": link_pairs,
                "linkable_pair_completeness": _ratio(float(row["ltp"] or 0), link_pairs),
                "linkable_reachable_pair_completeness": _ratio(
                    _reachable_pairs(labelled, "link_id_l", "link_id_r"), link_pairs),
            })
        return out
    finally:
        labelled.unpersist()


def _shared_evidence() -> F.Column:
    """Two records share an exact identifying value (standardized): email, a phone number,
    loyalty id, family name with first name (or its nickname or initial), date of birth,
    postcode or street, or first name with date of birth."""
    def same(c: str) -> F.Column:
        return F.col(f"l.{c}") == F.col(f"r.{c}")

    phones_l = F.array_compact(F.array("l.phone_e164", "l.mobile_e164"))
    phones_r = F.array_compact(F.array("r.phone_e164", "r.mobile_e164"))
    first = (same("given_name_norm")
             | F.arrays_overlap("l.given_name_aliases", "r.given_name_aliases")
             | (F.substring("l.given_name_norm", 1, 1) == F.substring("r.given_name_norm", 1, 1)))
    return F.coalesce(
        same("email_canonical") | F.arrays_overlap(phones_l, phones_r) | same("loyalty_id")
        | same("family_name_norm") & (first | same("date_of_birth") | same("postcode")
                                      | same("street_norm"))
        | same("given_name_norm") & same("date_of_birth"), F.lit(False))


LINKABLE_COLUMNS = ("record_id", "given_name_norm", "given_name_aliases", "family_name_norm",
                    "email_canonical", "phone_e164", "mobile_e164", "loyalty_id",
                    "date_of_birth", "postcode", "street_norm")


def linkable_truth(records: DataFrame, truth: DataFrame) -> DataFrame:
    """The truth as far as the data can show it: ``(record_id, entity_id)`` where each true
    entity is split into the groups of its records joined, directly or through each other,
    by shared exact evidence (see :func:`_shared_evidence`).

    Sparse sources hold records that share nothing with the rest of their person's records
    (a till loyalty card no other system knows, a newsletter address used nowhere else).
    No matcher can link those, so recall against this truth is the recall that is
    attainable, and ``linkable true pairs / true pairs`` is the ceiling of pairwise recall.
    """
    t = truth.select("record_id", "entity_id").join(
        records.select(*LINKABLE_COLUMNS), "record_id")
    edges = (t.alias("l").join(t.alias("r"), F.col("l.entity_id") == F.col("r.entity_id"))
             .filter(F.col("l.record_id") < F.col("r.record_id"))
             .filter(_shared_evidence())
             .select(F.col("l.record_id").alias("src"), F.col("r.record_id").alias("dst")))
    from udp_spark.graph import connected_components

    comps = connected_components(t.select(F.col("record_id").alias("id")), edges,
                                 backend="auto")
    return t.join(comps.withColumnRenamed("id", "record_id"), "record_id", "left").select(
        "record_id", F.concat_ws("#", "entity_id", F.coalesce("component", "record_id"))
        .alias("entity_id"))


def attainable_metrics(full: dict[str, float], clusters: DataFrame, truth: DataFrame,
                       linkable: DataFrame) -> dict[str, float]:
    """Precision against the truth, recall against :func:`linkable_truth`, and their F1s,
    plus ``linkable_pair_share`` (the ceiling of pairwise recall).

    Args:
        full: :func:`cluster_metrics` of ``clusters`` against ``truth`` (already computed
            by the caller, so its precision is not computed twice).
    """
    part = cluster_metrics(clusters, linkable)
    true_pairs, linkable_pairs = _true_pairs(truth), _true_pairs(linkable)
    p, r = full["pairwise_precision"], part["pairwise_recall"]
    bp, br = full["bcubed_precision"], part["bcubed_recall"]
    return {
        "linkable_pair_share": _ratio(float(linkable_pairs), float(true_pairs)),
        "attainable_pairwise_recall": r, "attainable_pairwise_f1": _f1(p, r),
        "attainable_bcubed_recall": br, "attainable_bcubed_f1": _f1(bp, br),
    }


def cluster_metrics(clusters: DataFrame, truth: DataFrame) -> dict[str, float]:
    """Pairwise and B-cubed precision/recall/F1, and over/under-merging of ``clusters``.

    Args:
        clusters: ``(record_id, cluster_id)`` for every record.
        truth: ``(record_id, entity_id)``; only records present in both are scored.
    """
    joined = clusters.select("record_id", "cluster_id").join(
        truth.select("record_id", "entity_id"), "record_id")
    cells = joined.groupBy("cluster_id", "entity_id").agg(F.count("*").alias("n_ce"))
    c_size = joined.groupBy("cluster_id").agg(F.count("*").alias("n_c"),
                                              F.countDistinct("entity_id").alias("k_c"))
    e_size = joined.groupBy("entity_id").agg(F.count("*").alias("n_e"),
                                             F.countDistinct("cluster_id").alias("k_e"))
    cells = cells.join(c_size, "cluster_id").join(e_size, "entity_id")
    agg = one_row(cells.agg(
        F.sum("n_ce").alias("n"),
        F.sum(_pairs_of("n_ce")).alias("tp"),
        F.sum(F.col("n_ce") * F.col("n_ce") / F.col("n_c")).alias("b3p"),
        F.sum(F.col("n_ce") * F.col("n_ce") / F.col("n_e")).alias("b3r"),
    ))
    pred = one_row(c_size.agg(F.sum(_pairs_of("n_c")).alias("p"), F.count("*").alias("k"),
                      F.sum((F.col("k_c") > 1).cast("long")).alias("over"),
                      F.max("n_c").alias("largest")))
    true = one_row(e_size.agg(F.sum(_pairs_of("n_e")).alias("t"), F.count("*").alias("k"),
                      F.sum((F.col("k_e") > 1).cast("long")).alias("under")))
    n = float(agg["n"] or 0)
    tp = float(agg["tp"] or 0)
    p, r = _ratio(tp, float(pred["p"] or 0)), _ratio(tp, float(true["t"] or 0))
    bp, br = _ratio(float(agg["b3p"] or 0), n), _ratio(float(agg["b3r"] or 0), n)
    return {
        "records": n,
        "pairwise_precision": p, "pairwise_recall": r, "pairwise_f1": _f1(p, r),
        "bcubed_precision": bp, "bcubed_recall": br, "bcubed_f1": _f1(bp, br),
        "clusters_found": float(pred["k"]), "clusters_true": float(true["k"]),
        "overmerged_clusters": float(pred["over"] or 0),
        "undermerged_entities": float(true["under"] or 0),
        "largest_cluster": float(pred["largest"] or 0),
    }


def id_churn(before: DataFrame, after: DataFrame) -> dict[str, float]:
    """What an incremental run did to customer ids.

    Args:
        before: ``(record_id, customer_id)`` after the earlier run.
        after: the same after the run that added new records.

    A cluster is *touched* when it holds a new record, and so is every earlier cluster with a
    record in a touched cluster (it was merged or split by the newcomers). Returns the new
    records, the touched clusters, the earlier records whose id changed, and how many of
    those lie outside every touched cluster (churn the new data does not explain).
    """
    b = before.select("record_id", F.col("customer_id").alias("old_id"))
    a = after.select("record_id", F.col("customer_id").alias("new_id"))
    new = a.join(b, "record_id", "left_anti")
    touched_new = new.select("new_id").distinct()
    touched_old = a.join(touched_new, "new_id").join(b, "record_id").select("old_id").distinct()
    both = a.join(b, "record_id")
    changed = both.filter(F.col("old_id") != F.col("new_id"))
    explained = (changed.join(touched_new.withColumn("_tn", F.lit(True)), "new_id", "left")
                 .join(touched_old.withColumn("_to", F.lit(True)), "old_id", "left"))
    row = one_row(explained.agg(
        F.count("*").alias("changed"),
        F.sum((F.col("_tn").isNull() & F.col("_to").isNull()).cast("long")).alias("outside")))
    return {
        "new_records": float(new.count()),
        "clusters_touched": float(touched_new.count()),
        "earlier_records": float(b.count()),
        "ids_changed": float(row["changed"] or 0),
        "ids_changed_outside_touched": float(row["outside"] or 0),
    }
