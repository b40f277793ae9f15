"""Standardize: bronze -> silver.party_records, silver.interactions, silver.quarantine."""

from __future__ import annotations

import functools
import logging
from dataclasses import dataclass

from pyspark import StorageLevel
from pyspark.sql import DataFrame

from udp_spark import io
from udp_spark.pipeline.context import StageContext, audited_run
from udp_spark.standardize.transforms import (
    check_interactions,
    check_party,
    interaction_records,
    party_records,
    quarantine_rows,
)
from udp_spark.tables import SILVER_INTERACTIONS, SILVER_PARTY_RECORDS, SILVER_QUARANTINE

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


def _union(frames: list[DataFrame]) -> DataFrame | None:
    if not frames:
        return None
    return functools.reduce(lambda a, b: a.unionByName(b), frames)


def run_standardize(ctx: StageContext, sources: list[str] | None = None) -> StandardizeReport:
    """Standardize every landed source (default: all configured sources with a bronze table).

    Reads all of bronze and MERGEs into silver: records whose content did not change are not
    rewritten, so running it again on the same input changes no row. One commit per table.
    """
    spark, cfg, lake = ctx.spark, ctx.cfg, ctx.lakehouse
    names = sources or sorted(cfg.sources)
    with audited_run(ctx, "standardize") as run, io.commit_metadata(
            spark, {"run_id": run.run_id, "stage": "standardize"}):
        parties: list[DataFrame] = []
        interactions: list[DataFrame] = []
        quarantine: list[DataFrame] = []
        cached: list[DataFrame] = []
        used: list[str] = []
        for name in names:
            source = cfg.sources[name]
            ref = lake.bronze(name)
            if not io.table_exists(spark, ref):
                log.warning("bronze.%s does not exist yet; run ingest first (skipped)", name)
                continue
            used.append(name)
            version = io.table_version(spark, ref)
            if version is not None:
                run.input_versions[str(ref)] = version
            bronze = io.read_table(spark, ref)
            if source.party is not None:
                checked = bronze.transform(check_party(source, cfg.standardize)).persist(
                    StorageLevel.MEMORY_AND_DISK)
                cached.append(checked)
                parties.append(checked.transform(party_records(run.run_id)))
                quarantine.append(checked.transform(quarantine_rows("party", run.run_id)))
            for i, mapping in enumerate(source.interactions):
                checked_i = bronze.transform(check_interactions(source, mapping, i)).persist(
                    StorageLevel.MEMORY_AND_DISK)
                cached.append(checked_i)
                interactions.append(checked_i.transform(interaction_records(run.run_id)))
                quarantine.append(checked_i.transform(quarantine_rows("interaction",
                                                                      run.run_id)))
        p_ins = p_upd = i_ins = i_upd = q_ins = 0
        try:
            party_df = _union(parties)
            if party_df is not None:
                res = io.merge_upsert(party_df, lake.ref(SILVER_PARTY_RECORDS), ["record_id"])
                p_ins, p_upd = res.metric("numTargetRowsInserted"), res.metric(
                    "numTargetRowsUpdated")
                if res.version is not None:
                    run.output_versions[str(lake.ref(SILVER_PARTY_RECORDS))] = res.version
            inter_df = _union(interactions)
            if inter_df is not None:
                res = io.merge_upsert(inter_df, lake.ref(SILVER_INTERACTIONS), ["interaction_id"])
                i_ins, i_upd = res.metric("numTargetRowsInserted"), res.metric(
                    "numTargetRowsUpdated")
                if res.version is not None:
                    run.output_versions[str(lake.ref(SILVER_INTERACTIONS))] = res.version
            q_df = _union(quarantine)
            if q_df is not None:
                res = io.merge_upsert(q_df, lake.ref(SILVER_QUARANTINE), ["quarantine_id"],
                                      insert_only=True)
                q_ins = res.metric("numTargetRowsInserted")
                if res.version is not None:
                    run.output_versions[str(lake.ref(SILVER_QUARANTINE))] = res.version
        finally:
            for df in cached:
                df.unpersist()
        run.row_counts.update({"party_inserted": p_ins, "party_updated": p_upd,
                               "interactions_inserted": i_ins, "interactions_updated": i_upd,
                               "quarantine_inserted": q_ins})
        return StandardizeReport(run.run_id, used, p_ins, p_upd, i_ins, i_upd, q_ins)
