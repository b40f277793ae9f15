"""Consent: record decisions in ``privacy.consent_events`` (`udp consent set`, `udp consent
import FILE`) and export profiles for a purpose (`udp export --purpose P`).

The ledger is append-only: a decision is a new event, never an update, and the same
decision recorded twice (same subject, purpose, status and time) is one event. What a
customer's consent is now is derived at publish time (:mod:`udp_spark.privacy.consent`).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from udp_spark import io
from udp_spark.pipeline.context import StageContext, audited_run
from udp_spark.privacy.consent import (
    CONSENT_EVENT_COLUMNS,
    STATUSES,
    SUBJECT_TYPES,
    allowed_for,
    event_id,
)
from udp_spark.standardize import functions as sf
from udp_spark.standardize.phones import normalize_phone
from udp_spark.tables import GOLD_CUSTOMER_PROFILE, PRIVACY_CONSENT_EVENTS

log = logging.getLogger(__name__)

#: Columns of a consent file (`udp consent import`); expires_at, legal_basis, source optional.
IMPORT_COLUMNS = ("subject_type", "subject", "purpose", "status", "occurred_at")
OPTIONAL_COLUMNS = ("expires_at", "legal_basis", "source")


class ConsentError(ValueError):
    """A consent decision or file that cannot be recorded; the message says what to fix."""


@dataclass
class ConsentReport:
    run_id: str
    inserted: int
    duplicates: int
    rejected: dict[str, int] = field(default_factory=dict)  # reason -> rows


def _validated(df: DataFrame, ctx: StageContext, default_region: str) -> DataFrame:
    """Raw decisions (strings) -> typed events plus ``_reason`` (null when usable)."""
    c = F.col
    purposes = sorted(ctx.cfg.privacy.purposes)
    stype = F.lower(F.trim(c("subject_type")))
    status = F.lower(F.trim(c("status")))
    occurred = sf.parse_timestamp(c("occurred_at"), ("iso8601",))
    expires = sf.parse_timestamp(c("expires_at"), ("iso8601",))
    phone = normalize_phone(c("subject"), F.lit(default_region))
    subject = (F.when(stype == "email", sf.normalize_email(c("subject")))
               .when(stype == "phone", F.when(phone["valid"], phone["e164"]))
               .otherwise(sf.clean_text(c("subject"))))
    reason = (F.when(~stype.isin(*SUBJECT_TYPES) | stype.isNull(), F.lit(
                  f"subject_type must be one of {', '.join(SUBJECT_TYPES)}"))
              .when(sf.clean_text(c("subject")).isNull(), F.lit("missing subject"))
              .when((stype == "email") & ~sf.email_is_valid(c("subject")),
                    F.lit("invalid email"))
              .when(subject.isNull(), F.lit(f"invalid {stype.cast('string')}"))
              .when(~c("purpose").isin(*purposes) | c("purpose").isNull(), F.lit(
                  f"unknown purpose (privacy.purposes: {', '.join(purposes)})"))
              .when(~status.isin(*STATUSES) | status.isNull(),
                    F.lit("status must be granted or withdrawn"))
              .when(occurred.isNull(), F.lit("occurred_at is not an ISO-8601 time"))
              .when(c("expires_at").isNotNull() & expires.isNull(),
                    F.lit("expires_at is not an ISO-8601 time")))
    return df.select(stype.alias("subject_type"), subject.alias("subject"),
                     c("purpose"), status.alias("status"),
                     F.coalesce(c("legal_basis"), F.lit("consent")).alias("legal_basis"),
                     c("source"), occurred.alias("occurred_at"), expires.alias("expires_at"),
                     reason.alias("_reason"))


def _record(ctx: StageContext, raw: DataFrame, *, strict: bool, default_region: str,
            what: str) -> ConsentReport:
    spark, lake = ctx.spark, ctx.lakehouse
    with audited_run(ctx, "consent") as run, io.commit_metadata(
            spark, {"run_id": run.run_id, "stage": "consent"}):
        checked = _validated(raw, ctx, default_region).localCheckpoint(eager=True)
        rejected = {r["_reason"]: int(r["n"]) for r in checked.filter(
            F.col("_reason").isNotNull()).groupBy("_reason").agg(
            F.count("*").alias("n")).collect()}
        if rejected and strict:
            raise ConsentError(f"{what}: {sum(rejected.values())} decisions cannot be "
                               f"recorded ({rejected}); nothing was written (--strict)")
        c = F.col
        events = checked.filter(c("_reason").isNull()).select(
            event_id(c("subject_type"), c("subject"), c("purpose"), c("status"),
                     c("occurred_at")).alias("event_id"),
            "subject_type", "subject", "purpose", "status", "legal_basis", "source",
            "occurred_at", "expires_at", F.current_timestamp().alias("recorded_at"),
            F.lit(run.run_id).alias("run_id"),
        ).dropDuplicates(["event_id"])
        usable = events.count()
        res = io.merge_upsert(events.select(*CONSENT_EVENT_COLUMNS),
                              lake.ref(PRIVACY_CONSENT_EVENTS), ["event_id"], insert_only=True)
        inserted = res.metric("numTargetRowsInserted")
        if res.version is not None:
            run.output_versions[str(lake.ref(PRIVACY_CONSENT_EVENTS))] = res.version
        for reason, n in sorted(rejected.items()):
            log.warning("%s: %d decisions not recorded: %s", what, n, reason)
        run.row_counts.update({"consent_events_inserted": inserted,
                               "consent_events_duplicate": usable - inserted,
                               "consent_rejected": sum(rejected.values())})
        return ConsentReport(run.run_id, inserted, usable - inserted, rejected)


def set_consent(ctx: StageContext, *, subject_type: str, subject: str, purpose: str,
                status: str, occurred_at: datetime | None = None,
                expires_at: datetime | None = None, legal_basis: str = "consent",
                source: str = "cli", default_region: str = "US") -> ConsentReport:
    """Record one decision (``udp consent set``); a bad one raises :class:`ConsentError`."""
    at = occurred_at or datetime.now(UTC)
    row = {"subject_type": subject_type, "subject": subject, "purpose": purpose,
           "status": status, "occurred_at": at.isoformat(),
           "expires_at": expires_at.isoformat() if expires_at else None,
           "legal_basis": legal_basis, "source": source}
    raw = ctx.spark.createDataFrame([row], ", ".join(f"{k} string" for k in row))
    return _record(ctx, raw, strict=True, default_region=default_region,
                   what=f"consent for {subject_type}")


def import_consent(ctx: StageContext, path: str | Path, *, strict: bool = False,
                   default_region: str = "US", source: str | None = None) -> ConsentReport:
    """Record the decisions of a CSV file with a header: ``subject_type, subject, purpose,
    status, occurred_at`` (ISO-8601) and optionally ``expires_at, legal_basis, source``.
    Unusable rows are reported by reason and not recorded (``strict``: nothing is)."""
    raw = ctx.spark.read.option("header", "true").csv(str(path))
    missing = [c for c in IMPORT_COLUMNS if c not in raw.columns]
    if missing:
        raise ConsentError(f"{path}: columns {missing} missing; a consent file has "
                           f"{list(IMPORT_COLUMNS)} and optionally {list(OPTIONAL_COLUMNS)}; "
                           f"it has {raw.columns}")
    for col in OPTIONAL_COLUMNS:
        if col not in raw.columns:
            raw = raw.withColumn(col, F.lit(None).cast("string"))
    if source is not None or "source" not in raw.columns:
        raw = raw.withColumn("source", F.coalesce(F.col("source"), F.lit(
            source or f"import:{Path(str(path)).name}")))
    return _record(ctx, raw, strict=strict, default_region=default_region, what=str(path))


# --------------------------------------------------------------------------- export


@dataclass
class ExportReport:
    run_id: str
    purpose: str
    exported: int
    excluded: int  # customers (of the segment, if any) without a grant for the purpose
    path: str
    fields: list[str]


def export_for_purpose(ctx: StageContext, purpose: str, out: str, *,
                       segment: str | None = None, fmt: str = "csv",
                       at: datetime | None = None) -> ExportReport:
    """Write the profiles that may be used for ``purpose`` (``udp export``), with only the
    purpose's ``fields``: customers whose consent state allows it at ``at`` (default now;
    a grant that expired since the last publish counts as none). ``segment`` limits it
    to that segment's members. The customers left out are counted, not listed."""
    purposes = ctx.cfg.privacy.purposes
    if purpose not in purposes:
        raise ConsentError(f"unknown purpose {purpose!r}; privacy.purposes: {sorted(purposes)}")
    spark, lake = ctx.spark, ctx.lakehouse
    ref = lake.ref(GOLD_CUSTOMER_PROFILE)
    if not io.table_exists(spark, ref):
        raise ConsentError(f"{ref} does not exist: run `udp publish` first")
    with audited_run(ctx, "export") as run:
        profiles = io.read_table(spark, ref)
        fields = list(purposes[purpose].fields)
        unknown = [f for f in fields if f not in profiles.columns]
        if unknown:
            raise ConsentError(f"privacy.purposes.{purpose}.fields: {unknown} are not columns "
                               f"of {ref}; its columns are {profiles.columns}")
        if segment is not None:
            profiles = profiles.filter(F.array_contains("segments", segment))
        allowed = allowed_for(purpose, at or datetime.now(UTC))
        marked = profiles.select(*fields, allowed.alias("_allowed")).localCheckpoint(eager=True)
        counts = {bool(r["_allowed"]): int(r["n"]) for r in marked.groupBy("_allowed").agg(
            F.count("*").alias("n")).collect()}
        if fmt == "csv":
            # CSV holds no arrays: list columns are joined with ';'
            flat = marked.filter("_allowed").drop("_allowed")
            flat = flat.select(*[F.array_join(F.col(f), ";").alias(f)
                                 if flat.schema[f].dataType.typeName() == "array"
                                 else F.col(f) for f in fields])
            flat.coalesce(1).write.mode("overwrite").option("header", "true").csv(out)
        else:
            marked.filter("_allowed").drop("_allowed").coalesce(1).write.mode(
                "overwrite").format(fmt).save(out)
        report = ExportReport(run.run_id, purpose, counts.get(True, 0), counts.get(False, 0),
                              out, fields)
        run.row_counts.update({"exported": report.exported, "excluded_no_consent":
                               report.excluded})
        log.info("export for %s: %d customers, %d left out (no %s consent)", purpose,
                 report.exported, report.excluded, purpose)
        return report


# --------------------------------------------------------------------------- subject access


def export_subject(ctx: StageContext, subject_type: str, subject: str) -> dict[str, object]:
    """Everything held about a person (``udp export-subject``), as one JSON-ready document:
    every source record (all columns) with its source and batches, the golden profile with
    its lineage, its history, interactions, segment spells, consent events (through any of
    the person's identifiers), identity events and the runs that touched them.

    ``subject_type``: ``customer`` (a merged-away id is followed to its survivor) or
    ``email`` (every customer holding it: usually one)."""
    from udp_spark.pipeline.erase import _subject_records, normalize_subject
    from udp_spark.pipeline.publish import profile_lineage
    from udp_spark.privacy.consent import resolve_subjects
    from udp_spark.tables import (
        GOLD_CUSTOMER_PROFILE_HISTORY,
        GOLD_IDENTITY_EVENTS,
        GOLD_IDENTITY_XREF,
        GOLD_SEGMENT_MEMBERSHIP,
        SILVER_INTERACTIONS,
        SILVER_PARTY_RECORDS,
    )

    spark, lake = ctx.spark, ctx.lakehouse
    value = normalize_subject(subject_type, subject)
    with audited_run(ctx, "export_subject") as run:
        record_ids, customers = _subject_records(ctx, subject_type, value)
        if not customers:
            raise ConsentError(f"no customer holds {subject_type} {subject!r}")

        def rows(t: tuple[str, str], cond: object, order: str) -> list[dict[str, object]]:
            ref = lake.ref(t)
            if not io.table_exists(spark, ref):
                return []
            return [r.asDict(recursive=True) for r in io.read_table(spark, ref).filter(
                cond).orderBy(order).collect()]  # type: ignore[arg-type]

        rid = F.col("record_id").isin(*record_ids)
        cid = F.col("customer_id").isin(*customers)
        consent: list[dict[str, object]] = []
        ce_ref = lake.ref(PRIVACY_CONSENT_EVENTS)
        if io.table_exists(spark, ce_ref):
            ident = lake.ref(GOLD_IDENTITY_EVENTS)
            resolved = resolve_subjects(
                io.read_table(spark, ce_ref), io.read_table(spark, lake.ref(
                    SILVER_PARTY_RECORDS)), io.read_table(spark, lake.ref(GOLD_IDENTITY_XREF)),
                io.read_table(spark, ident) if io.table_exists(spark, ident) else None)
            consent = [r.asDict(recursive=True) for r in resolved.filter(cid).orderBy(
                "occurred_at").collect()]
        doc: dict[str, object] = {
            "subject": {"type": subject_type, "customer_ids": customers},
            "generated_at": datetime.now(UTC).isoformat(),
            "records": rows(SILVER_PARTY_RECORDS, rid, "record_id"),
            "profiles": [profile_lineage(ctx, c) for c in customers],
            "profile": rows(GOLD_CUSTOMER_PROFILE, cid, "customer_id"),
            "history": rows(GOLD_CUSTOMER_PROFILE_HISTORY, cid, "valid_from"),
            "interactions": rows(SILVER_INTERACTIONS, rid, "occurred_at"),
            "segments": rows(GOLD_SEGMENT_MEMBERSHIP, cid, "entered_at"),
            "consent_events": consent,
        }
        run.row_counts.update({"records": len(record_ids), "customers": len(customers)})
        return doc
