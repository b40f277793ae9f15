"""Stable customer ids: unchanged clusters keep ids; merges and splits are events."""

from __future__ import annotations

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from udp_spark.matching.identity import assign_customer_ids


def _clusters(spark: SparkSession, rows: list[tuple[str, str]]) -> DataFrame:
    return spark.createDataFrame(rows, "record_id string, cluster_id string")


def _xref(clusters: DataFrame, ids: DataFrame) -> DataFrame:
    return clusters.join(ids, "cluster_id").select("record_id", "customer_id")


def _as_dict(df: DataFrame) -> dict[str, str]:
    return {r["record_id"]: r["customer_id"] for r in df.collect()}


def test_first_run_then_same_clusters_keep_ids(spark: SparkSession) -> None:
    c1 = _clusters(spark, [("a", "a"), ("b", "a"), ("c", "c")])
    ids1, ev1 = assign_customer_ids(c1, None, "run1")
    x1 = _xref(c1, ids1)
    m1 = _as_dict(x1)
    assert m1["a"] == m1["b"] != m1["c"]
    assert sorted(r["event_type"] for r in ev1.collect()) == ["created", "created"]
    # Same clusters, labelled differently by a later run: ids unchanged, no events.
    c2 = _clusters(spark, [("a", "b"), ("b", "b"), ("c", "c")])
    ids2, ev2 = assign_customer_ids(c2, x1, "run2")
    assert _as_dict(_xref(c2, ids2)) == m1
    assert ev2.count() == 0


def test_merge_keeps_larger_and_split_keeps_largest_part(spark: SparkSession) -> None:
    c1 = _clusters(spark, [("a", "a"), ("b", "a"), ("c", "c"), ("d", "d"), ("e", "d"),
                           ("f", "d")])
    ids1, _ = assign_customer_ids(c1, None, "run1")
    m1 = _as_dict(_xref(c1, ids1))
    # a,b,c merge (a,b's id survives: 2 records); d,e,f split into {d,e} and {f}
    c2 = _clusters(spark, [("a", "a"), ("b", "a"), ("c", "a"), ("d", "d"), ("e", "d"),
                           ("f", "f")])
    ids2, ev2 = assign_customer_ids(c2, _xref(c1, ids1), "run2")
    m2 = _as_dict(_xref(c2, ids2))
    assert m2["a"] == m2["b"] == m2["c"] == m1["a"]
    assert m2["d"] == m2["e"] == m1["d"]
    assert m2["f"] not in set(m1.values())
    events = {(r["event_type"], r["customer_id"], r["related_customer_id"])
              for r in ev2.collect()}
    assert events == {("merged", m1["c"], m1["a"]), ("split", m2["f"], m1["d"])}


def test_id_churn_separates_explained_from_unexplained_changes(spark: SparkSession) -> None:
    from udp_spark.matching.evaluation import id_churn

    schema = "record_id string, customer_id string"
    before = spark.createDataFrame(
        [("a", "A"), ("b", "B"), ("c", "C"), ("d", "D"), ("e", "E")], schema)
    # n1 joins a and b (B merged into A); c moved to D with no newcomer (unexplained);
    # n2 is a brand-new customer; e untouched.
    after = spark.createDataFrame(
        [("a", "A"), ("b", "A"), ("n1", "A"), ("c", "D"), ("d", "D"), ("e", "E"),
         ("n2", "N")], schema)
    assert id_churn(before, after) == {
        "new_records": 2.0, "clusters_touched": 2.0, "earlier_records": 5.0,
        "ids_changed": 2.0, "ids_changed_outside_touched": 1.0}


def test_manual_decisions_override_the_matcher(spark: SparkSession) -> None:
    from udp_spark.pipeline.resolve import cluster_records

    records = spark.createDataFrame([(r,) for r in "abcdef"], "record_id string")
    # a-b: the model is sure; c-d: the model says no; e-f: a model link, no decision.
    scores = spark.createDataFrame([
        ("a", "b", 9.0, 0.998), ("c", "d", -5.0, 0.03), ("e", "f", 8.0, 0.996),
    ], "record_id_l string, record_id_r string, match_weight double, match_probability double")
    for col in ("given_name", "date_of_birth", "email", "loyalty_id"):
        scores = scores.withColumn(col, F.lit(-1))
    # ("c", "x"): a decision about a record that is gone links nothing.
    manual = spark.createDataFrame([("a", "b", False), ("c", "d", True), ("c", "x", True)],
                                   "record_id_l string, record_id_r string, is_match boolean")

    def clusters(m: DataFrame | None) -> set[frozenset[str]]:
        got = cluster_records(records, scores, 0.9, backend="builtin", manual=m).collect()
        by: dict[str, set[str]] = {}
        for r in got:
            by.setdefault(r["cluster_id"], set()).add(r["record_id"])
        return {frozenset(v) for v in by.values()}

    assert clusters(None) == {frozenset("ab"), frozenset("c"), frozenset("d"), frozenset("ef")}
    assert clusters(manual) == {frozenset("a"), frozenset("b"), frozenset("cd"),
                                frozenset("ef")}
