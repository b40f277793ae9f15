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


def _scores(spark: SparkSession, rows: list[tuple[str, str, float, float]]) -> DataFrame:
    """Scored pairs with the comparison levels the conflict rule reads, all missing."""
    scores = spark.createDataFrame(rows, "record_id_l string, record_id_r string, "
                                   "match_weight double, match_probability double")
    for col in ("given_name", "date_of_birth", "email", "loyalty_id"):
        scores = scores.withColumn(col, F.lit(-1))
    return scores


def _resolved(records: DataFrame, scores: DataFrame, **options: DataFrame | None
              ) -> set[frozenset[str]]:
    """cluster_records at threshold 0.9 as sets of record ids."""
    from udp_spark.pipeline.resolve import cluster_records

    by: dict[str, set[str]] = {}
    for r in cluster_records(records, scores, 0.9, backend="builtin", **options).collect():
        by.setdefault(r["cluster_id"], set()).add(r["record_id"])
    return {frozenset(v) for v in by.values()}


def test_manual_decisions_override_the_matcher(spark: SparkSession) -> None:
    records = spark.createDataFrame([(r,) for r in "abcdef"], "record_id string")
    # a-b: the model is sure; c-d: the model says no; e-f: a model link, no decision.
    scores = _scores(spark, [
        ("a", "b", 9.0, 0.998), ("c", "d", -5.0, 0.03), ("e", "f", 8.0, 0.996)])
    # ("c", "x"): a decision about a record that is gone links nothing.
    manual = spark.createDataFrame([("a", "b", False), ("c", "d", True), ("c", "x", True)],
                                   "record_id_l string, record_id_r string, is_match boolean")

    def clusters(m: DataFrame | None) -> set[frozenset[str]]:
        return _resolved(records, scores, manual=m)

    assert clusters(None) == {frozenset("ab"), frozenset("c"), frozenset("d"), frozenset("ef")}
    assert clusters(manual) == {frozenset("a"), frozenset("b"), frozenset("cd"),
                                frozenset("ef")}


def test_two_entries_of_one_edition_are_never_one_customer(spark: SparkSession) -> None:
    """An electoral roll lists a father and his son of one name at one address in the same
    edition: their entries score as a match, but one edition lists a person once. A chain
    through another record (b - x - c) is split as well, though b and c were never scored;
    entries of different editions still join."""
    records = spark.createDataFrame([(r,) for r in ("a", "b", "c", "x", "y")],
                                    "record_id string")
    scores = _scores(spark, [
        ("a", "b", 20.0, 0.9999),  # same edition: father and son
        ("b", "x", 15.0, 0.999), ("c", "x", 12.0, 0.998),  # b, c: same edition, joined by x
        ("a", "y", 9.0, 0.99),  # a and y: other editions
    ])
    # x is not a register entry
    editions = spark.createDataFrame(
        [("a", "roll|2010"), ("b", "roll|2010"), ("c", "roll|2010"), ("y", "roll|2014")],
        "record_id string, edition string")

    def clusters(e: DataFrame | None) -> set[frozenset[str]]:
        return _resolved(records, scores, editions=e)

    assert clusters(None) == {frozenset("abcxy")}
    # a-b refused; b-x merges first (stronger), so c (b's edition) cannot follow x
    assert clusters(editions) == {frozenset("ay"), frozenset("bx"), frozenset("c")}


def test_an_edition_register_is_a_resolve_setting(spark: SparkSession) -> None:
    """Marking a source once_per_edition re-clusters (resolve's fingerprint) without
    standardizing the source again (its silver rows do not depend on it)."""
    from pathlib import Path

    from udp_spark.config import load_config
    from udp_spark.pipeline.context import StageContext
    from udp_spark.pipeline.resolve import resolve_fingerprint
    from udp_spark.pipeline.standardize import source_fingerprint

    cfg = load_config(Path(__file__).resolve().parents[1] / "conf" / "pipeline-registers.yaml")
    roll = cfg.sources["electoral_roll"]
    assert roll.once_per_edition and not cfg.sources["benefit_claims"].once_per_edition
    plain = roll.model_copy(update={"once_per_edition": False})
    off = cfg.model_copy(update={"sources": {**cfg.sources, "electoral_roll": plain}})
    on_ctx, off_ctx = StageContext(spark, cfg), StageContext(spark, off)
    assert source_fingerprint(on_ctx, roll) == source_fingerprint(off_ctx, plain)
    assert resolve_fingerprint(on_ctx) != resolve_fingerprint(off_ctx)
