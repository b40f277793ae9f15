"""Clusters from scored pairs, checked as a whole.

Connected components over accepted edges chain households together: each link may be 95%
right while the chain joins parents, children and twins. So inside every component,
records are merged greedily from the strongest edge down (union-find) and a merge is refused
when it would put two records with strong evidence of being different people (a *conflict*:
different dates of birth, different first names, different loyalty ids) into one cluster.
Weak bridging edges therefore lose to strong conflicts, whatever the chain length.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence

import pandas as pd
from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F
from pyspark.sql import types as T

Transform = Callable[[DataFrame], DataFrame]

SPLIT_SCHEMA = T.StructType([
    T.StructField("record_id", T.StringType()),
    T.StructField("cluster_id", T.StringType()),
    T.StructField("component", T.StringType()),
])


def conflict_flag(*, dob: bool = True, given_name: bool = True,
                  loyalty_id: bool = True, identifiers: Sequence[str] = (),
                  middle_name: bool = False) -> Column:
    """True for a scored pair with strong evidence of two different people.

    Uses the pair's comparison levels: 0 means both values present and disagreeing beyond
    typos (date of birth more than a digit off and not transposed, first names neither
    similar, nicknames of each other nor swapped, different loyalty cards). First names that
    share only their first letter (level 1: Anna/Andreas, Max/Moritz) are a conflict too:
    in one household with one family name they are siblings, twins or spouses, and the
    address and family name they share would otherwise outvote them. With ``middle_name``
    (for scores that have the comparison), middle names both given that differ beyond a
    letter, or whose initials differ, are a conflict: two people of one given and family
    name at one address, a parent and a child, are often told apart by nothing else.
    """
    out = F.lit(False)
    if middle_name:
        out = out | (F.col("middle_name") == 0)
    if dob:
        out = out | (F.col("date_of_birth") == 0)
    if given_name:
        out = out | F.col("given_name").isin(0, 1)
    if loyalty_id:
        out = out | (F.col("loyalty_id") == 0)
    for name in identifiers:
        out = out | (F.col(name) == 0)
    return out


def _greedy_split(pdf: pd.DataFrame) -> pd.DataFrame:
    """Greedy constrained union-find over the edges and conflicts of one or more whole
    components (none of them crosses another, so they are split together as each would be
    alone: the order of the edges within a component is the same)."""
    nodes = pd.unique(pd.concat([pdf["record_id_l"], pdf["record_id_r"]]).dropna())
    parent = {n: n for n in nodes}
    members = {n: {n} for n in nodes}
    cannot: dict[str, set[str]] = {n: set() for n in nodes}
    conflicts = pdf[pdf["is_conflict"]]
    for a, b in zip(conflicts["record_id_l"], conflicts["record_id_r"], strict=True):
        cannot[a].add(b)
        cannot[b].add(a)

    def find(x: str) -> str:
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    edges = pdf[pdf["is_edge"]].sort_values(["match_weight", "record_id_l", "record_id_r"],
                                            ascending=[False, True, True])
    for a, b in zip(edges["record_id_l"], edges["record_id_r"], strict=True):
        ra, rb = find(a), find(b)
        if ra == rb:
            continue
        small, big = (ra, rb) if len(members[ra]) <= len(members[rb]) else (rb, ra)
        if any(cannot[m] & members[big] for m in members[small]):
            continue  # a strong conflict outweighs this link
        parent[small] = big
        members[big] |= members[small]
    component = dict(zip(pdf["record_id_l"], pdf["component"], strict=True))
    component.update(zip(pdf["record_id_r"], pdf["component"], strict=True))
    roots = {n: find(n) for n in nodes}
    label = {r: min(members[r]) for r in set(roots.values())}
    return pd.DataFrame({"record_id": list(roots), "cluster_id": [label[roots[n]] for n in roots],
                         "component": [component[n] for n in roots]},
                        columns=["record_id", "cluster_id", "component"])


def _split_partition(batches: Iterator[pd.DataFrame]) -> Iterator[pd.DataFrame]:
    """Every component of a partition (all its rows are in it) in one pass. A pandas frame
    per component (``applyInPandas``) costs about a millisecond, and there are tens of
    thousands of components: at 1M source rows the clustering step took 111 s that way,
    31 s this way (docs/bench.md, "Block and resolve at 1M source rows")."""
    frames = [b for b in batches if len(b)]
    if frames:
        yield _greedy_split(pd.concat(frames, ignore_index=True))


def split_components(components: DataFrame) -> Transform:
    """Scored pairs -> ``(record_id, cluster_id, component)`` for records in any edge.

    Args:
        components: ``(id, component)`` from connected components over the edges.

    The input pairs need ``record_id_l``, ``record_id_r``, ``match_weight``, ``is_edge``
    (accepted link) and ``is_conflict`` (see :func:`conflict_flag`). ``cluster_id`` is the
    smallest record id of the cluster, so it does not depend on processing order.
    """

    def transform(pairs: DataFrame) -> DataFrame:
        comp = components.select(F.col("id").alias("record_id_l"), "component")
        comp_r = components.select(F.col("id").alias("record_id_r"),
                                   F.col("component").alias("component_r"))
        inside = (pairs.filter(F.col("is_edge") | F.col("is_conflict"))
                  .join(comp, "record_id_l").join(comp_r, "record_id_r")
                  .filter(F.col("component") == F.col("component_r"))
                  .select("component", "record_id_l", "record_id_r", "match_weight",
                          "is_edge", "is_conflict"))
        return inside.repartition("component").mapInPandas(_split_partition, SPLIT_SCHEMA)

    return transform
