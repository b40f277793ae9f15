"""Publish on a small hand-made lakehouse: first publish, an idempotent re-publish, one
changed source value, a merge; time travel, merged-away ids, lineage, audit and the CLI.

The module fixture runs the publishes in order and keeps each report; the tests check one
promise each against what the publishes left behind.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path
from typing import Any

import pytest
from _profile_data import EVENT_SCHEMA, XREF_SCHEMA, act, day, interactions, rec, records
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from udp_spark import io
from udp_spark.config import (
    LakehouseConfig,
    MetricsSettings,
    PipelineConfig,
    PublishSettings,
    SegmentSpec,
)
from udp_spark.pipeline.context import StageContext
from udp_spark.pipeline.publish import (
    PublishReport,
    lookup_profile,
    profile_lineage,
    run_publish,
)
from udp_spark.tables import (
    AUDIT_RUNS,
    GOLD_CUSTOMER_PROFILE,
    GOLD_CUSTOMER_PROFILE_HISTORY,
    GOLD_HOUSEHOLDS,
    GOLD_IDENTITY_EVENTS,
    GOLD_IDENTITY_XREF,
    GOLD_PROFILE_EVENTS,
    GOLD_SEGMENT_MEMBERSHIP,
    SILVER_INTERACTIONS,
    SILVER_PARTY_RECORDS,
)

pytestmark = pytest.mark.slow  # Delta writes: four publishes on a tiny lakehouse

PUBLISH = PublishSettings(
    metrics=MetricsSettings(as_of=date(2026, 6, 30)),
    segments={"buyer": SegmentSpec(where="orders > 0"),
              "reachable": SegmentSpec(where="email is not null")})


def _party(c3_email: str = "c3@x.com", c2_email: str = "old@x.com") -> list[dict[str, Any]]:
    return [
        rec("crm:1", "C1", given_name="Ann", family_name="Lee", email="ann@x.com",
            updated_at=day(2025, 1, 1)),
        rec("webshop_customers:1", "C1", given_name="Annie", family_name="Lee",
            email="ann@x.com", street="1 Main St", city="Springfield", postcode="12345",
            country="US", updated_at=day(2026, 1, 1)),
        rec("crm:2", "C2", given_name="Bob", family_name="Ray", email=c2_email,
            updated_at=day(2025, 1, 1)),
        rec("crm:3", "C3", given_name="Cy", family_name="Dunn", email=c3_email,
            updated_at=day(2025, 1, 1)),
    ]


def _write_silver(ctx: StageContext, party: list[dict[str, Any]]) -> None:
    spark, lake = ctx.spark, ctx.lakehouse
    io.overwrite(records(spark, party).drop("customer_id"), lake.ref(SILVER_PARTY_RECORDS))


def _write_xref(ctx: StageContext, owners: dict[str, str], run_id: str) -> None:
    sizes = {c: list(owners.values()).count(c) for c in owners.values()}
    rows = [(r, c, sizes[c], "model_score" if sizes[c] > 1 else "singleton", None, run_id)
            for r, c in sorted(owners.items())]
    io.overwrite(ctx.spark.createDataFrame(rows, XREF_SCHEMA),
                 ctx.lakehouse.ref(GOLD_IDENTITY_XREF))


def _append_events(ctx: StageContext, rows: list[tuple[Any, ...]]) -> None:
    io.append_new_batches(ctx.spark.createDataFrame(rows, EVENT_SCHEMA),
                          ctx.lakehouse.ref(GOLD_IDENTITY_EVENTS), batch_col="run_id",
                          known_batches=())


def _versions(ctx: StageContext) -> dict[str, int | None]:
    refs = [ctx.lakehouse.ref(t) for t in (GOLD_CUSTOMER_PROFILE, GOLD_CUSTOMER_PROFILE_HISTORY,
                                           GOLD_SEGMENT_MEMBERSHIP)]
    return {str(ref): io.table_version(ctx.spark, ref) for ref in refs}


def _table(ctx: StageContext, t: tuple[str, str]) -> DataFrame:
    return io.read_table(ctx.spark, ctx.lakehouse.ref(t))


@dataclass
class Story:
    ctx: StageContext
    reports: list[PublishReport] = field(default_factory=list)
    versions: list[dict[str, int | None]] = field(default_factory=list)
    profiles: list[dict[str, dict[str, Any]]] = field(default_factory=list)
    history: list[list[tuple[Any, ...]]] = field(default_factory=list)


@pytest.fixture(scope="module")
def story(spark: SparkSession, tmp_path_factory: pytest.TempPathFactory) -> Story:
    base = tmp_path_factory.mktemp("publish")
    cfg = PipelineConfig(lakehouse=LakehouseConfig(root=str(base / "lake")), publish=PUBLISH,
                         config_hash="test")
    ctx = StageContext(spark, cfg)
    owners = {"crm:1": "C1", "webshop_customers:1": "C1", "crm:2": "C2", "crm:3": "C3"}
    _write_silver(ctx, _party())
    io.overwrite(interactions(spark, [act("webshop_orders:1", "webshop_customers:1", "order",
                                          day(2026, 6, 1), amount="120.00", channel="web",
                                          status="completed")]),
                 ctx.lakehouse.ref(SILVER_INTERACTIONS))
    _write_xref(ctx, owners, "resolve-1")
    _append_events(ctx, [("created", c, None, n, "resolve-1", datetime(2026, 6, 1))
                         for c, n in (("C1", 2), ("C2", 1), ("C3", 1))])
    s = Story(ctx)

    def publish() -> None:
        s.reports.append(run_publish(ctx))
        s.versions.append(_versions(ctx))
        s.profiles.append({r["customer_id"]: r.asDict(recursive=True)
                           for r in _table(ctx, GOLD_CUSTOMER_PROFILE).collect()})
        s.history.append(sorted(
            tuple(r) for r in _table(ctx, GOLD_CUSTOMER_PROFILE_HISTORY).select(
                "customer_id", "email", "is_current", "change_type", "run_id",
                F.col("valid_to").isNull()).collect()))

    publish()                                       # 0: first publish
    publish()                                       # 1: nothing changed
    _write_silver(ctx, _party(c2_email="new@x.com"))
    publish()                                       # 2: one source value changed
    owners["crm:3"] = "C1"                          # resolve merges C3 into C1
    _write_xref(ctx, owners, "resolve-2")
    _append_events(ctx, [("merged", "C3", "C1", 1, "resolve-2", datetime(2026, 6, 2))])
    publish()                                       # 3: a customer merged away
    return s


def test_first_publish_inserts_every_customer_with_lineage(story: Story) -> None:
    r = story.reports[0]
    assert (r.customers, r.profile_inserted, r.profile_updated, r.history_inserted) == (
        3, 3, 0, 3)
    c1 = story.profiles[0]["C1"]
    # name: one record each for "Ann" and "Annie", both short forms (as complete as each
    # other): the more recent one wins, not the more trusted; address: only the web shop has
    # one.
    assert (c1["given_name"], c1["lineage"]["given_name"]["record_id"],
            c1["lineage"]["given_name"]["rule"]) == ("Annie", "webshop_customers:1",
                                                     "most_frequent")
    assert (c1["street"], c1["lineage"]["street"]["source"]) == ("1 Main St",
                                                                 "webshop_customers")
    assert [(e["value"], e["source_count"]) for e in c1["emails"]] == [("ann@x.com", 2)]
    assert (c1["orders"], str(c1["total_spend"]), c1["recency_days"]) == (1, "120.00", 29)
    assert c1["segments"] == ["buyer", "reachable"]
    assert story.profiles[0]["C2"]["segments"] == ["reachable"]
    assert r.segments_entered == 4 and r.segment_sizes == {"buyer": 1, "reachable": 3}


def test_republish_without_change_writes_nothing(story: Story) -> None:
    r = story.reports[1]
    # Change-driven: no input changed, so no customer was even rebuilt.
    assert story.reports[0].full and not r.full
    assert (r.profile_inserted, r.profile_updated, r.profile_deleted, r.profile_unchanged) == (
        0, 0, 0, 0)
    assert r.events == {} and r.customers == 3
    assert (r.history_inserted, r.history_closed, r.segments_entered, r.segments_exited) == (
        0, 0, 0, 0)
    # No Delta commit at all on any published table, and the same rows.
    assert story.versions[1] == story.versions[0]
    assert story.profiles[1] == story.profiles[0]
    assert story.history[1] == story.history[0]


def test_one_changed_source_value_changes_exactly_one_customer(story: Story) -> None:
    r = story.reports[2]
    assert (r.profile_inserted, r.profile_updated, r.profile_unchanged, r.profile_deleted) == (
        0, 1, 2, 0)
    assert (r.history_inserted, r.history_closed) == (1, 1)
    before, after = story.profiles[1], story.profiles[2]
    changed = {c for c in after if after[c] != before[c]}
    assert changed == {"C2"}
    assert after["C2"]["email"] == "new@x.com" and after["C2"]["run_id"] == r.run_id
    # an e-mail is nothing households are built from: none was rebuilt, ids stay
    assert r.households == {} and story.reports[3].households != {}
    assert {c: p["household_id"] for c, p in after.items()} == {
        c: p["household_id"] for c, p in before.items()}
    # The untouched customers keep the run that last changed them.
    assert after["C1"]["run_id"] == story.reports[0].run_id
    new_rows = set(story.history[2]) - set(story.history[1])
    gone_rows = set(story.history[1]) - set(story.history[2])
    run0, run2 = story.reports[0].run_id, r.run_id
    assert gone_rows == {("C2", "old@x.com", True, "created", run0, True)}
    assert new_rows == {("C2", "old@x.com", False, "created", run0, False),
                        ("C2", "new@x.com", True, "updated", run2, True)}


def test_each_changed_table_is_one_commit_tagged_with_the_run(story: Story) -> None:
    ctx = story.ctx
    for table in (GOLD_CUSTOMER_PROFILE, GOLD_CUSTOMER_PROFILE_HISTORY):
        hist = io.delta_table(ctx.spark, ctx.lakehouse.ref(table)).history().select(
            "version", "userMetadata").collect()
        runs = [json.loads(h["userMetadata"])["run_id"] for h in sorted(hist)]
        # Publishes 0, 2 and 3 changed something; publish 1 made no commit.
        assert runs == [story.reports[i].run_id for i in (0, 2, 3)], table
    audit = {r["run_id"]: r for r in _table(ctx, AUDIT_RUNS).collect()}
    r2 = audit[story.reports[2].run_id]
    assert (r2["stage"], r2["status"], r2["row_counts"]["profile_updated"],
            r2["row_counts"]["history_inserted"]) == ("publish", "succeeded", 1, 1)
    assert r2["input_versions"]["silver.party_records"] == 1
    assert set(r2["output_versions"]) == {"gold.customer_profile",
                                          "gold.customer_profile_history"}
    assert audit[story.reports[1].run_id]["output_versions"] == {}


def test_merged_away_customer_is_retired_everywhere(story: Story) -> None:
    r = story.reports[3]
    assert (r.profile_deleted, r.profile_updated, r.profile_unchanged) == (1, 1, 1)
    after = story.profiles[3]
    assert set(after) == {"C1", "C2"}
    assert after["C1"]["record_count"] == 3
    assert {e["value"] for e in after["C1"]["emails"]} == {"ann@x.com", "c3@x.com"}
    c3_rows = [h for h in story.history[3] if h[0] == "C3"]
    assert c3_rows == [("C3", "c3@x.com", False, "created", story.reports[0].run_id, False)]
    spells = {(m["customer_id"], m["segment"]): m for m in
              _table(story.ctx, GOLD_SEGMENT_MEMBERSHIP).collect()}
    assert spells[("C3", "reachable")]["exited_run_id"] == r.run_id
    assert spells[("C1", "buyer")]["exited_at"] is None
    assert r.segments_exited == 1 and r.segments_entered == 0


def test_every_profile_with_an_address_has_a_household(story: Story) -> None:
    households = {r["household_id"]: r["member_ids"]
                  for r in _table(story.ctx, GOLD_HOUSEHOLDS).collect()}
    # C1 alone has an address; C2 has none and nothing links it: no household
    assert {c: (p["household_id"] is not None, households.get(p["household_id"]))
            for c, p in story.profiles[3].items()} == {"C1": (True, ["C1"]),
                                                       "C2": (False, None)}


def test_as_of_returns_the_earlier_state(story: Story) -> None:
    ctx = story.ctx
    first = story.versions[0][str(ctx.lakehouse.ref(GOLD_CUSTOMER_PROFILE))]
    assert lookup_profile(ctx, "C2").profile["email"] == "new@x.com"  # type: ignore[index]
    then = lookup_profile(ctx, "C2", str(first))
    assert then.profile is not None and then.profile["email"] == "old@x.com"
    committed = io.delta_table(ctx.spark, ctx.lakehouse.ref(GOLD_CUSTOMER_PROFILE)).history(
    ).filter(F.col("version") == first).select("timestamp").first()
    assert committed is not None
    by_time = lookup_profile(ctx, "C2", committed[0].isoformat(sep=" "))
    assert by_time.profile is not None and by_time.profile["email"] == "old@x.com"
    assert by_time.version == first
    with pytest.raises(ValueError, match="has no state at '99'"):
        lookup_profile(ctx, "C2", "99")
    with pytest.raises(ValueError, match="give a table version"):
        lookup_profile(ctx, "C2", "last tuesday")


def test_merged_away_id_resolves_to_its_survivor(story: Story) -> None:
    ctx = story.ctx
    found = lookup_profile(ctx, "C3")
    assert (found.customer_id, found.merged_chain) == ("C1", ["C1"])
    assert found.profile is not None and found.profile["customer_id"] == "C1"
    first = story.versions[0][str(ctx.lakehouse.ref(GOLD_CUSTOMER_PROFILE))]
    # Before the merge, C3 was its own customer.
    then = lookup_profile(ctx, "C3", str(first))
    assert (then.customer_id, then.merged_chain) == ("C3", [])
    assert lookup_profile(ctx, "C404").profile is None


def test_lineage_lists_records_events_and_runs(story: Story) -> None:
    info = profile_lineage(story.ctx, "C3")
    assert info["customer_id"] == "C1"
    assert [r["record_id"] for r in info["records"]] == ["crm:1", "crm:3",
                                                         "webshop_customers:1"]
    assert ("merged", "C3", "C1") in {(e["event_type"], e["customer_id"],
                                       e["related_customer_id"]) for e in info["events"]}
    given = next(f for f in info["fields"] if f["field"] == "given_name")
    assert (given["value"], given["record_id"]) == ("Annie", "webshop_customers:1")
    publish_runs = {r["run_id"] for r in info["runs"] if r["stage"] == "publish"}
    assert publish_runs == {story.reports[i].run_id for i in (0, 3)}
    assert len(info["history"]) == 3  # C1 created + updated, C3 created (closed)


def test_cli_profile_and_lineage(story: Story, tmp_path: Path,
                                 capsys: pytest.CaptureFixture[str]) -> None:
    from udp_spark.cli import main

    (tmp_path / "pipeline.yaml").write_text(
        f"lakehouse: {{root: {story.ctx.cfg.lakehouse.root}}}\n")
    main(["profile", "C3", "--config", str(tmp_path / "pipeline.yaml")])
    out = capsys.readouterr().out
    assert "C3 was merged into C1; showing C1" in out
    assert "given_name      Annie" in out and "<- webshop_customers:1 (most_frequent" in out
    main(["lineage", "C1", "--json", "--config", str(tmp_path / "pipeline.yaml")])
    info = json.loads(capsys.readouterr().out)
    assert {r["record_id"] for r in info["records"]} == {"crm:1", "crm:3",
                                                         "webshop_customers:1"}


def test_publish_before_resolve_says_what_to_run(spark: SparkSession, tmp_path: Path) -> None:
    ctx = StageContext(spark, PipelineConfig(
        lakehouse=LakehouseConfig(root=str(tmp_path / "lake"))))
    with pytest.raises(ValueError, match="run `udp standardize` first"):
        run_publish(ctx)


def test_profile_events_announce_each_change_once(story: Story) -> None:
    events = sorted((r["run_id"], r["customer_id"], r["event_type"], r["detail"] or "",
                     r["related_customer_id"] or "")
                    for r in _table(story.ctx, GOLD_PROFILE_EVENTS).collect())
    run0, run2, run3 = (story.reports[i].run_id for i in (0, 2, 3))
    assert [e for e in events if e[0] == run0] == sorted(
        [(run0, c, "profile_created", "", "") for c in ("C1", "C2", "C3")]
        + [(run0, "C1", "segment_entered", "buyer", "")]
        + [(run0, c, "segment_entered", "reachable", "") for c in ("C1", "C2", "C3")])
    assert [e for e in events if e[0] == run2] == [
        (run2, "C2", "attributes_changed", "email,emails", "")]
    assert {e[1:] for e in events if e[0] == run3} == {
        ("C3", "profile_deleted", "", ""), ("C3", "merged", "", "C1"),
        ("C3", "segment_exited", "reachable", ""),
        ("C1", "attributes_changed", "emails,record_count", "")}
    assert story.reports[1].run_id not in {e[0] for e in events}
