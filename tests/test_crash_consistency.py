"""A stage that dies between two of its commits leaves, after the next run, the same tables
as a run that never died. Resolve commits the identity events and then the xref."""

from __future__ import annotations

from pathlib import Path

import pytest
from pyspark.sql import SparkSession
from pyspark.sql import functions as F

from udp_spark import io
from udp_spark.config import load_config
from udp_spark.faults import CRASH_AT, InjectedCrash
from udp_spark.pipeline.context import StageContext
from udp_spark.pipeline.resolve import run_resolve
from udp_spark.tables import (
    GOLD_IDENTITY_EVENTS,
    GOLD_IDENTITY_XREF,
    SILVER_MATCH_SCORES,
    SILVER_PARTY_RECORDS,
)

REPO = Path(__file__).resolve().parents[1]
SCORES = ("record_id_l string, record_id_r string, match_weight double, "
          "match_probability double")
LEVELS = ("given_name", "date_of_birth", "email", "loyalty_id")
FIRST = [("a", "b", 9.0, 0.99), ("c", "d", 9.0, 0.99), ("e", "f", -3.0, 0.2)]
# The second round links b-c (A and C merge) and e-f (a new customer from two singletons).
SECOND = [*FIRST[:2], ("b", "c", 9.0, 0.99), ("e", "f", 9.0, 0.99)]


def _ctx(spark: SparkSession, base: Path) -> StageContext:
    cfg = load_config(REPO / "conf" / "pipeline.yaml", data_root=str(base / "data"),
                      lakehouse_root=str(base / "lake"))
    ctx = StageContext(spark, cfg)
    records = spark.createDataFrame([(r,) for r in "abcdef"], "record_id string")
    io.overwrite(records, ctx.lakehouse.ref(SILVER_PARTY_RECORDS))
    return ctx


def _scores(ctx: StageContext, rows: list[tuple[str, str, float, float]]) -> None:
    df = ctx.spark.createDataFrame(rows, SCORES)
    df = df.withColumns({c: F.lit(-1) for c in LEVELS})  # no conflicts, no key links
    io.overwrite(df, ctx.lakehouse.ref(SILVER_MATCH_SCORES))


def _state(ctx: StageContext) -> tuple[set[frozenset[str]], list[tuple[str, ...]]]:
    """The partition of records into customers, and every identity event with its customers
    named by their records (customer ids of new clusters are salted with the run id)."""
    ref = ctx.lakehouse.ref(GOLD_IDENTITY_XREF)
    latest = io.table_version(ctx.spark, ref)
    assert latest is not None
    # A customer by its records in the first version it is in: which of two equal customers
    # survives a merge depends on their (run-salted) ids, so a merge is named by its pair.
    named: dict[str, str] = {}
    for version in range(latest + 1):
        members: dict[str, set[str]] = {}
        for r in io.read_table(ctx.spark, ref, version=version).collect():
            members.setdefault(r["customer_id"], set()).add(r["record_id"])
        for c, m in members.items():
            named.setdefault(c, "".join(sorted(m)))

    def name(cust: str | None) -> str:
        return named.get(cust, "?" + cust) if cust else "-"

    events = sorted((r["event_type"], *sorted((name(r["customer_id"]),
                                               name(r["related_customer_id"]))),
                     str(r["records"])) for r in io.read_table(
        ctx.spark, ctx.lakehouse.ref(GOLD_IDENTITY_EVENTS)).collect())
    return {frozenset(m) for m in members.values()}, events  # members: the latest version


@pytest.fixture(scope="module")
def uninterrupted(spark: SparkSession, tmp_path_factory: pytest.TempPathFactory):
    ctx = _ctx(spark, tmp_path_factory.mktemp("clean"))
    _scores(ctx, FIRST)
    run_resolve(ctx)
    first = _state(ctx)
    _scores(ctx, SECOND)
    run_resolve(ctx)
    return first, _state(ctx)


def test_resolve_killed_between_its_commits_loses_and_doubles_nothing(
        spark: SparkSession, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        uninterrupted) -> None:
    first, second = uninterrupted
    # The clean run did make both kinds of event this test is about.
    assert {e[0] for e in second[1]} == {"created", "merged"}, second
    ctx = _ctx(spark, tmp_path)
    # Each boundary once (a resolve run costs seconds even on six records): after the xref
    # MERGE, where the first round's "created" events used to be lost for good, and after the
    # events append, where the second round's "merged" events must not be written twice.
    for rows, point, expected in ((FIRST, "resolve:after_identity_xref", first),
                                  (SECOND, "resolve:after_identity_events", second)):
        _scores(ctx, rows)
        monkeypatch.setenv(CRASH_AT, point)
        with pytest.raises(InjectedCrash):
            run_resolve(ctx)
        monkeypatch.delenv(CRASH_AT)
        run_resolve(ctx)  # the next run repairs what the dead one left
        assert _state(ctx) == expected, point
