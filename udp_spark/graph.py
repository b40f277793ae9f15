"""Connected components: GraphFrames when its jar is on the classpath, else a built-in
DataFrame implementation of the same min-label propagation (with pointer jumping).

GraphFrames' JVM package is not published where this project's set-up can fetch it, so the
built-in algorithm is the default locally; on a cluster that has GraphFrames installed,
``backend="graphframes"`` (or ``auto``) uses it. Both return ``(id, component)`` where
``component`` is the smallest id of the component, so results are identical.
"""

from __future__ import annotations

import logging
from typing import Literal

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

log = logging.getLogger(__name__)

Backend = Literal["auto", "graphframes", "builtin"]


def graphframes_available(spark: SparkSession) -> bool:
    """True when the GraphFrames JVM classes can be loaded in this session."""
    try:
        jvm = spark.sparkContext._jvm
        assert jvm is not None
        jvm.java.lang.Class.forName("org.graphframes.GraphFrame")
        return True
    except Exception:
        return False


def _checkpoint(df: DataFrame) -> DataFrame:
    sc = df.sparkSession.sparkContext
    if sc.getCheckpointDir():
        return df.checkpoint(eager=True)
    return df.localCheckpoint(eager=True)


def _builtin(vertices: DataFrame, edges: DataFrame, max_iterations: int) -> DataFrame:
    both = edges.select("src", "dst").unionByName(
        edges.select(F.col("dst").alias("src"), F.col("src").alias("dst"))).distinct()
    both = _checkpoint(both)
    labels = _checkpoint(vertices.select("id", F.col("id").alias("component")))
    for i in range(1, max_iterations + 1):
        # 1. each vertex takes the smallest label among itself and its neighbours
        pushed = both.join(labels.withColumnRenamed("id", "src"), "src").select(
            F.col("dst").alias("id"), "component")
        hop = labels.unionByName(pushed).groupBy("id").agg(F.min("component").alias("component"))
        # 2. pointer jumping: take the label of your label (halves the remaining distance)
        jump = hop.join(hop.select(F.col("id").alias("component"),
                                   F.col("component").alias("c2")), "component", "left")
        new = _checkpoint(jump.select("id", F.least("component", F.coalesce("c2", "component"))
                                      .alias("component")))
        changed = new.join(labels.withColumnRenamed("component", "old"), "id").filter(
            F.col("component") != F.col("old")).limit(1).count()
        labels = new
        if changed == 0:
            log.info("connected components converged after %d iterations", i)
            return labels
    raise RuntimeError(f"connected components did not converge in {max_iterations} "
                       "iterations; raise max_iterations")


def connected_components(vertices: DataFrame, edges: DataFrame, *,
                         backend: Backend = "auto", max_iterations: int = 60) -> DataFrame:
    """``(id, component)`` for ``vertices(id)`` and undirected ``edges(src, dst)``.

    ``component`` is the smallest ``id`` in the component, with either backend.
    """
    spark = vertices.sparkSession
    use_gf = backend == "graphframes" or (backend == "auto" and graphframes_available(spark))
    if use_gf:
        from graphframes import GraphFrame

        if not spark.sparkContext.getCheckpointDir():
            raise RuntimeError("GraphFrames connectedComponents needs a checkpoint directory: "
                               "set checkpoint_dir in conf/pipeline.yaml")
        cc = GraphFrame(vertices.select("id"), edges.select("src", "dst")).connectedComponents(
            algorithm="graphframes", checkpointInterval=2)
        # GraphFrames labels components by a vertex id of its own choosing: use the min id.
        return cc.groupBy("component").agg(F.min("id").alias("_min")).join(
            cc, "component").select("id", F.col("_min").alias("component"))
    return _builtin(vertices, edges, max_iterations)
