"""Standardize: bronze -> silver.party_records, silver.interactions, silver.quarantine."""

from __future__ import annotations

import functools
import logging
from dataclasses import dataclass, field

from pyspark import StorageLevel
from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from udp_spark import io, progress
from udp_spark.changes import (
    CDF_COLUMNS,
    Changes,
    changes_since,
    fingerprint,
    save_watermarks,
)
from udp_spark.config import SourceConfig
from udp_spark.faults import crash_point
from udp_spark.pipeline.context import StageContext, audited_run, stage_watermarks
from udp_spark.privacy.consent import source_consent_events
from udp_spark.standardize.transforms import (
    check_interactions,
    check_party,
    interaction_records,
    party_records,
    quarantine_rows,
    row_keys,
)
from udp_spark.tables import (
    PRIVACY_CONSENT_EVENTS,
    SILVER_INTERACTIONS,
    SILVER_PARTY_RECORDS,
    SILVER_QUARANTINE,
)

log = logging.getLogger(__name__)


@dataclass
class StandardizeReport:
    run_id: str
    sources: list[str]
    party_inserted: int
    party_updated: int
    interactions_inserted: int
    interactions_updated: int
    quarantine_inserted: int
    full_sources: list[str] = field(default_factory=list)  # standardized whole (no watermark)
    unchanged_sources: list[str] = field(default_factory=list)  # nothing new in bronze
    # source -> rows read, for sources whose every row read was rejected (all quarantined)
    failed_sources: dict[str, int] = field(default_factory=dict)


class StandardizeError(RuntimeError):
    """Some sources had every row rejected (quarantined, with the reasons); the others were
    standardized and written. ``report`` holds the whole run."""

    def __init__(self, report: StandardizeReport, reasons: dict[str, str]) -> None:
        self.report = report
        super().__init__(
            f"standardize: {len(report.failed_sources)} of {len(report.sources)} sources had "
            "every row rejected (see silver.quarantine; the others were written):\n  "
            + "\n  ".join(f"source {name!r}: all {n:,} rows rejected, e.g. {reasons[name]!r}"
                           for name, n in sorted(report.failed_sources.items())))


def _all_rejected(checked: list[tuple[str, DataFrame]]) -> dict[str, tuple[int, str]]:
    """source -> (rows, most frequent reason) for the sources whose every checked row is
    rejected: one Spark job over all sources, not one per source."""
    frames = [df.select(F.lit(name).alias("_source"), "_reject_reason") for name, df in checked]
    if not frames:
        return {}
    counts = functools.reduce(DataFrame.unionByName, frames).groupBy("_source").agg(
        F.count(F.lit(1)).alias("n"), F.count("_reject_reason").alias("rejected"),
        F.mode("_reject_reason").alias("reason"))
    return {r["_source"]: (int(r["n"]), str(r["reason"])) for r in counts.collect()
            if r["n"] and r["n"] == r["rejected"]}


def _union(frames: list[DataFrame]) -> DataFrame | None:
    if not frames:
        return None
    return functools.reduce(lambda a, b: a.unionByName(b), frames)


def source_fingerprint(ctx: StageContext, source: SourceConfig) -> str:
    """What a source's silver rows depend on: its mapping and the standardize settings
    (``once_per_edition`` is read by resolve, not here)."""
    return fingerprint(source.model_dump(mode="json", exclude={"once_per_edition"}),
                       ctx.cfg.standardize.model_dump(mode="json"))


def rows_to_standardize(bronze: DataFrame, source: SourceConfig, ch: Changes
                        ) -> DataFrame | None:
    """The bronze rows whose silver rows the changes ``ch`` affect, or None when no row
    was landed since the watermark.

    A full change set: all of bronze. Otherwise the rows landed since the watermark, plus
    every earlier row sharing a key with one of them (a record is the merge of all its rows:
    each field takes its latest non-null value), so the result equals standardizing all of
    bronze, for the keys that changed. Rows deleted from bronze (an erasure, retention) were
    taken out of silver by the job that deleted them: only landed rows count.
    """
    if ch.full:
        return bronze
    assert ch.rows is not None
    new = ch.rows.filter(F.col("_change_type") == "insert").drop(*CDF_COLUMNS)
    batches = sorted(r[0] for r in new.select("_batch_id").distinct().collect())
    if not batches:
        return None
    hit = F.col("_batch_id").isin(*batches)
    out = bronze
    for i, key in enumerate(row_keys(source)):
        touched = (new.select(key.alias(f"_k{i}")).filter(F.col(f"_k{i}").isNotNull())
                   .distinct().withColumn(f"_hit{i}", F.lit(True)))
        out = out.withColumn(f"_k{i}", key).join(touched, f"_k{i}", "left")
        hit = hit | F.col(f"_hit{i}").isNotNull()
    extra = [c for c in out.columns if c not in bronze.columns]
    return out.filter(hit).drop(*extra)


def run_standardize(ctx: StageContext, sources: list[str] | None = None, *,
                    full: bool = False) -> StandardizeReport:
    """Standardize what was landed since the last run (default: all configured sources with a
    bronze table); ``full`` standardizes all of bronze again.

    Per source, reads the bronze rows landed since its watermark (change data feed) and the
    earlier rows of the records and interactions they touch, and MERGEs into silver: rows
    whose content did not change are not rewritten, so a re-delivered batch changes no row.
    One commit per silver table, then the watermarks.
    """
    spark, cfg, lake = ctx.spark, ctx.cfg, ctx.lakehouse
    names = sources or sorted(cfg.sources)
    with audited_run(ctx, "standardize") as run, io.commit_metadata(
            spark, {"run_id": run.run_id, "stage": "standardize"}):
        marks = stage_watermarks(ctx, "standardize")
        done: dict[str, tuple[int | None, str]] = {}
        full_sources: list[str] = []
        unchanged: list[str] = []
        parties: list[DataFrame] = []
        interactions: list[DataFrame] = []
        quarantine: list[DataFrame] = []
        consent: list[DataFrame] = []
        cached: list[DataFrame] = []
        used: list[str] = []
        to_check: list[tuple[str, DataFrame]] = []  # each source's rows, all rejected?
        for name in names:
            source = cfg.sources[name]
            ref = lake.bronze(name)
            if not io.table_exists(spark, ref):
                log.warning("bronze.%s does not exist yet; run ingest first (skipped)", name)
                continue
            params = source_fingerprint(ctx, source)
            ch = changes_since(spark, lake, "standardize", ref, params=params, force_full=full,
                               marks=marks)
            used.append(name)
            if ch.version is not None:
                run.input_versions[str(ref)] = ch.version
            done[str(ref)] = (ch.version, params)
            bronze = None if ch.empty else rows_to_standardize(
                io.read_table(spark, ref, version=ch.version), source, ch)
            if bronze is None:
                unchanged.append(name)
                continue
            if ch.full:
                full_sources.append(name)
            if source.party is not None:
                checked = bronze.transform(check_party(source, cfg.standardize)).persist(
                    StorageLevel.MEMORY_AND_DISK)
                cached.append(checked)
                to_check.append((name, checked))
                parties.append(checked.transform(party_records(run.run_id)))
                quarantine.append(checked.transform(quarantine_rows("party", run.run_id)))
            if source.consent:
                consent.append(bronze.transform(source_consent_events(source, run.run_id)))
            for i, mapping in enumerate(source.interactions):
                checked_i = bronze.transform(check_interactions(source, mapping, i)).persist(
                    StorageLevel.MEMORY_AND_DISK)
                cached.append(checked_i)
                if source.party is None and i == 0:
                    to_check.append((name, checked_i))
                interactions.append(checked_i.transform(interaction_records(run.run_id)))
                quarantine.append(checked_i.transform(quarantine_rows("interaction",
                                                                      run.run_id)))
        p_ins = p_upd = i_ins = i_upd = q_ins = c_ins = 0
        try:
            all_rejected = _all_rejected(to_check)
            progress.step("sources checked")
            party_df = _union(parties)
            if party_df is not None:
                res = io.merge_upsert(party_df, lake.ref(SILVER_PARTY_RECORDS), ["record_id"])
                p_ins, p_upd = res.metric("numTargetRowsInserted"), res.metric(
                    "numTargetRowsUpdated")
                if res.version is not None:
                    run.output_versions[str(lake.ref(SILVER_PARTY_RECORDS))] = res.version
                crash_point("standardize:after_party_records")
                progress.step("party records merged", rows=p_ins + p_upd)
            inter_df = _union(interactions)
            if inter_df is not None:
                res = io.merge_upsert(inter_df, lake.ref(SILVER_INTERACTIONS), ["interaction_id"])
                i_ins, i_upd = res.metric("numTargetRowsInserted"), res.metric(
                    "numTargetRowsUpdated")
                if res.version is not None:
                    run.output_versions[str(lake.ref(SILVER_INTERACTIONS))] = res.version
                crash_point("standardize:after_interactions")
                progress.step("interactions merged", rows=i_ins + i_upd)
            consent_df = _union(consent)
            if consent_df is not None:
                # append-only: an event already there (same decision, same time) is skipped
                res = io.merge_upsert(consent_df, lake.ref(PRIVACY_CONSENT_EVENTS),
                                      ["event_id"], insert_only=True)
                c_ins = res.metric("numTargetRowsInserted")
                if res.version is not None:
                    run.output_versions[str(lake.ref(PRIVACY_CONSENT_EVENTS))] = res.version
                crash_point("standardize:after_consent_events")
                progress.step("consent events merged", rows=c_ins)
            q_df = _union(quarantine)
            # Inputs are cached: checking for rows is cheap, a MERGE of nothing is not (the
            # first run creates the table even when empty, so readers always find it).
            if q_df is not None and (not q_df.isEmpty() or not io.table_exists(
                    spark, lake.ref(SILVER_QUARANTINE))):
                res = io.merge_upsert(q_df, lake.ref(SILVER_QUARANTINE), ["quarantine_id"],
                                      insert_only=True)
                q_ins = res.metric("numTargetRowsInserted")
                if res.version is not None:
                    run.output_versions[str(lake.ref(SILVER_QUARANTINE))] = res.version
                crash_point("standardize:after_quarantine")
                progress.step("quarantine merged", rows=q_ins)
        finally:
            for df in cached:
                df.unpersist()
        save_watermarks(run, {t: v for t, (v, _) in done.items()},
                        params={t: p for t, (_, p) in done.items()}, saved=marks)
        run.row_counts.update({"party_inserted": p_ins, "party_updated": p_upd,
                               "interactions_inserted": i_ins, "interactions_updated": i_upd,
                               "quarantine_inserted": q_ins, "consent_events_inserted": c_ins})
        run.row_counts["sources_unchanged"] = len(unchanged)
        run.row_counts["sources_full"] = len(full_sources)
        for name, (n, _) in all_rejected.items():
            run.row_counts[f"{name}.rows_all_rejected"] = n
            log.error("source %s: every one of its %d rows was rejected (silver.quarantine)",
                      name, n)
        run.metrics["sources_failed"] = len(all_rejected)
        report = StandardizeReport(run.run_id, used, p_ins, p_upd, i_ins, i_upd, q_ins,
                                   full_sources, unchanged,
                                   {k: n for k, (n, _) in all_rejected.items()})
        if all_rejected:
            # After the writes: the other sources' rows are in silver and the rejected
            # rows in quarantine; the run is marked failed, so a re-run checks again.
            raise StandardizeError(report, {k: r for k, (_, r) in all_rejected.items()})
        return report
