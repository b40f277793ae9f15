"""Connected components: the driver and the distributed backends agree, on real Spark."""

from __future__ import annotations

import random

import numpy as np
from pyspark.sql import SparkSession

from udp_spark.graph import connected_components, min_labels


def _union_find(edges: list[tuple[str, str]]) -> dict[str, str]:
    parent: dict[str, str] = {}

    def find(x: str) -> str:
        parent.setdefault(x, x)
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    for a, b in edges:
        ra, rb = find(a), find(b)
        if ra != rb:
            parent[max(ra, rb)] = min(ra, rb)
    return {x: find(x) for x in parent}


def _graph(seed: int) -> list[tuple[str, str]]:
    """Long chains (worst case for label propagation), cycles, stars and self-loops, with
    ids whose string order differs from their numeric order and non-ASCII ids."""
    rng = random.Random(seed)
    ids = [f"r{i}" for i in range(120)] + ["é1", "Ω", "a10", "a9", "\U0001d518"]
    rng.shuffle(ids)
    edges = [(ids[i], ids[i + 1]) for i in range(0, 40)]  # a chain of 41
    edges += [(ids[i], ids[i + 1]) for i in range(50, 60)] + [(ids[60], ids[50])]  # a cycle
    edges += [(ids[70], ids[j]) for j in range(71, 90)]  # a star
    edges += [(ids[95], ids[95]), (ids[100], ids[101]), (ids[101], ids[100])]
    edges += [(rng.choice(ids), rng.choice(ids)) for _ in range(8)]
    return edges


def test_min_labels_equals_union_find() -> None:
    for seed in range(5):
        edges = _graph(seed)
        ids, comps = min_labels(np.array([a for a, _ in edges], dtype=object),
                                np.array([b for _, b in edges], dtype=object))
        assert dict(zip(ids.tolist(), comps.tolist(), strict=True)) == _union_find(edges)


def test_driver_and_builtin_backends_give_the_same_components(spark: SparkSession) -> None:
    edges = _graph(7)
    lonely = ["z_alone", "0_alone"]
    e = spark.createDataFrame(edges, "src string, dst string")
    v = spark.createDataFrame([(x,) for x in {*lonely, *(a for a, _ in edges),
                                              *(b for _, b in edges)}], "id string")
    driver = {r["id"]: r["component"] for r in connected_components(
        v, e, backend="driver").collect()}
    # auto over its edge limit takes the distributed (builtin) path
    distributed = {r["id"]: r["component"] for r in connected_components(
        v, e, backend="auto", driver_max_edges=10).collect()}
    assert driver == distributed == {**_union_find(edges), **{x: x for x in lonely}}
