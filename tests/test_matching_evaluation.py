"""Accuracy metrics on hand-checked toy clusterings."""

from __future__ import annotations

import pytest
from pyspark.sql import SparkSession

from udp_spark.matching.evaluation import blocking_metrics, cluster_metrics


def test_cluster_metrics_hand_computed(spark: SparkSession) -> None:
    # truth: A={1,2,3}, B={4,5}; prediction: {1,2}, {3,4,5}
    truth = spark.createDataFrame([("1", "A"), ("2", "A"), ("3", "A"), ("4", "B"), ("5", "B")],
                                  "record_id string, entity_id string")
    clusters = spark.createDataFrame([("1", "x"), ("2", "x"), ("3", "y"), ("4", "y"),
                                      ("5", "y")], "record_id string, cluster_id string")
    m = cluster_metrics(clusters, truth)
    # predicted pairs: 1 + 3 = 4; true pairs: 3 + 1 = 4; correct: (1,2), (4,5) = 2
    assert m["pairwise_precision"] == pytest.approx(0.5)
    assert m["pairwise_recall"] == pytest.approx(0.5)
    # B-cubed precision: records 1,2 -> 1; 3 -> 1/3; 4,5 -> 2/3  => (2 + 1/3 + 4/3) / 5
    assert m["bcubed_precision"] == pytest.approx((2 + 1 / 3 + 4 / 3) / 5)
    # B-cubed recall: 1,2 -> 2/3; 3 -> 1/3; 4,5 -> 1 => (4/3 + 1/3 + 2) / 5
    assert m["bcubed_recall"] == pytest.approx((4 / 3 + 1 / 3 + 2) / 5)
    assert m["overmerged_clusters"] == 1 and m["undermerged_entities"] == 1
    assert m["clusters_found"] == 2 and m["largest_cluster"] == 3


def test_perfect_clustering_scores_one(spark: SparkSession) -> None:
    truth = spark.createDataFrame([("1", "A"), ("2", "A"), ("3", "B")],
                                  "record_id string, entity_id string")
    clusters = truth.withColumnRenamed("entity_id", "cluster_id")
    m = cluster_metrics(clusters, truth)
    assert m["pairwise_f1"] == 1.0 and m["bcubed_f1"] == 1.0


def test_blocking_metrics(spark: SparkSession) -> None:
    truth = spark.createDataFrame([("a", "P"), ("b", "P"), ("c", "P"), ("d", "Q")],
                                  "record_id string, entity_id string")
    schema = "record_id_l string, record_id_r string"
    pairs = spark.createDataFrame([("a", "b"), ("a", "d")], schema)
    m = blocking_metrics(pairs, truth, n_records=4)
    assert m["true_pairs"] == 3 and m["true_pairs_found"] == 1
    assert m["pair_completeness"] == pytest.approx(1 / 3)
    assert m["reachable_pair_completeness"] == pytest.approx(1 / 3)  # c is unreachable
    chain = spark.createDataFrame([("a", "b"), ("b", "c")], schema)
    m2 = blocking_metrics(chain, truth, n_records=4)
    assert m2["pair_completeness"] == pytest.approx(2 / 3)
    assert m2["reachable_pair_completeness"] == pytest.approx(1.0)  # a-c through b
    assert m["reduction_ratio"] == pytest.approx(1 - 2 / 6)
    assert m["pairs_per_true_match"] == 2
    # The same pass against a linkable truth that holds c apart (it shares nothing): one
    # linkable pair, a-b, found; the chain's a-c and b-c are true but not linkable.
    linkable = spark.createDataFrame([("a", "P#1"), ("b", "P#1"), ("c", "P#2"), ("d", "Q")],
                                     "record_id string, entity_id string")
    m3 = blocking_metrics(chain, truth, n_records=4, linkable=linkable)
    assert {k: v for k, v in m3.items() if not k.startswith("linkable_")} == m2
    assert (m3["linkable_true_pairs"], m3["linkable_pair_completeness"],
            m3["linkable_reachable_pair_completeness"]) == (1, 1.0, 1.0)
    m4 = blocking_metrics(pairs.filter("record_id_r = 'd'"), truth, n_records=4,
                          linkable=linkable)
    assert (m4["linkable_pair_completeness"], m4["linkable_reachable_pair_completeness"]) == (
        0.0, 0.0)
