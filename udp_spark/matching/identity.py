"""Stable customer ids across runs.

A new cluster keeps the ``customer_id`` of the earlier cluster with which it shares most
records. When earlier clusters merge, the id with most shared records survives and the others
are recorded as ``merged`` into it; when an earlier cluster splits, its id stays on the part
holding most of its records and the other parts get new ids (``split`` events). A new id is
derived from the cluster's smallest record id and the run, so it is deterministic.
"""

from __future__ import annotations

from pyspark.sql import DataFrame
from pyspark.sql import functions as F
from pyspark.sql.window import Window

EVENT_COLUMNS = ("event_type", "customer_id", "related_customer_id", "records")


def assign_customer_ids(clusters: DataFrame, previous: DataFrame | None,
                        run_id: str) -> tuple[DataFrame, DataFrame]:
    """Map this run's clusters to customer ids.

    Args:
        clusters: ``(record_id, cluster_id)`` for every record.
        previous: the earlier ``(record_id, customer_id)`` mapping, or None on the first run.
        run_id: this run (salts new ids).

    Returns:
        ``(cluster_id, customer_id)`` for every cluster, and the identity events
        ``(event_type, customer_id, related_customer_id, records)``: created, merged, split.
    """
    sizes = clusters.groupBy("cluster_id").agg(F.count("*").alias("records"))
    new_id = F.concat(F.lit("C"), F.substring(F.sha2(F.concat_ws("|", F.col("cluster_id"),
                                                                  F.lit(run_id)), 256), 1, 15))
    if previous is None:
        ids = sizes.select("cluster_id", new_id.alias("customer_id"), "records")
        events = ids.select(F.lit("created").alias("event_type"), "customer_id",
                            F.lit(None).cast("string").alias("related_customer_id"), "records")
        return ids.select("cluster_id", "customer_id"), events

    overlap = (clusters.join(previous.select("record_id", "customer_id"), "record_id")
               .groupBy("cluster_id", "customer_id").agg(F.count("*").alias("n")))
    # Each earlier id goes to the new cluster holding most of its records.
    by_old = Window.partitionBy("customer_id").orderBy(F.desc("n"), F.asc("cluster_id"))
    claims = overlap.withColumn("_r", F.row_number().over(by_old)).filter("_r = 1").drop("_r")
    # A cluster claimed by several earlier ids keeps the one sharing most records.
    by_new = Window.partitionBy("cluster_id").orderBy(F.desc("n"), F.asc("customer_id"))
    ranked = claims.withColumn("_r", F.row_number().over(by_new))
    kept = ranked.filter("_r = 1").select("cluster_id", "customer_id")
    merged = ranked.filter("_r > 1").alias("m").join(
        kept.alias("k"), "cluster_id").select(
        F.lit("merged").alias("event_type"), F.col("m.customer_id").alias("customer_id"),
        F.col("k.customer_id").alias("related_customer_id"), F.col("m.n").alias("records"))
    ids = sizes.join(kept, "cluster_id", "left").select(
        "cluster_id", F.coalesce(F.col("customer_id"), new_id).alias("customer_id"),
        F.col("customer_id").isNull().alias("_new"), "records")
    # New ids: split off an earlier cluster (shares records) or brand new (shares none).
    split_from = overlap.join(kept.select("customer_id").withColumn("_k", F.lit(True)),
                              "customer_id").groupBy("cluster_id").agg(
        F.max_by("customer_id", "n").alias("origin"))
    fresh = ids.filter("_new").join(split_from, "cluster_id", "left")
    created = fresh.select(
        F.when(F.col("origin").isNull(), F.lit("created")).otherwise(F.lit("split"))
        .alias("event_type"), "customer_id", F.col("origin").alias("related_customer_id"),
        "records")
    events = created.unionByName(merged)
    return ids.select("cluster_id", "customer_id"), events
