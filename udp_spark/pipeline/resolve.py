"""The resolve stage: clusters over accepted links and stable customer ids."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from functools import reduce

from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from udp_spark import io, progress
from udp_spark.changes import Changes, changes_since, fingerprint, save_watermarks
from udp_spark.faults import crash_point
from udp_spark.graph import DRIVER_MAX_EDGES, connected_components
from udp_spark.matching.clustering import conflict_flag, split_components
from udp_spark.matching.comparisons import email as email_cmp
from udp_spark.matching.comparisons import loyalty_id as loyalty_cmp
from udp_spark.matching.identity import assign_customer_ids
from udp_spark.matching.labels import effective_labels
from udp_spark.pipeline.context import StageContext, audited_run, stage_watermarks
from udp_spark.pipeline.inputs import party_records
from udp_spark.tables import (
    GOLD_IDENTITY_EVENTS,
    GOLD_IDENTITY_XREF,
    SILVER_MATCH_LABELS,
    SILVER_MATCH_SCORES,
    SILVER_PARTY_RECORDS,
    TableRef,
)

log = logging.getLogger(__name__)

@dataclass
class ResolveReport:
    run_id: str
    records: int
    customers: int
    largest_cluster: int
    events: dict[str, int]
    ids_changed: int
    full: bool = True
    records_reclustered: int = 0


MANUAL_WEIGHT = 1e6  # a manual link is merged before any scored one


def cluster_records(records: DataFrame, scores: DataFrame, threshold: float, *,
                    dob: bool = True, given_name: bool = True, loyalty_id: bool = True,
                    middle_name: bool = True, identifiers: Sequence[str] = (),
                    backend: str = "auto",
                    driver_max_edges: int = DRIVER_MAX_EDGES,
                    manual: DataFrame | None = None,
                    editions: DataFrame | None = None) -> DataFrame:
    """``(record_id, cluster_id, component_id)`` for every record: components over accepted
    edges (``component_id``: the smallest record id of the component), split
    where strong conflicts say two members are different people (``identifiers``: names
    of identifier comparisons whose disagreement is a conflict).

    ``manual``: ``(record_id_l, record_id_r, is_match)`` decisions of a person, which
    override the matcher: a match is a link merged before any other (and not a conflict),
    a non-match is a conflict whatever the score.

    ``editions``: ``(record_id, edition)`` of records from registers that list a person once
    per edition (:func:`edition_keys`): two records of one edition in one component are a
    conflict, scored or not.
    """
    # (a model trained before the middle-name comparison scores without it)
    conflict = conflict_flag(dob=dob, given_name=given_name, loyalty_id=loyalty_id,
                             identifiers=[i for i in identifiers if i in scores.columns],
                             middle_name=middle_name and "middle_name" in scores.columns)
    # Deterministic links: the same (canonical) email or loyalty card, unless conflicting.
    key_link = ((F.col("email") == email_cmp().top_level)
                | (F.col("loyalty_id") == loyalty_cmp().top_level))
    flagged = scores.select(
        "record_id_l", "record_id_r", "match_weight",
        (((F.col("match_probability") >= threshold) | key_link) & ~conflict).alias("is_edge"),
        conflict.alias("is_conflict"))
    if manual is not None:
        ids = records.select("record_id")
        decided = (manual.join(ids.withColumnRenamed("record_id", "record_id_l"), "record_id_l")
                   .join(ids.withColumnRenamed("record_id", "record_id_r"), "record_id_r")
                   .select("record_id_l", "record_id_r", F.col("is_match").alias("_m")))
        flagged = flagged.join(decided, ["record_id_l", "record_id_r"], "full_outer").select(
            "record_id_l", "record_id_r",
            F.when(F.col("_m"), F.lit(MANUAL_WEIGHT)).otherwise(
                F.coalesce("match_weight", F.lit(0.0))).alias("match_weight"),
            F.coalesce("_m", "is_edge").alias("is_edge"),
            F.coalesce(~F.col("_m"), "is_conflict").alias("is_conflict"))
    edges = flagged.filter("is_edge").select(F.col("record_id_l").alias("src"),
                                              F.col("record_id_r").alias("dst"))
    vertices = edges.select(F.col("src").alias("id")).unionByName(
        edges.select(F.col("dst").alias("id"))).distinct()
    cc = connected_components(vertices, edges, backend=backend,  # type: ignore[arg-type]
                              driver_max_edges=driver_max_edges)
    if editions is not None:
        cc = cc.transform(io.checkpoint)  # read twice: for the editions' pairs and the split
        flagged = flagged.unionByName(_same_edition_conflicts(editions, cc))
    split = flagged.transform(split_components(cc)).select("record_id", "cluster_id",
                                                           "component")
    return records.select("record_id").join(split, "record_id", "left").select(
        "record_id", F.coalesce("cluster_id", "record_id").alias("cluster_id"),
        F.coalesce("component", "record_id").alias("component_id"))


def _edition_sources(ctx: StageContext) -> list[str]:
    """The sources marked ``once_per_edition``, sorted."""
    return sorted(n for n, s in ctx.cfg.sources.items() if s.once_per_edition)


def edition_keys(ctx: StageContext, records: DataFrame) -> DataFrame | None:
    """``(record_id, edition)`` of the records of ``once_per_edition`` sources that carry a
    date (source and ``created_at``), or None when no source is one."""
    sources = _edition_sources(ctx)
    if not sources:
        return None
    return records.filter(F.col("source").isin(sources) & F.col("created_at").isNotNull()) \
        .select("record_id", F.concat_ws("|", "source", F.col("created_at").cast("string"))
                .alias("edition"))


def _same_edition_conflicts(editions: DataFrame, components: DataFrame) -> DataFrame:
    """Conflict rows (the columns :func:`split_components` reads) for every two records of
    one edition inside one component: pairs are formed only within components, so an
    edition of thousands of entries costs no more than its members that meet."""
    placed = editions.join(components.select(F.col("id").alias("record_id"), "component"),
                           "record_id")
    left = placed.select(F.col("record_id").alias("record_id_l"), "component", "edition")
    right = placed.select(F.col("record_id").alias("record_id_r"), "component", "edition")
    return left.join(right, ["component", "edition"]).filter(
        F.col("record_id_l") < F.col("record_id_r")).select(
        "record_id_l", "record_id_r", F.lit(0.0).alias("match_weight"),
        F.lit(False).alias("is_edge"), F.lit(True).alias("is_conflict"))


def manual_decisions(ctx: StageContext) -> DataFrame | None:
    """``(record_id_l, record_id_r, is_match)`` from ``silver.match_labels`` whose source is
    one of ``resolve.manual_label_sources`` (clerical review), or None if there are none."""
    sources = ctx.cfg.matching.resolve.manual_label_sources
    ref = ctx.lakehouse.ref(SILVER_MATCH_LABELS)
    if not sources or not io.table_exists(ctx.spark, ref):
        return None
    # Several manual sources may have decided a pair: the newest decision counts.
    labels = (effective_labels(
        io.read_table(ctx.spark, ref).filter(F.col("label_source").isin(*sources)), sources)
        .select("record_id_l", "record_id_r", "is_match").transform(io.checkpoint))
    return None if labels.isEmpty() else labels


def discard_uncommitted_events(ctx: StageContext) -> int:
    """Delete the identity events of a resolve run that died before its xref commit.

    Resolve appends a run's events, then merges its xref; both commits carry the run id.
    Events committed after the xref's latest commit belong to a run whose xref never
    landed (runs are serialised, so only the latest events commit can be one). Returns the
    number of event rows deleted.
    """
    lake = ctx.lakehouse
    return io.discard_uncommitted_outbox(
        ctx.spark, lake.ref(GOLD_IDENTITY_EVENTS), lake.ref(GOLD_IDENTITY_XREF))[1]


XREF_COLUMNS = ("record_id", "customer_id", "cluster_size", "reason", "best_link_probability",
                "run_id", "component_id", "_row_hash")


def resolve_fingerprint(ctx: StageContext) -> str:
    """What the clusters depend on besides the scores: threshold and conflict rules."""
    rcfg = ctx.cfg.matching.resolve
    how = {"graph_backend", "driver_graph_max_edges"}  # how components are found, not which
    editions = _edition_sources(ctx)
    return fingerprint(rcfg.model_dump(mode="json", exclude=how),
                       [i.name for i in ctx.cfg.matching.identifiers if i.conflict],
                       *([editions] if editions else []))


def records_in_scope(xref: DataFrame, touched: DataFrame) -> DataFrame:
    """``record_id`` of every record to cluster again: the ``touched`` ones and all members
    of the components they belonged to.

    Components are closed under the accepted edges, so an edge that is new, retired or
    re-scored has both ends touched, and any other edge of a touched component lies inside
    the scope: re-clustering the scope gives the clusters a full run would give, and no
    cluster outside it can change.
    """
    comps = xref.join(touched, "record_id", "left_semi").select("component_id").distinct()
    return (xref.join(comps, "component_id", "left_semi").select("record_id")
            .unionByName(touched).distinct())


def run_resolve(ctx: StageContext, *, full: bool = False) -> ResolveReport:
    """Clusters and stable customer ids into ``gold.identity_xref`` and ``identity_events``,
    for the components that records, scores or manual labels changed since the last run
    touch (every record the first time, when the threshold or conflict rules change, or
    with ``full``). Clusters outside them are not read and their ids never change.
    """
    rcfg = ctx.cfg.matching.resolve
    spark, lake = ctx.spark, ctx.lakehouse
    scores_ref, rec_ref = lake.ref(SILVER_MATCH_SCORES), lake.ref(SILVER_PARTY_RECORDS)
    labels_ref, xref_ref = lake.ref(SILVER_MATCH_LABELS), lake.ref(GOLD_IDENTITY_XREF)
    params = resolve_fingerprint(ctx)
    with audited_run(ctx, "resolve") as run, io.commit_metadata(
            spark, {"run_id": run.run_id, "stage": "resolve"}):
        discarded = discard_uncommitted_events(ctx)
        marks = stage_watermarks(ctx, "resolve")
        has_state = (io.table_exists(spark, xref_ref)
                     and "component_id" in io.read_table(spark, xref_ref).columns)
        chs = [changes_since(spark, lake, "resolve", ref, params=params, marks=marks,
                             force_full=full or not has_state)
               for ref in (scores_ref, rec_ref, labels_ref)]
        ch_scores, ch_records, ch_labels = chs
        if ch_scores.version is None:
            raise ValueError(f"{scores_ref} does not exist: run `udp score` first")
        for ch in chs:
            if ch.version is not None:
                run.input_versions[ch.table] = ch.version
        run.row_counts["identity_events_discarded"] = discarded
        progress.step("changes read")
        is_full = ch_scores.full or ch_records.full
        if not is_full and all(ch.empty for ch in chs):
            log.info("resolve: no record, score or label changed since the last run")
            run.metrics["full"] = 0.0
            run.row_counts["records_reclustered"] = 0
            return _unchanged_report(ctx, run.run_id)
        records = party_records(ctx, version=ch_records.version)
        scores = io.read_table(spark, scores_ref, version=ch_scores.version)
        manual = manual_decisions(ctx)
        previous = (io.read_table(spark, xref_ref).select("record_id", "customer_id",
                                                          *(["component_id"] if has_state
                                                            else []))
                    .transform(io.checkpoint) if io.table_exists(spark, xref_ref) else None)
        gone = None
        if is_full:
            log.info("resolve: every record (%s)", ch_scores.reason if ch_scores.full
                     else ch_records.reason)
        else:
            assert previous is not None
            touched = _touched_records(ch_scores, ch_records, ch_labels, labels_ref, ctx)
            scope = records_in_scope(previous, touched).transform(io.checkpoint)
            gone = scope.join(records, "record_id", "left_anti")  # deleted records
            records = records.join(scope, "record_id", "left_semi")
            scores = (scores.join(scope.toDF("record_id_l"), "record_id_l", "left_semi")
                      .join(scope.toDF("record_id_r"), "record_id_r", "left_semi"))
            previous = previous.join(scope, "record_id", "left_semi")
            progress.step("records in scope")
        clusters = cluster_records(
            records, scores, rcfg.threshold, dob=rcfg.conflict_on_dob,
            given_name=rcfg.conflict_on_given_name, loyalty_id=rcfg.conflict_on_loyalty_id,
            middle_name=rcfg.conflict_on_middle_name,
            identifiers=[i.name for i in ctx.cfg.matching.identifiers if i.conflict],
            backend=rcfg.graph_backend, driver_max_edges=rcfg.driver_graph_max_edges,
            manual=manual, editions=edition_keys(ctx, records)).transform(io.checkpoint)
        progress.step("records clustered")
        ids, events = assign_customer_ids(clusters, previous, run.run_id)
        sizes = clusters.groupBy("cluster_id").agg(F.count("*").alias("cluster_size"))
        # Why a record is where it is: a manual match inside its cluster ("manual"), else a
        # model link at or over the threshold inside its cluster ("model_score"), else only
        # a deterministic link ("key"), else "singleton".
        cl_l = clusters.select(F.col("record_id").alias("record_id_l"),
                               F.col("cluster_id").alias("_c_l"))
        cl_r = clusters.select(F.col("record_id").alias("record_id_r"),
                               F.col("cluster_id").alias("_c_r"))

        def in_cluster(pairs: DataFrame, value: str) -> DataFrame:
            return (pairs.join(cl_l, "record_id_l").join(cl_r, "record_id_r")
                    .filter(F.col("_c_l") == F.col("_c_r"))
                    .select(F.explode(F.array("record_id_l", "record_id_r")).alias("record_id"),
                            value))

        best = in_cluster(scores.filter(F.col("match_probability") >= rcfg.threshold),
                          "match_probability").groupBy("record_id").agg(
            F.max("match_probability").alias("best_link_probability"))
        manual_linked = (in_cluster(manual.filter("is_match"), "is_match")
                         .groupBy("record_id").agg(F.lit(True).alias("_manual"))
                         if manual is not None else
                         spark.createDataFrame([], "record_id string, _manual boolean"))
        xref = (clusters.join(ids, "cluster_id").join(sizes, "cluster_id")
                .join(best, "record_id", "left").join(manual_linked, "record_id", "left")
                .select("record_id", "customer_id", "cluster_size",
                        F.when(F.col("cluster_size") == 1, F.lit("singleton"))
                        .when(F.col("_manual"), F.lit("manual"))
                        .when(F.col("best_link_probability").isNotNull(),
                              F.lit("model_score"))
                        .otherwise(F.lit("key")).alias("reason"),
                        "best_link_probability",
                        F.lit(run.run_id).alias("run_id"), "component_id")
                .withColumn("_row_hash", F.sha2(F.concat_ws(
                    "|", "customer_id", "reason", "cluster_size", "component_id"), 256))
                ).transform(io.checkpoint)
        progress.step("customer ids assigned")
        # The events are written before the xref, as an outbox: a run that dies between the
        # two commits leaves events whose run never committed an xref, which the next run
        # discards (discard_uncommitted_events) before it computes them again. The other
        # order would lose them: the next run finds the xref already changed and no event.
        ev = events.transform(io.checkpoint)
        ev_counts = {r["event_type"]: int(r["n"]) for r in
                     ev.groupBy("event_type").agg(F.count("*").alias("n")).collect()}
        if ev_counts:
            io.append_new_batches(
                ev.withColumn("run_id", F.lit(run.run_id))
                .withColumn("event_at", F.current_timestamp()),
                lake.ref(GOLD_IDENTITY_EVENTS), batch_col="run_id", known_batches=())
            crash_point("resolve:after_identity_events")
            progress.step("identity events appended", rows=sum(ev_counts.values()))
        if not has_state:  # first run, or an xref written before component ids existed
            changed = 0 if previous is None else xref.join(
                previous.toDF("record_id", "_old"), "record_id", "full").filter(
                ~F.col("customer_id").eqNullSafe(F.col("_old"))).count()
            res = io.overwrite(xref, xref_ref)
        else:
            changes = xref.withColumn("_action", F.lit("upsert"))
            if gone is not None:
                changes = changes.unionByName(
                    io.read_table(spark, xref_ref).join(gone, "record_id", "left_semi")
                    .select(*XREF_COLUMNS).withColumn("_action", F.lit("delete")))
            elif previous is not None:  # a full run: records that no longer exist
                changes = changes.unionByName(
                    io.read_table(spark, xref_ref).join(xref.select("record_id"), "record_id",
                                                        "left_anti")
                    .select(*XREF_COLUMNS).withColumn("_action", F.lit("delete")))
            res = io.merge_changes(changes.transform(io.checkpoint), xref_ref,
                                   ["record_id"], XREF_COLUMNS, change_col="_row_hash")
            changed = (res.metric("numTargetRowsUpdated") + res.metric("numTargetRowsDeleted")
                       + res.metric("numTargetRowsInserted"))
        crash_point("resolve:after_identity_xref")
        progress.step("identity xref written", rows=changed)
        save_watermarks(run, {ch.table: ch.version for ch in chs}, params=params,
                        saved=marks)
        stats = io.one_row(io.read_table(spark, xref_ref).agg(
            F.count("*").alias("n"), F.countDistinct("customer_id").alias("c"),
            F.max("cluster_size").alias("big")))
        n_scope = clusters.count()
        run.row_counts.update({"identity_xref_changed": changed, "records_reclustered": n_scope,
                               **{f"events_{k}": v for k, v in ev_counts.items()}})
        run.metrics.update({"customers": float(stats["c"]), "largest_cluster":
                            float(stats["big"]), "full": float(is_full)})
        return ResolveReport(run.run_id, int(stats["n"]), int(stats["c"]), int(stats["big"]),
                             ev_counts, changed, is_full, n_scope)


def _touched_records(ch_scores: Changes, ch_records: Changes, ch_labels: Changes,
                     labels_ref: TableRef, ctx: StageContext) -> DataFrame:
    """``record_id`` of records whose edges may have changed: ends of changed scores and
    labels, and records new, deleted or changed in content."""
    parts: list[DataFrame] = []
    for ch in (ch_scores, ch_labels):
        if ch.rows is not None and not ch.empty:
            parts += [ch.keys("record_id_l").toDF("record_id"),
                      ch.keys("record_id_r").toDF("record_id")]
    if ch_labels.full:  # labels appeared since the last run: all of them (a small table)
        labels = io.read_table(ctx.spark, labels_ref, version=ch_labels.version)
        parts += [labels.select(F.col("record_id_l").alias("record_id")),
                  labels.select(F.col("record_id_r").alias("record_id"))]
    if ch_records.rows is not None and not ch_records.empty:
        # (a record changed only in lineage, landed again under another file name, moves
        # no edge and no conflict rule)
        parts.append(ch_records.content_changed("record_id"))
    if not parts:
        return ctx.spark.createDataFrame([], "record_id string")
    return reduce(DataFrame.unionByName, parts).distinct()


def _unchanged_report(ctx: StageContext, run_id: str) -> ResolveReport:
    stats = io.one_row(io.read_table(ctx.spark, ctx.lakehouse.ref(GOLD_IDENTITY_XREF)).agg(
        F.count("*").alias("n"), F.countDistinct("customer_id").alias("c"),
        F.max("cluster_size").alias("big")))
    return ResolveReport(run_id, int(stats["n"]), int(stats["c"]), int(stats["big"] or 0), {},
                         0, False, 0)
