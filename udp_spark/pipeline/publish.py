"""Publish: golden profiles into ``gold.customer_profile``, its type-2 history, segment
membership and households; look a profile up now or at an earlier version; trace its
lineage."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from functools import reduce
from typing import Any

from pyspark.sql import DataFrame, Row
from pyspark.sql import functions as F

from udp_spark import audit, io, progress
from udp_spark.changes import Changes, changes_since, fingerprint, save_watermarks
from udp_spark.faults import crash_point
from udp_spark.pipeline.context import StageContext, audited_run, stage_watermarks
from udp_spark.privacy.consent import (
    CONSENT_EVENT_COLUMNS,
    consent_states,
    effective_consent,
    resolve_subjects,
)
from udp_spark.profile.build import PROFILE_COLUMNS, build_profiles
from udp_spark.profile.households import (
    HOUSEHOLD_COLUMNS,
    HOUSEHOLD_INPUT_COLUMNS,
    Households,
    build_households,
    household_input_changes,
    with_household_ids,
)
from udp_spark.profile.metrics import METRIC_COLUMNS
from udp_spark.profile.survivorship import (
    ATTRIBUTE_FIELDS,
    GOLDEN_COLUMNS,
    population_counts,
)
from udp_spark.profile.versioning import (
    HISTORY_EXTRA_COLUMNS,
    MEMBERSHIP_COLUMNS,
    classify_changes,
    history_changes,
    profile_changes,
    profile_events,
    segment_transitions,
    unannounced_identity_events,
)
from udp_spark.standardize.transforms import INTERACTION_FIELDS
from udp_spark.tables import (
    AUDIT_RUNS,
    GOLD_CUSTOMER_PROFILE,
    GOLD_CUSTOMER_PROFILE_HISTORY,
    GOLD_HOUSEHOLDS,
    GOLD_IDENTITY_EVENTS,
    GOLD_IDENTITY_XREF,
    GOLD_PROFILE_EVENTS,
    GOLD_SEGMENT_MEMBERSHIP,
    PRIVACY_CONSENT_EVENTS,
    SILVER_INTERACTIONS,
    SILVER_PARTY_RECORDS,
    TableRef,
)

log = logging.getLogger(__name__)

HISTORY_COLUMNS: tuple[str, ...] = (
    *[c for c in PROFILE_COLUMNS if c != "published_at"], *HISTORY_EXTRA_COLUMNS)

# Interactions schema when silver.interactions does not exist yet (no source has any).
_EMPTY_INTERACTIONS = (
    "interaction_id string, record_id string, source string, interaction_key string, "
    "type string, occurred_at timestamp, amount decimal(18,2), currency string, "
    "channel string, status string, attributes map<string,string>")


@dataclass
class PublishReport:
    """What one publish did, per table: rows inserted / updated / unchanged / removed."""

    run_id: str
    as_of: date
    customers: int
    profile_inserted: int
    profile_updated: int
    profile_unchanged: int
    profile_deleted: int
    history_inserted: int
    history_closed: int
    history_unchanged: int
    segments_entered: int
    segments_exited: int
    segment_sizes: dict[str, int] = field(default_factory=dict)  # full publishes only
    versions: dict[str, int] = field(default_factory=dict)
    events: dict[str, int] = field(default_factory=dict)  # gold.profile_events by type
    full: bool = True
    # gold.households: counts (households, multi_member, members, largest, blocked keys)
    # and size -> number of households; empty when no customer changed
    households: dict[str, int] = field(default_factory=dict)
    household_sizes: dict[int, int] = field(default_factory=dict)


def _require(ctx: StageContext, table: tuple[str, str], hint: str) -> DataFrame:
    ref = ctx.lakehouse.ref(table)
    if not io.table_exists(ctx.spark, ref):
        raise ValueError(f"{ref} does not exist: {hint}")
    return io.read_table(ctx.spark, ref)


def _current(ctx: StageContext, table: tuple[str, str]) -> tuple[DataFrame | None, int | None]:
    """The table pinned at its latest version (so a MERGE's source and target agree)."""
    ref = ctx.lakehouse.ref(table)
    version = io.table_version(ctx.spark, ref)
    if version is None:
        return None, None
    return io.read_table(ctx.spark, ref, version=version), version


def _counts(df: DataFrame, col: str) -> dict[str, int]:
    return {r[col]: int(r["n"]) for r in df.groupBy(col).agg(F.count("*").alias("n")).collect()}


def resolve_as_of(ctx: StageContext, interactions: DataFrame) -> date:
    """The day metrics are computed for: configured date, today (UTC) or the input's latest."""
    as_of = ctx.cfg.publish.metrics.as_of
    if isinstance(as_of, date):
        return as_of
    if as_of == "input":
        latest = io.one_row(interactions.agg(F.max(F.to_date("occurred_at")).alias("d")))["d"]
        if latest is not None:
            return latest  # type: ignore[no-any-return]
    return datetime.now(UTC).date()


def publish_fingerprint(ctx: StageContext, as_of: date) -> str:
    """What profiles depend on besides their inputs: the publish settings, the consent
    purposes and the day."""
    return fingerprint(ctx.cfg.publish.model_dump(mode="json"), as_of.isoformat(),
                       ctx.cfg.privacy.model_dump(mode="json")["purposes"])


def _all_interactions(ctx: StageContext) -> DataFrame:
    """``silver.interactions`` (empty, with its columns, before any was standardized)."""
    ref = ctx.lakehouse.ref(SILVER_INTERACTIONS)
    if io.table_exists(ctx.spark, ref):
        return io.read_table(ctx.spark, ref)
    return ctx.spark.createDataFrame([], _EMPTY_INTERACTIONS)


def published_profiles(ctx: StageContext) -> DataFrame | None:
    """``gold.customer_profile`` when it is what a publish would build now: the last
    successful publish read the current versions of the clusters (``gold.identity_xref``)
    and the records, with today's publish settings and ``as_of`` day. Otherwise None (no
    publish yet, or the input moved since): build the profiles instead.
    """
    spark, lake = ctx.spark, ctx.lakehouse
    profile_ref = lake.ref(GOLD_CUSTOMER_PROFILE)
    if not io.table_exists(spark, profile_ref) or not _profile_committed_by_finished_run(ctx):
        return None
    marks = stage_watermarks(ctx, "publish")
    params = publish_fingerprint(ctx, resolve_as_of(ctx, _all_interactions(ctx).select(
        *INTERACTION_FIELDS)))
    for table in (GOLD_IDENTITY_XREF, SILVER_PARTY_RECORDS):
        ref = lake.ref(table)
        if marks.get(str(ref)) != (io.table_version(spark, ref), params):
            return None
    return io.read_table(spark, profile_ref)


def _consent_inputs(ctx: StageContext, records: DataFrame, xref: DataFrame,
                    ch_consent: Changes, ch_events: Changes, at: datetime,
                    since: datetime | None
                    ) -> tuple[Callable[[DataFrame, DataFrame], DataFrame] | None,
                               DataFrame | None]:
    """How to resolve the consent events to today's customers (given the party records and
    cross-reference to resolve against: those of the customers being published), and the
    customers whose consent may have changed since the last publish: subjects of new
    events, and grants that expired in between (``since`` .. ``at``)."""
    if ch_consent.version is None:
        return None, None
    spark, lake = ctx.spark, ctx.lakehouse
    events = io.read_table(spark, lake.ref(PRIVACY_CONSENT_EVENTS), version=ch_consent.version)
    identity = (io.read_table(spark, lake.ref(GOLD_IDENTITY_EVENTS), version=ch_events.version)
                if ch_events.version is not None else None)

    def resolve(of_records: DataFrame, of_xref: DataFrame) -> DataFrame:
        return resolve_subjects(events, of_records, of_xref, identity)

    if ch_consent.full:
        return resolve, None
    resolved = resolve(records, xref)
    parts = []
    if not ch_consent.empty and ch_consent.rows is not None:
        new = ch_consent.rows.filter(F.col("_change_type") == "insert").select(
            *CONSENT_EVENT_COLUMNS)
        parts.append(resolve_subjects(new, records, xref, identity).select("customer_id"))
    if since is not None:
        parts.append(resolved.filter(F.col("expires_at").between(F.lit(since), F.lit(at)))
                     .select("customer_id"))
    touched = reduce(DataFrame.unionByName, parts).distinct() if parts else None
    return resolve, touched


def touched_customers(xref: DataFrame, ch_xref: Changes, ch_records: Changes,
                      ch_interactions: Changes, consent: DataFrame | None = None
                      ) -> DataFrame:
    """``customer_id`` of every customer whose profile may have changed: the old and new ids
    of re-clustered records, the customers of changed records and interactions, and
    ``consent`` (customers whose consent changed)."""
    parts: list[DataFrame] = [] if consent is None else [consent]
    if not ch_xref.empty and ch_xref.rows is not None:
        parts.append(ch_xref.keys("customer_id"))
    for ch in (ch_records, ch_interactions):
        if not ch.empty and ch.rows is not None:
            parts.append(xref.join(ch.keys("record_id"), "record_id", "left_semi")
                         .select("customer_id"))
    if not parts:
        return xref.sparkSession.createDataFrame([], "customer_id string")
    return reduce(DataFrame.unionByName, parts).filter(F.col("customer_id").isNotNull()
                                                       ).distinct()


def _add_missing_columns(ctx: StageContext, ref: TableRef, schema: DataFrame,
                         columns: tuple[str, ...]) -> None:
    """Add ``columns`` (typed as in ``schema``) to an existing table that lacks them: a
    lakehouse published before the column existed (``household_id``)."""
    spark = ctx.spark
    if not io.table_exists(spark, ref):
        return
    have = set(io.read_table(spark, ref).columns)
    missing = [f for f in schema.schema.fields if f.name in columns and f.name not in have]
    if missing:
        target = f"delta.`{ref.path}`" if ref.path else ref.name
        spark.sql(f"ALTER TABLE {target} ADD COLUMNS ("
                  + ", ".join(f"`{f.name}` {f.dataType.simpleString()}" for f in missing) + ")")
        log.info("%s: added column(s) %s", ref, [f.name for f in missing])


def _profile_committed_by_finished_run(ctx: StageContext) -> bool:
    """Whether the latest commit of ``gold.customer_profile`` is by a run that finished.

    Not so after a publish killed between its profile commit and its households: the
    profile then shows the changed customers' new keys only, and their households cannot
    be rebuilt from the keys they held (the re-run rebuilds everyone's instead).
    """
    spark, lake = ctx.spark, ctx.lakehouse
    last = io.last_commit_info(spark, lake.ref(GOLD_CUSTOMER_PROFILE))
    if last is None or last.run_id is None:
        return False
    if ctx.buffer is not None and any(r.run_id == last.run_id and status == "succeeded"
                                      for r, status, _ in ctx.buffer.pending):
        return True
    runs = lake.ref(AUDIT_RUNS)
    return io.table_exists(spark, runs) and not io.read_table(spark, runs).filter(
        (F.col("run_id") == last.run_id) & (F.col("status") == "succeeded")).isEmpty()


def _households(ctx: StageContext, profiles: DataFrame, scope: DataFrame | None,
                current: DataFrame | None, as_of: date, run_id: str, at: datetime
                ) -> tuple[Households | None, DataFrame] | None:
    """Households, and the profiles to publish with their ``household_id``.

    The population is the profiles just built plus, in an incremental publish, every
    current profile outside the scope. A full publish (or the first) builds everyone's
    households; an incremental one rebuilds only those the customers in scope can reach
    (their keys now and in the current profile, the customers holding them, and the
    households those belonged to: :func:`~udp_spark.profile.households.households_to_rebuild`),
    which gives what a whole rebuild gives (docs/households.md). A customer outside the
    scope whose ``household_id`` moves (a new member took the household's id) is published
    again with the new id. None when nothing can have changed (an incremental publish with
    no customer in scope and the table already there); ``(None, profiles)`` with their
    current ``household_id`` when no customer in scope changed in anything households are
    built from (:func:`~udp_spark.profile.households.household_input_changes`: a purchase,
    a new e-mail), so no household is rebuilt.
    """
    spark, lake = ctx.spark, ctx.lakehouse
    hh_ref = lake.ref(GOLD_HOUSEHOLDS)
    if scope is not None and io.table_exists(spark, hh_ref) and scope.isEmpty():
        return None
    population = profiles.select(*HOUSEHOLD_INPUT_COLUMNS)
    others = before = None
    if scope is not None and current is not None:
        others = current.join(scope, "customer_id", "left_anti").select(*PROFILE_COLUMNS)
        population = population.unionByName(others.select(*HOUSEHOLD_INPUT_COLUMNS))
    previous, _ = _current(ctx, GOLD_HOUSEHOLDS)
    changed = in_scope = None
    if (scope is not None and current is not None and previous is not None
            and _profile_committed_by_finished_run(ctx)):
        in_scope = current.join(scope, "customer_id", "left_semi")
        changed = household_input_changes(profiles, in_scope).transform(io.checkpoint)
        if changed.isEmpty():  # everyone in scope keeps the household they have
            return None, profiles.transform(with_household_ids(
                in_scope.select("customer_id", "household_id")))
        before = in_scope.join(changed, "customer_id", "left_semi").select(
            *HOUSEHOLD_INPUT_COLUMNS)
    hh = build_households(population, previous, ctx.cfg.publish.households, as_of, run_id,
                          changed=changed, before=before)
    households = hh.households.transform(io.checkpoint)
    assignment = households.select(F.explode("member_ids").alias("customer_id"),
                                   "household_id")
    hh = Households(households, assignment, hh.blocked.transform(io.checkpoint),
                    hh.customers, hh.replaced)
    if in_scope is not None and hh.customers is not None:
        # customers in scope outside the rebuild (their household inputs did not change)
        # keep their household
        assignment = assignment.unionByName(
            in_scope.join(hh.customers, "customer_id", "left_anti")
            .select("customer_id", "household_id"))
    out = profiles.transform(with_household_ids(assignment))
    if others is not None:
        if hh.customers is not None:  # the others outside the rebuild keep theirs
            others = others.join(hh.customers, "customer_id", "left_semi")
        moved = (others.join(assignment.withColumnRenamed("household_id", "_new"),
                             "customer_id", "left")
                 .filter(~F.col("household_id").eqNullSafe(F.col("_new")))
                 .withColumn("household_id", F.col("_new")).drop("_new")
                 .transform(with_household_ids(assignment))
                 .withColumn("run_id", F.lit(run_id))
                 .withColumn("published_at", F.lit(at))
                 .select(*PROFILE_COLUMNS))
        out = out.unionByName(moved)
    return hh, out


def _merge_changed(ctx: StageContext, run: audit.RunRecord, counts: dict[str, int],
                   classified: DataFrame, table: tuple[str, str], key: str,
                   columns: tuple[str, ...]) -> bool:
    """MERGE the inserted, updated and deleted rows of ``classified`` (classify_changes)
    into ``table`` when there are any (True: a commit was made)."""
    if not counts.get("insert", 0) + counts.get("update", 0) + counts.get("delete", 0):
        return False
    ref = ctx.lakehouse.ref(table)
    res = io.merge_changes(profile_changes(classified), ref, [key], columns)
    run.output_versions[str(ref)] = res.version or 0
    return True


def discard_uncommitted_profile_events(ctx: StageContext) -> int:
    """Delete the profile events of a publish that died before its profile commit."""
    lake = ctx.lakehouse
    return io.discard_uncommitted_outbox(
        ctx.spark, lake.ref(GOLD_PROFILE_EVENTS), lake.ref(GOLD_CUSTOMER_PROFILE))[1]


def run_publish(ctx: StageContext, *, full: bool = False) -> PublishReport:
    """Build the golden profiles of the customers whose records, interactions or cluster
    changed since the last publish, and publish what changed, one Delta commit per table.

    Every customer is built the first time, when the publish settings or the ``as_of`` day
    change (recency moves for everyone), or with ``full``.

    ``gold.profile_events`` gets one row per change downstream systems act on (created,
    merged, attributes or metrics changed, segment entered / exited; see
    :func:`~udp_spark.profile.versioning.profile_events`), committed before the profiles as
    an outbox. ``gold.customer_profile`` gets a MERGE touching only new, changed and vanished
    (merged away: deleted) customers; ``gold.customer_profile_history`` closes the current
    row of each changed or vanished customer and opens one for each new or changed customer;
    ``gold.segment_membership`` opens and closes segment spells; ``gold.households`` is
    rebuilt around the customers in scope (wholly in a full publish), and rewritten where a
    household changed (a customer outside the scope whose ``household_id`` moved is
    published again). Every commit carries the run id. Publishing again on unchanged input
    writes nothing.
    """
    spark, lake, settings = ctx.spark, ctx.lakehouse, ctx.cfg.publish
    with audited_run(ctx, "publish") as run:
        _require(ctx, SILVER_PARTY_RECORDS, "run `udp standardize` first")
        _require(ctx, GOLD_IDENTITY_XREF, "run `udp resolve` first")
        with io.commit_metadata(spark, {"run_id": run.run_id, "stage": "publish"}):
            discarded = discard_uncommitted_profile_events(ctx)
        inter_ref = lake.ref(SILVER_INTERACTIONS)
        all_interactions = _all_interactions(ctx)
        as_of = resolve_as_of(ctx, all_interactions.select(*INTERACTION_FIELDS))
        params = publish_fingerprint(ctx, as_of)
        marks = stage_watermarks(ctx, "publish")
        state = io.table_exists(spark, lake.ref(GOLD_CUSTOMER_PROFILE))
        chs = [changes_since(spark, lake, "publish", lake.ref(t), params=params, marks=marks,
                             force_full=full or not state)
               for t in (GOLD_IDENTITY_XREF, SILVER_PARTY_RECORDS, SILVER_INTERACTIONS,
                         GOLD_IDENTITY_EVENTS, PRIVACY_CONSENT_EVENTS)]
        ch_xref, ch_records, ch_inter, ch_events, ch_consent = chs
        for ch in chs:
            if ch.version is not None:
                run.input_versions[ch.table] = ch.version
        progress.step("changes read")
        run.row_counts["profile_events_discarded"] = discarded
        is_full = ch_xref.full or ch_records.full or ch_inter.full or ch_consent.full
        records = io.read_table(spark, lake.ref(SILVER_PARTY_RECORDS),
                                version=ch_records.version)
        xref = io.read_table(spark, lake.ref(GOLD_IDENTITY_XREF), version=ch_xref.version)
        interactions = (io.read_table(spark, inter_ref, version=ch_inter.version)
                        if ch_inter.version is not None else all_interactions)
        at = datetime.now(UTC).replace(microsecond=0)
        last = io.last_commit_info(spark, lake.ref(GOLD_CUSTOMER_PROFILE)) if state else None
        resolve_consent, consent_touched = _consent_inputs(
            ctx, records, xref, ch_consent, ch_events, at,
            None if last is None else last.timestamp)
        # merged / split events of the resolve runs since the last publish: the inserted
        # rows; rows deleted from the table (an erasure, retention) change no profile
        identity = (ch_events.rows.filter(F.col("_change_type") == "insert")
                    if ch_events.rows is not None and not ch_events.empty else None)
        scope = population = None
        if not is_full:
            scope = touched_customers(xref, ch_xref, ch_records, ch_inter,
                                      consent_touched).transform(io.checkpoint)
            if scope.isEmpty() and (ch_events.empty
                                    or (identity is not None and identity.isEmpty())):
                log.info("publish: no customer changed since the last run")
                save_watermarks(run, {ch.table: ch.version for ch in chs}, params=params,
                                saved=marks)
                customers = io.read_table(spark, lake.ref(GOLD_CUSTOMER_PROFILE)).count()
                run.metrics.update({"full": 0.0, "customers": float(customers),
                                    "as_of_yyyymmdd": float(as_of.strftime("%Y%m%d"))})
                return PublishReport(run.run_id, as_of, customers, 0, 0, 0, 0, 0, 0, 0, 0, 0,
                                     full=False)
            everyone = records.join(xref.select("record_id", "customer_id"), "record_id")
            # The customers in scope's rows, materialised once: the profile build reads each
            # several times, and every read of a whole table is a scan (and a file listing)
            # of all its rows for a few thousand kept.
            xref = xref.join(scope, "customer_id", "left_semi").transform(io.checkpoint)
            ids = xref.select("record_id")
            records = records.join(ids, "record_id", "left_semi").transform(io.checkpoint)
            # counted over every customer: survivorship ranks names by how common their
            # words are, e-mails and phones by how many customers share them
            population = population_counts(everyone, of=records).transform(io.checkpoint)
            interactions = interactions.join(ids, "record_id", "left_semi").transform(
                io.checkpoint)
            progress.step("customers in scope")
        else:
            log.info("publish: every customer (%s)", next(
                ch.reason for ch in (ch_xref, ch_records, ch_inter) if ch.full))

        def in_scope(df: DataFrame | None) -> DataFrame | None:
            return df if df is None or scope is None else df.join(scope, "customer_id",
                                                                  "left_semi")

        consent = None
        if resolve_consent is not None:
            # resolved against the records and cross-reference in scope (a subject held by
            # a customer out of scope resolves to nothing here): the same rows as resolving
            # against everyone and keeping the customers in scope, without reading everyone
            consent = consent_states(effective_consent(resolve_consent(records, xref), at))
        # Predicates are checked here, while the plan is built: a bad one fails before work.
        built = build_profiles(records, xref, interactions, settings, as_of, consent=consent,
                               purposes=ctx.cfg.privacy.purposes,
                               population=population)
        profiles = (built.withColumn("run_id", F.lit(run.run_id))
                    .withColumn("published_at", F.lit(at))
                    .select(*PROFILE_COLUMNS)).transform(io.checkpoint)
        progress.step("profiles built")

        with io.commit_metadata(spark, {"run_id": run.run_id, "stage": "publish",
                                        "as_of": as_of.isoformat()}):
            for t in (GOLD_CUSTOMER_PROFILE, GOLD_CUSTOMER_PROFILE_HISTORY):
                _add_missing_columns(ctx, lake.ref(t), profiles, ("household_id",))
            current, _ = _current(ctx, GOLD_CUSTOMER_PROFILE)
            # Households before the profiles are compared: household_id is profile content,
            # and a customer outside the scope can change household (publishes it again).
            hh = _households(ctx, profiles, scope, current, as_of, run.run_id, at)
            households: Households | None = None
            if hh is not None:
                households, with_ids = hh
                profiles = with_ids.transform(io.checkpoint)
                if scope is not None and households is not None:
                    scope = scope.unionByName(profiles.select("customer_id")).distinct(
                    ).transform(io.checkpoint)
                progress.step("households built")
            current = in_scope(current)
            classified = classify_changes(
                profiles, None if current is None else current.select("customer_id",
                                                                      "_row_hash"))
            p = _counts(classified, "_change")
            spells, _ = _current(ctx, GOLD_SEGMENT_MEMBERSHIP)
            transitions = segment_transitions(
                profiles, None if spells is None else in_scope(spells.filter(
                    F.col("exited_at").isNull()).select("customer_id", "segment")),
                at, run.run_id).transform(io.checkpoint)
            s = _counts(transitions, "_action")
            progress.step("profiles and segments compared")

            # Events first (an outbox, see discard_uncommitted_profile_events).
            if identity is not None and io.table_exists(spark, lake.ref(GOLD_PROFILE_EVENTS)):
                # a repeated publish (killed after its profiles, before its watermarks)
                # reads them again: announced once
                identity = unannounced_identity_events(
                    identity, io.read_table(spark, lake.ref(GOLD_PROFILE_EVENTS)))
            changed_ids = classified.filter(F.col("_change") != "unchanged").select(
                "customer_id")
            events = profile_events(
                profiles.join(changed_ids, "customer_id", "left_semi"),
                None if current is None else current.join(changed_ids, "customer_id",
                                                           "left_semi"),
                identity,
                attributes=[*[c for c in GOLDEN_COLUMNS if c not in ("customer_id", "lineage")],
                            "household_id"],
                metrics=list(METRIC_COLUMNS), run_id=run.run_id, at=at,
                purposes=sorted(ctx.cfg.privacy.purposes),
            ).transform(io.checkpoint)
            e = _counts(events, "event_type")
            if e:
                io.append_new_batches(events, lake.ref(GOLD_PROFILE_EVENTS), batch_col="run_id",
                                      known_batches=())
                crash_point("publish:after_profile_events")
            progress.step("profile events", rows=sum(e.values()))

            # Profile: upsert new and changed customers, delete vanished ones.
            if _merge_changed(ctx, run, p, classified, GOLD_CUSTOMER_PROFILE, "customer_id",
                              PROFILE_COLUMNS):
                crash_point("publish:after_profile")
                progress.step("profiles merged")

            # History (SCD2), compared with its own current rows.
            hist, _ = _current(ctx, GOLD_CUSTOMER_PROFILE_HISTORY)
            h_classified = classify_changes(
                profiles, None if hist is None else in_scope(hist.filter(
                    F.col("valid_to").isNull()).select("customer_id", "_row_hash")))
            h = _counts(h_classified, "_change")
            if h.get("insert", 0) + h.get("update", 0) + h.get("delete", 0):
                res = io.merge_scd2(
                    history_changes(h_classified, at), lake.ref(GOLD_CUSTOMER_PROFILE_HISTORY),
                    ["customer_id"], HISTORY_COLUMNS, open_col="valid_to",
                    close_set={"valid_to": "s._at", "is_current": "false"})
                run.output_versions[str(lake.ref(GOLD_CUSTOMER_PROFILE_HISTORY))] = (
                    res.version or 0)
                crash_point("publish:after_history")
                progress.step("history merged")

            # Segment membership: spells begin and end only on transitions.
            if s or spells is None:
                res = io.merge_scd2(
                    transitions, lake.ref(GOLD_SEGMENT_MEMBERSHIP), ["customer_id", "segment"],
                    MEMBERSHIP_COLUMNS, open_col="exited_at",
                    close_set={"exited_at": "s._at", "exited_run_id": "s._run_id"})
                run.output_versions[str(lake.ref(GOLD_SEGMENT_MEMBERSHIP))] = res.version or 0
                crash_point("publish:after_segment_membership")
                progress.step("segment membership merged")

            # Households: one row each, rewritten only where its content changed.
            hc: dict[str, int] = {}
            if households is not None:
                cur_hh, _ = _current(ctx, GOLD_HOUSEHOLDS)
                if cur_hh is not None and households.replaced is not None:
                    # rebuilt around the scope: compared with the households it replaces
                    cur_hh = cur_hh.join(households.replaced, "household_id", "left_semi")
                hh_classified = classify_changes(
                    households.households, None if cur_hh is None else cur_hh.select(
                        "household_id", "_row_hash"), keys=("household_id",))
                hc = _counts(hh_classified, "_change")
                if _merge_changed(ctx, run, hc, hh_classified, GOLD_HOUSEHOLDS,
                                  "household_id", HOUSEHOLD_COLUMNS):
                    crash_point("publish:after_households")
                    progress.step("households merged")
            save_watermarks(run, {ch.table: ch.version for ch in chs}, params=params,
                            saved=marks)

        table = io.read_table(spark, lake.ref(GOLD_CUSTOMER_PROFILE))
        # Segment sizes need a pass over every profile: a full publish reports them, an
        # incremental one the spells it opened and closed (segments_entered / exited).
        sizes = {r["segment"]: int(r["n"]) for r in table.select(
            F.explode("segments").alias("segment")).groupBy("segment").agg(
            F.count("*").alias("n")).collect()} if is_full else {}
        customers = table.count()
        report = PublishReport(
            run_id=run.run_id, as_of=as_of, customers=customers,
            profile_inserted=p.get("insert", 0), profile_updated=p.get("update", 0),
            profile_unchanged=p.get("unchanged", 0), profile_deleted=p.get("delete", 0),
            history_inserted=h.get("insert", 0) + h.get("update", 0),
            history_closed=h.get("update", 0) + h.get("delete", 0),
            history_unchanged=h.get("unchanged", 0),
            segments_entered=s.get("insert", 0), segments_exited=s.get("close", 0),
            segment_sizes=sizes, versions=dict(run.output_versions))
        run.row_counts.update({
            "profile_inserted": report.profile_inserted,
            "profile_updated": report.profile_updated,
            "profile_unchanged": report.profile_unchanged,
            "profile_deleted": report.profile_deleted,
            "history_inserted": report.history_inserted,
            "history_closed": report.history_closed,
            "segments_entered": report.segments_entered,
            "segments_exited": report.segments_exited,
            **{f"events_{k}": v for k, v in e.items()},
        })
        report.events = e
        report.full = is_full
        if households is not None:
            report.households, report.household_sizes = _household_counts(households)
            run.row_counts.update({f"households_{k}": hc.get(k, 0)
                                   for k in ("insert", "update", "delete")})
            run.metrics.update({f"households_{k}": float(v)
                                for k, v in report.households.items()})
        run.metrics.update({"full": float(is_full), "customers": float(customers),
                            "as_of_yyyymmdd": float(as_of.strftime("%Y%m%d"))})
        return report


def _household_counts(hh: Households) -> tuple[dict[str, int], dict[int, int]]:
    """Counts for the run's metrics, and households by size: of every household in a full
    publish, of the households rebuilt in an incremental one (like segment sizes, a count
    over everyone would cost the pass over every customer the rebuild avoids)."""
    sizes = {int(k): n for k, n in _counts(hh.households, "size").items()}
    blocked = {(r["kind"], r["reason"]): (int(r["keys"]), int(r["customers"]))
               for r in hh.blocked.groupBy("kind", "reason").agg(
                   F.count("*").alias("keys"), F.sum("customers").alias("customers")).collect()}
    counts = {
        "households": sum(sizes.values()),
        "multi_member": sum(n for k, n in sizes.items() if k > 1),
        "members": sum(k * n for k, n in sizes.items()),
        "largest": max(sizes, default=0),
        "addresses_over_cap": blocked.get(("address", "over_cap"), (0, 0))[0],
        "address_over_cap_customers": blocked.get(("address", "over_cap"), (0, 0))[1],
        "phones_over_cap": blocked.get(("phone", "over_cap"), (0, 0))[0],
        "phone_over_cap_customers": blocked.get(("phone", "over_cap"), (0, 0))[1],
        "placeholder_phones": blocked.get(("phone", "placeholder"), (0, 0))[0],
    }
    return counts, dict(sorted(sizes.items()))


# --------------------------------------------------------------------------- look-ups


@dataclass
class ProfileLookup:
    """A profile as found: ``customer_id`` may differ from ``requested_id`` (merged away)."""

    requested_id: str
    customer_id: str | None
    merged_chain: list[str]
    version: int | None
    as_of: str | None
    profile: dict[str, Any] | None


def _parse_as_of(as_of: str | None) -> tuple[int | None, str | None]:
    if as_of is None:
        return None, None
    text = as_of.strip()
    if text.isdigit():
        return int(text), None
    try:
        datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise ValueError(f"--as-of {as_of!r}: give a table version (e.g. 3) or a timestamp "
                         "(e.g. '2026-06-30 12:00:00')") from None
    return None, text


def _survivor(ctx: StageContext, customer_id: str) -> tuple[str, list[str]]:
    """Follow ``merged`` identity events from ``customer_id`` to the id that survived."""
    ref = ctx.lakehouse.ref(GOLD_IDENTITY_EVENTS)
    if not io.table_exists(ctx.spark, ref):
        return customer_id, []
    merges = io.read_table(ctx.spark, ref).filter(F.col("event_type") == "merged")
    chain: list[str] = []
    current = customer_id
    while len(chain) < 50:
        row = (merges.filter(F.col("customer_id") == current)
               .orderBy(F.desc("event_at")).select("related_customer_id").first())
        if row is None or row[0] is None or row[0] in chain or row[0] == customer_id:
            break
        current = row[0]
        chain.append(current)
    return current, chain


def lookup_profile(ctx: StageContext, customer_id: str, as_of: str | None = None
                   ) -> ProfileLookup:
    """The profile of ``customer_id`` now, or at a table version / timestamp (time travel).

    An id that was merged into another resolves to the survivor (``merged_chain`` lists the
    ids followed).

    Raises:
        ValueError: no profile table, a bad ``as_of``, or a version/time the table lacks.
    """
    spark = ctx.spark
    ref = ctx.lakehouse.ref(GOLD_CUSTOMER_PROFILE)
    if not io.table_exists(spark, ref):
        raise ValueError(f"{ref} does not exist: run `udp publish` first")
    version, timestamp = _parse_as_of(as_of)
    try:
        table = io.read_table(spark, ref, version=version, timestamp=timestamp)
        table.schema  # noqa: B018 - resolves the snapshot now, so a bad version fails here
    except Exception as exc:
        first = str(exc).splitlines()[0]
        raise ValueError(f"{ref} has no state at {as_of!r}: {first}; `udp history` shows the "
                         "versions (DESCRIBE HISTORY)") from None
    if version is None:
        hist = io.delta_table(spark, ref).history()
        if timestamp is not None:
            hist = hist.filter(F.col("timestamp") <= F.lit(timestamp).cast("timestamp"))
        top = hist.agg(F.max("version")).first()
        version = int(top[0]) if top and top[0] is not None else None

    def find(cid: str) -> Row | None:
        return table.filter(F.col("customer_id") == cid).first()

    row = find(customer_id)
    chain: list[str] = []
    found_id: str | None = customer_id
    if row is None:
        survivor, chain = _survivor(ctx, customer_id)
        row = find(survivor) if chain else None
        found_id = survivor if row is not None else None
    return ProfileLookup(customer_id, found_id, chain, version, as_of,
                         row.asDict(recursive=True) if row is not None else None)


def profile_lineage(ctx: StageContext, customer_id: str) -> dict[str, Any]:
    """Everything behind a profile: its per-field lineage, source records, identity events
    and the runs (standardize, resolve, publish) that produced them."""
    spark, lake = ctx.spark, ctx.lakehouse
    found = lookup_profile(ctx, customer_id)
    cid = found.customer_id or customer_id
    xref = _require(ctx, GOLD_IDENTITY_XREF, "run `udp resolve` first")
    records = _require(ctx, SILVER_PARTY_RECORDS, "run `udp standardize` first")
    linked = (xref.filter(F.col("customer_id") == cid)
              .select("record_id", "reason", "best_link_probability",
                      F.col("run_id").alias("resolve_run_id"))
              .join(records.select("record_id", "source", "source_key", "full_name", "email",
                                   "phone_e164", "mobile_e164", "postcode", "date_of_birth",
                                   "updated_at", "_batch_ids",
                                   F.col("_run_id").alias("standardize_run_id")),
                    "record_id", "left")
              .orderBy("record_id").collect())
    events: list[Row] = []
    ev_ref = lake.ref(GOLD_IDENTITY_EVENTS)
    ids = {customer_id, cid, *found.merged_chain}
    if io.table_exists(spark, ev_ref):
        events = (io.read_table(spark, ev_ref)
                  .filter(F.col("customer_id").isin(*ids)
                          | F.col("related_customer_id").isin(*ids))
                  .orderBy("event_at", "event_type").collect())
    history: list[Row] = []
    hist_ref = lake.ref(GOLD_CUSTOMER_PROFILE_HISTORY)
    if io.table_exists(spark, hist_ref):
        history = (io.read_table(spark, hist_ref).filter(F.col("customer_id").isin(*ids))
                   .select("customer_id", "run_id", "change_type", "valid_from", "valid_to",
                           "is_current").orderBy("valid_from").collect())
    run_ids = ({r["resolve_run_id"] for r in linked} | {r["standardize_run_id"] for r in linked}
               | {r["run_id"] for r in events} | {r["run_id"] for r in history}) - {None}
    runs: list[Row] = []
    runs_ref = lake.ref(AUDIT_RUNS)
    if run_ids and io.table_exists(spark, runs_ref):
        runs = (io.read_table(spark, runs_ref).filter(F.col("run_id").isin(*sorted(run_ids)))
                .select("run_id", "stage", "status", "started_at", "config_hash",
                        "code_version", "input_versions", "output_versions", "mlflow_run_id")
                .orderBy("started_at").collect())
    return {
        "requested_id": customer_id, "customer_id": found.customer_id,
        "merged_chain": found.merged_chain,
        "fields": field_lineage(found.profile) if found.profile else [],
        "records": [r.asDict(recursive=True) for r in linked],
        "events": [r.asDict(recursive=True) for r in events],
        "history": [r.asDict(recursive=True) for r in history],
        "runs": [r.asDict(recursive=True) for r in runs],
    }


def field_lineage(profile: dict[str, Any]) -> list[dict[str, Any]]:
    """``[{field, value, source, record_id, rule, observed_at}]`` for each golden value."""
    lineage = profile.get("lineage") or {}
    out = []
    for fields in ATTRIBUTE_FIELDS.values():
        for f in fields:
            entry = lineage.get(f)
            if profile.get(f) is not None and entry:
                out.append({"field": f, "value": profile[f], **entry})
    return out


# --------------------------------------------------------------------------- printing


def _fmt(value: object) -> str:
    if isinstance(value, datetime):
        return value.strftime("%Y-%m-%d %H:%M:%S")
    return str(value)


def to_json(obj: object) -> str:
    """JSON for the CLI's ``--json`` (dates and decimals as strings)."""
    return json.dumps(obj, indent=2, sort_keys=False, default=_fmt)


def format_profile(found: ProfileLookup) -> list[str]:
    """Human-readable lines: golden fields with lineage, contacts, metrics, segments."""
    lines: list[str] = []
    where = f" at {found.as_of} (version {found.version})" if found.as_of else ""
    if found.merged_chain:
        lines.append(f"{found.requested_id} was merged into "
                     f"{' -> '.join(found.merged_chain)}; showing {found.customer_id}")
    p = found.profile
    if p is None:
        lines.append(f"no profile for {found.requested_id}{where}")
        return lines
    lines.append(f"customer {p['customer_id']}{where}: {p['record_count']} records from "
                 f"{', '.join(p['sources'])}; published by {p['run_id']} at "
                 f"{_fmt(p['published_at'])}")
    for item in field_lineage(p):
        lines.append(f"  {item['field']:15s} {_fmt(item['value']):32s} <- {item['record_id']} "
                     f"({item['rule']}, {_fmt(item['observed_at'])})")
    for name in ("emails", "phones"):
        for e in p[name] or []:
            lines.append(f"  {name[:-1]:15s} {e['value']:32s} {e['source_count']} source(s), "
                         f"seen {_fmt(e['first_seen_at'])} .. {_fmt(e['last_seen_at'])}")
    for a in p["addresses"] or []:
        text = ", ".join(str(a[k]) for k in ("street", "city", "postcode", "country") if a[k])
        lines.append(f"  {'address':15s} {text:32s} {a['source_count']} source(s), "
                     f"last seen {_fmt(a['last_seen_at'])}")
    lines.append(f"  orders {p['orders']}, spend {p['total_spend']}, avg order "
                 f"{p['avg_order_value']}, ltv {p['ltv']}, predicted ltv {p['predicted_ltv']}")
    lines.append(f"  last purchase {_fmt(p['last_purchase_at'])} ({p['recency_days']} days), "
                 f"RFM {p['rfm_score']}, last seen {_fmt(p['last_seen_at'])}, preferred "
                 f"channel {p['preferred_channel']}, open tickets {p['open_tickets']}")
    if p["email_sent"] is not None or p["email_status"] is not None:
        lines.append(f"  email sent {p['email_sent']}, open rate {p['email_open_rate']}, "
                     f"click rate {p['email_click_rate']}, status {p['email_status']}")
    lines.append(f"  segments: {', '.join(p['segments']) or '-'}")
    return lines


def format_lineage(info: dict[str, Any]) -> list[str]:
    """Human-readable lines of :func:`profile_lineage`."""
    lines: list[str] = []
    if info["merged_chain"]:
        lines.append(f"{info['requested_id']} was merged into "
                     f"{' -> '.join(info['merged_chain'])}")
    lines.append(f"customer {info['customer_id']}")
    lines.append("golden values (field, value <- record, rule, observed at)")
    for f in info["fields"]:
        lines.append(f"  {f['field']:15s} {_fmt(f['value']):32s} <- {f['record_id']} "
                     f"({f['rule']}, {_fmt(f['observed_at'])})")
    lines.append(f"source records ({len(info['records'])})")
    for r in info["records"]:
        lines.append(f"  {r['record_id']:36s} {r['full_name'] or '':24s} {r['email'] or '':30s}"
                     f" {r['reason']} (resolve {r['resolve_run_id']}, standardize "
                     f"{r['standardize_run_id']})")
    lines.append(f"identity events ({len(info['events'])})")
    for e in info["events"]:
        lines.append(f"  {_fmt(e['event_at'])} {e['event_type']:8s} {e['customer_id']} "
                     f"{'-> ' + e['related_customer_id'] if e['related_customer_id'] else ''} "
                     f"({e['records']} records, {e['run_id']})")
    lines.append(f"profile versions ({len(info['history'])})")
    for h in info["history"]:
        until = _fmt(h["valid_to"]) if h["valid_to"] else "now"
        lines.append(f"  {_fmt(h['valid_from'])} .. {until:19s} {h['change_type']:8s} "
                     f"{h['run_id']}")
    lines.append(f"runs ({len(info['runs'])})")
    for r in info["runs"]:
        lines.append(f"  {r['run_id']:44s} {r['stage']:12s} {r['status']:10s} config "
                     f"{r['config_hash']} code {r['code_version']}")
    return lines
