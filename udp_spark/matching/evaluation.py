"""Accuracy against a truth mapping ``(record_id, entity_id)``: blocking and clustering.

Computed from contingency counts with aggregations only: no pair is materialized and
nothing data-sized reaches the driver (each function returns one small dict).
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


def blocking_metrics(pairs: DataFrame, truth: DataFrame, n_records: int) -> dict[str, float]:
    """Pair completeness, reduction ratio and pairs per true match of candidate ``pairs``.

    Args:
        pairs: ``(record_id_l, record_id_r)``.
        truth: ``(record_id, entity_id)`` for the records being blocked.
        n_records: number of records blocked (for the reduction ratio).
    """
    true_pairs = one_row(truth.groupBy("entity_id").count().select(
        F.sum(_pairs_of("count")).alias("t")))["t"] or 0.0
    t = truth.select("record_id", "entity_id")
    labelled = (pairs.join(t.withColumnsRenamed({"record_id": "record_id_l",
                                                  "entity_id": "e_l"}), "record_id_l")
                .join(t.withColumnsRenamed({"record_id": "record_id_r", "entity_id": "e_r"}),
                      "record_id_r"))
    row = one_row(labelled.agg(F.count("*").alias("n"),
                               F.sum((F.col("e_l") == F.col("e_r")).cast("long")).alias("tp")))
    n_pairs, found = float(pairs.count()), float(row["tp"] or 0)
    all_pairs = n_records * (n_records - 1) / 2
    # Clustering is transitive: a true pair never compared directly is still recoverable when
    # a chain of true candidate pairs joins them. This is the recall blocking allows.
    from udp_spark.graph import connected_components

    tp_edges = labelled.filter(F.col("e_l") == F.col("e_r")).select(
        F.col("record_id_l").alias("src"), F.col("record_id_r").alias("dst"))
    vertices = tp_edges.select(F.col("src").alias("id")).unionByName(
        tp_edges.select(F.col("dst").alias("id"))).distinct()
    comps = connected_components(vertices, tp_edges, backend="builtin")
    reachable = one_row(comps.groupBy("component").count().select(
        F.sum(_pairs_of("count")).alias("r")))["r"] or 0.0
    return {
        "candidate_pairs": n_pairs,
        "true_pairs": float(true_pairs),
        "true_pairs_found": found,
        "pair_completeness": _ratio(found, true_pairs),
        "reachable_pair_completeness": _ratio(float(reachable), true_pairs),
        "pair_quality": _ratio(found, n_pairs),
        "pairs_per_true_match": _ratio(n_pairs, found),
        "reduction_ratio": 1 - _ratio(n_pairs, all_pairs),
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
