"""Connected components: in the driver for a graph that fits it, else GraphFrames when its
jar is on the classpath, else a built-in DataFrame implementation of the same min-label
propagation (with pointer jumping).

GraphFrames' JVM package is not published where this project's set-up can fetch it, so the
built-in algorithm is the distributed default locally; on a cluster that has GraphFrames
installed, ``backend="graphframes"`` (or ``auto``) uses it. A distributed algorithm pays a
few Spark jobs per iteration whatever the size: with ``auto``, a graph of at most
``driver_max_edges`` edges (500,000 by default: about 60 MB in the driver) is collected once
and labelled with vectorised NumPy instead, in well under a second. Every backend returns
``(id, component)`` where ``component`` is the smallest id of the component, so results are
identical.
"""

from __future__ import annotations

import logging
from typing import Literal

import numpy as np
import pandas as pd
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from udp_spark import io

log = logging.getLogger(__name__)

Backend = Literal["auto", "graphframes", "builtin", "driver"]
DRIVER_MAX_EDGES = 500_000


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
    return io.checkpoint(df)


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


def min_labels(src: np.ndarray, dst: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Components of the undirected graph given by the edge arrays: ``(ids, components)``,
    each vertex with the smallest id of its component (ids compared as Spark compares
    strings: by code point)."""
    ids = np.unique(np.concatenate([src, dst]))  # sorted: code order is id order
    s, d = np.searchsorted(ids, src), np.searchsorted(ids, dst)
    label = np.arange(len(ids))
    while True:
        # each end takes the smaller label of the edge, then pointer jumping: label[x] <= x
        # and in x's component always, so label[label] halves the remaining distance.
        low = np.minimum(label[s], label[d])
        new = label.copy()
        np.minimum.at(new, s, low)
        np.minimum.at(new, d, low)
        new = new[new]
        if np.array_equal(new, label):
            return ids, ids[label]
        label = new


def _in_driver(vertices: DataFrame, edges: DataFrame, max_edges: int | None) -> DataFrame | None:
    """Components computed in the driver, or None when there are more than ``max_edges``."""
    pairs = edges.select(F.col("src").cast("string"), F.col("dst").cast("string")).dropna()
    pdf: pd.DataFrame = (pairs if max_edges is None else pairs.limit(max_edges + 1)).toPandas()
    if max_edges is not None and len(pdf) > max_edges:
        log.info("connected components: more than %d edges, not in the driver", max_edges)
        return None
    ids, comps = min_labels(pdf["src"].to_numpy(dtype=object), pdf["dst"].to_numpy(dtype=object))
    spark = vertices.sparkSession
    labelled = spark.createDataFrame(pd.DataFrame({"id": ids, "component": comps}),
                                     "id string, component string")
    # vertices without an edge are their own component
    return (vertices.select("id").distinct().join(labelled, "id", "left")
            .select("id", F.coalesce("component", "id").alias("component")))


def connected_components(vertices: DataFrame, edges: DataFrame, *,
                         backend: Backend = "auto", max_iterations: int = 60,
                         driver_max_edges: int = DRIVER_MAX_EDGES) -> DataFrame:
    """``(id, component)`` for ``vertices(id)`` (strings) and undirected ``edges(src, dst)``.

    ``component`` is the smallest ``id`` in the component, with every backend. ``driver``
    always labels in the driver; ``auto`` does when the graph has at most
    ``driver_max_edges`` edges, else uses GraphFrames if available, else ``builtin``.
    """
    spark = vertices.sparkSession
    if backend in ("auto", "driver"):
        small = _in_driver(vertices, edges, driver_max_edges if backend == "auto" else None)
        if small is not None:
            return small
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
