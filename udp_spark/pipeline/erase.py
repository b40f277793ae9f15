"""Right to erasure (``udp erase``): remove a person from every layer and every version.

One request, in order (docs/privacy.md):

1. Find the subject's records: a customer id (its survivor if merged away), an e-mail or a
   phone (every customer holding it, all their records), or one record.
2. Put salted hashes of their record ids and e-mails on ``privacy.suppressions``: ingest
   quarantines a later row carrying one (reason ``erased subject``, no values kept).
3. Delete their rows from bronze (party rows and interactions pointing at them), silver
   (interactions, quarantine, labels, the term frequencies only they held) and the consent
   ledger, then their party records last. Deletes are MERGEs keyed on a frame of keys, so
   the Delta log holds no value.
4. Run the change-driven stages on that: block retires the records' blocking-index rows
   and pairs (and expands a block that falls back under its cap, which it could not if
   the index rows were gone first), score their scores, resolve and publish re-cluster and
   re-publish what it touched (other customers keep their ids); then delete the subject's
   gold rows the stages keep as history
   (profile history, segment spells, profile and identity events) and any household still
   listing them (publish has already rebuilt the households without them).
5. Purge: deletion vectors rewritten, every table that can hold a value VACUUMed with
   ``privacy.erasure.vacuum_retain_hours`` (default 0; not the leases and the suppression
   list, which hold none; the requests table once the request's row is final), the
   deletion-vector tables first, Spark's checkpoint files removed.

A request cut short (killed, failed) is finished by the next request for the same subject:
before deleting anything a request records its subject's record and customer ids on its
``privacy.erasure_requests`` row (``report``, while ``running``), and a later request for
the same subject (same salted hash) takes those ids in, since once the party records are
gone the subject cannot be found by e-mail or phone again. Until then it finds the subject
as before: the party records go last of the tables holding values.
"""

from __future__ import annotations

import hashlib
import json
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from functools import partial
from pathlib import Path

import phonenumbers
from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from udp_spark import io, progress
from udp_spark.audit import new_run_id
from udp_spark.config import SourceConfig
from udp_spark.faults import crash_point
from udp_spark.lease import PIPELINE, Lease
from udp_spark.pipeline.block import BlockReport
from udp_spark.pipeline.context import StageContext, audited_run, checkpoint_dir
from udp_spark.pipeline.maintain import lakehouse_tables
from udp_spark.privacy.erasure import (
    ERASURE_REQUEST_SCHEMA,
    bronze_emails,
    bronze_party_keys,
    contains_any,
    suppression_rows,
)
from udp_spark.standardize import functions as sf
from udp_spark.standardize.transforms import field_column
from udp_spark.tables import (
    AUDIT_LEASES,
    AUDIT_RUNS,
    DELETION_VECTOR_TABLES,
    GOLD_CUSTOMER_PROFILE,
    GOLD_CUSTOMER_PROFILE_HISTORY,
    GOLD_HOUSEHOLDS,
    GOLD_IDENTITY_EVENTS,
    GOLD_IDENTITY_XREF,
    GOLD_PROFILE_EVENTS,
    GOLD_SEGMENT_MEMBERSHIP,
    PRIVACY_CONSENT_EVENTS,
    PRIVACY_ERASURE_REQUESTS,
    PRIVACY_SUPPRESSIONS,
    SILVER_BLOCK_KEYS,
    SILVER_CANDIDATE_PAIRS,
    SILVER_INTERACTIONS,
    SILVER_MATCH_LABELS,
    SILVER_MATCH_SCORES,
    SILVER_MATCH_TERM_FREQUENCIES,
    SILVER_PARTY_RECORDS,
    SILVER_QUARANTINE,
    TableRef,
)

log = logging.getLogger(__name__)

SUBJECT_TYPES = ("customer", "email", "phone", "record")
# Columns of silver.party_records whose values identify a person (term frequencies of
# these values are removed when no one else holds them).
_VALUE_COLUMNS = ("given_name_norm", "family_name_norm", "middle_name_norm", "full_name",
                  "email_canonical", "phone_e164", "mobile_e164", "street_norm",
                  "postcode", "loyalty_id", "city_norm")


#: Purge order: the deletion-vector tables by the time their REORG took at 1M source rows
#: (session 33: history 22 s, scores 22, profile 16, index 11, pairs 8), then the others.
_PURGE_ORDER = {t: i for i, t in enumerate((
    GOLD_CUSTOMER_PROFILE_HISTORY, SILVER_MATCH_SCORES, GOLD_CUSTOMER_PROFILE,
    SILVER_BLOCK_KEYS, SILVER_CANDIDATE_PAIRS))}
assert set(_PURGE_ORDER) == DELETION_VECTOR_TABLES
_NOT_PURGED = frozenset({AUDIT_LEASES, PRIVACY_SUPPRESSIONS, PRIVACY_ERASURE_REQUESTS})

_REPORT_LOCK = threading.Lock()


class ErasureError(ValueError):
    """The request cannot be carried out as given; the message says why."""


@dataclass
class ErasureReport:
    request_id: str
    subject_type: str
    customers: int
    records: int
    rows_removed: dict[str, int] = field(default_factory=dict)  # table -> rows
    files_purged: dict[str, int] = field(default_factory=dict)  # table -> files vacuumed
    seconds: float = 0.0
    #: earlier requests for the same subject, cut short, that this one finished
    finished_requests: list[str] = field(default_factory=list)

    @property
    def tables_touched(self) -> list[str]:
        return sorted(t for t, n in self.rows_removed.items() if n)


def normalize_subject(subject_type: str, subject: str, default_region: str = "US") -> str:
    """The subject as the tables hold it: e-mail lower-cased, phone in E.164."""
    if subject_type not in SUBJECT_TYPES:
        raise ErasureError(f"subject type {subject_type!r}: one of {SUBJECT_TYPES}")
    value = subject.strip()
    if not value:
        raise ErasureError("empty subject")
    if subject_type == "email":
        return value.lower()
    if subject_type == "phone":
        try:
            num = phonenumbers.parse(value, default_region)
        except phonenumbers.NumberParseException as exc:
            raise ErasureError(f"phone {subject!r} cannot be parsed: {exc}") from None
        return phonenumbers.format_number(num, phonenumbers.PhoneNumberFormat.E164)
    return value


def _table(ctx: StageContext, t: tuple[str, str]) -> tuple[TableRef, DataFrame | None]:
    ref = ctx.lakehouse.ref(t)
    return ref, io.read_table(ctx.spark, ref) if io.table_exists(ctx.spark, ref) else None


def _subject_records(ctx: StageContext, subject_type: str, subject: str
                     ) -> tuple[list[str], list[str]]:
    """(record ids, customer ids) of the subject. A record erases only that record."""
    _, xref = _table(ctx, GOLD_IDENTITY_XREF)
    _, records = _table(ctx, SILVER_PARTY_RECORDS)
    if records is None:
        raise ErasureError("silver.party_records does not exist: nothing to erase from")
    if subject_type == "record":
        ids = [subject] if records.filter(F.col("record_id") == subject).limit(1).count() \
            else []
        custs = ([r[0] for r in xref.filter(F.col("record_id") == subject)
                  .select("customer_id").collect()] if xref is not None else [])
        return ids, custs
    if subject_type == "customer":
        from udp_spark.pipeline.publish import _survivor

        survivor, _ = _survivor(ctx, subject)
        custs = sorted({subject, survivor})
    else:
        if subject_type == "email":
            hit = records.filter(F.col("email_canonical") == sf.canonical_email(F.lit(subject)))
        else:
            hit = records.filter((F.col("phone_e164") == subject)
                                 | (F.col("mobile_e164") == subject))
        rids = [r[0] for r in hit.select("record_id").collect()]
        if xref is None:
            return rids, []
        custs = sorted({r[0] for r in xref.filter(F.col("record_id").isin(*rids))
                        .select("customer_id").collect()}) if rids else []
        if not custs:
            return rids, []
    if xref is None:
        return [], custs
    rids = [r[0] for r in xref.filter(F.col("customer_id").isin(*custs))
            .select("record_id").collect()]
    return sorted(set(rids)), custs


def _delete(ctx: StageContext, report: ErasureReport, t: tuple[str, str] | TableRef,
            rows: DataFrame | None, on: list[str]) -> None:
    """Delete ``rows`` (keyed on ``on``) from the table (:func:`udp_spark.io.merge_delete`:
    no value reaches the commit log); counts what went."""
    ref = t if isinstance(t, TableRef) else ctx.lakehouse.ref(t)
    if rows is None:
        return
    keys = rows.select(*on).distinct().localCheckpoint(eager=True)
    if keys.isEmpty():
        with _REPORT_LOCK:
            report.rows_removed.setdefault(str(ref), 0)
        return
    started = time.perf_counter()
    res = io.merge_delete(keys, ref, on)
    log.info("erase: %s: %d rows deleted in %.1fs", ref, res.metric("numTargetRowsDeleted"),
             time.perf_counter() - started)
    with _REPORT_LOCK:  # deletes of different tables run in parallel threads
        report.rows_removed[str(ref)] = report.rows_removed.get(str(ref), 0) + res.metric(
            "numTargetRowsDeleted")


def _record_request(ctx: StageContext, request_id: str, subject_type: str, subject_hash: str,
                    status: str, report: str | None = None, error: str | None = None,
                    requested_by: str = "cli", keep_report: bool = False) -> None:
    """Insert or update the request's row; ``keep_report`` leaves its ``report`` as it is
    (a failed request keeps the ids a later one needs to finish it)."""
    spark = ctx.spark
    now = datetime.now(UTC)
    row = (request_id, subject_type, None, subject_hash, now, requested_by, status,
           now if status in ("completed", "failed") else None, report, error)
    df = spark.createDataFrame([row], ERASURE_REQUEST_SCHEMA)
    ref = ctx.lakehouse.ref(PRIVACY_ERASURE_REQUESTS)
    if not io.table_exists(spark, ref):
        io.merge_upsert(df, ref, ["request_id"], change_col=None)
        return
    (io.delta_table(spark, ref).alias("t").merge(df.alias("s"), "t.request_id = s.request_id")
     .whenMatchedUpdate(set={"subject": "s.subject", "status": "s.status",
                             "completed_at": "s.completed_at", "error": "s.error",
                             **({} if keep_report else {"report": "s.report"})})
     .whenNotMatchedInsertAll().execute())


def _unfinished(ctx: StageContext, subject_hash: str, request_id: str
                ) -> list[tuple[str, list[str], list[str]]]:
    """Earlier requests for the same subject that did not complete (killed: ``running``;
    failed), with the record and customer ids they were erasing: ``[(request_id,
    record_ids, customer_ids)]``. Once its party records are deleted a subject cannot be
    found again by e-mail or phone; these ids let a new request finish the rest."""
    ref = ctx.lakehouse.ref(PRIVACY_ERASURE_REQUESTS)
    if not io.table_exists(ctx.spark, ref):
        return []
    rows = (io.read_table(ctx.spark, ref)
            .filter((F.col("subject_hash") == subject_hash)
                    & F.col("status").isin("running", "failed")
                    & (F.col("request_id") != request_id))
            .select("request_id", "report").collect())
    out = []
    for r in rows:
        state = (json.loads(r["report"]) if r["report"] else {}).get("in_progress") or {}
        out.append((r["request_id"], list(state.get("record_ids") or []),
                    list(state.get("customer_ids") or [])))
    return out


def erase(ctx: StageContext, subject_type: str, subject: str, *,
          request_id: str | None = None, requested_by: str = "cli") -> ErasureReport:
    """Carry out one erasure request (see the module doc); returns its report.

    Raises:
        ErasureError: an unknown subject type, an unparseable phone, no lakehouse.
        LeaseHeld: another run or the stream holds the lakehouse.
    """
    started = time.monotonic()
    value = normalize_subject(subject_type, subject)
    request_id = request_id or new_run_id("erase")
    salt = ctx.cfg.privacy.erasure.suppression_salt
    subject_hash = hashlib.sha256(f"{salt}|{subject_type}:{value}".encode()).hexdigest()
    lease = Lease(ctx.spark, ctx.lakehouse, PIPELINE, holder=request_id,
                  ttl_seconds=ctx.cfg.run.lease_ttl_minutes * 60)
    lease.acquire(ctx.cfg.run.wait_seconds)
    try:
        _record_request(ctx, request_id, subject_type, subject_hash, "running",
                        requested_by=requested_by)
        try:
            report = _erase(ctx, subject_type, value, request_id, salt, subject_hash,
                            requested_by)
        except Exception as exc:
            _record_request(ctx, request_id, subject_type, subject_hash, "failed",
                            error=type(exc).__name__, keep_report=True)
            raise
        report.seconds = round(time.monotonic() - started, 1)
        _record_request(ctx, request_id, subject_type, subject_hash, "completed",
                        report=json.dumps(asdict(report), sort_keys=True))
        for earlier in report.finished_requests:  # their ids leave the table with them
            _record_request(ctx, earlier, subject_type, subject_hash, "completed",
                            report=json.dumps({"completed_by": request_id}))
        io.vacuum(ctx.spark, ctx.lakehouse.ref(PRIVACY_ERASURE_REQUESTS),
                  ctx.cfg.privacy.erasure.vacuum_retain_hours, purge_deletion_vectors=True)
        return report
    finally:
        lease.release()


def _erase(ctx: StageContext, subject_type: str, value: str, request_id: str,
           salt: str, subject_hash: str, requested_by: str) -> ErasureReport:
    spark, lake, cfg = ctx.spark, ctx.lakehouse, ctx.cfg
    with audited_run(ctx, "erase") as run, io.commit_metadata(
            spark, {"run_id": run.run_id, "stage": "erase", "request_id": request_id}):
        rids, custs = _subject_records(ctx, subject_type, value)
        progress.step("subject found")
        # what earlier, unfinished requests for this subject were erasing, then this
        # request's ids recorded before anything is deleted
        earlier = _unfinished(ctx, subject_hash, request_id)
        rids = sorted(set(rids).union(*(r for _, r, _ in earlier)))
        custs = sorted(set(custs).union(*(c for _, _, c in earlier)))
        _record_request(ctx, request_id, subject_type, subject_hash, "running",
                        report=json.dumps({"in_progress": {"record_ids": rids,
                                                           "customer_ids": custs}}),
                        requested_by=requested_by)
        whole_person = subject_type != "record"
        report = ErasureReport(request_id, subject_type, len(custs), len(rids),
                               finished_requests=sorted(e for e, _, _ in earlier))
        _, records = _table(ctx, SILVER_PARTY_RECORDS)
        assert records is not None
        mine = records.filter(F.col("record_id").isin(*rids)) if rids else records.limit(0)
        vals = mine.select(*_VALUE_COLUMNS).collect()
        emails = sorted({r["email_canonical"] for r in vals if r["email_canonical"]}
                        | ({value} if subject_type == "email" else set()))
        phones = sorted({p for r in vals for p in (r["phone_e164"], r["mobile_e164"]) if p})
        values = sorted({str(v) for r in vals for v in r if v})

        # 2. suppression list first: a batch landing meanwhile cannot bring them back
        if rids or emails:
            sup = suppression_rows(records, record_ids=rids, emails=emails, salt=salt,
                                   request_id=request_id)
            io.merge_upsert(sup, lake.ref(PRIVACY_SUPPRESSIONS), ["hash"], change_col=None,
                            insert_only=True)
        progress.step("suppression list written")

        ids_df = spark.createDataFrame([(r,) for r in rids], "record_id string")
        workers = cfg.privacy.erasure.parallel_deletes

        # 3. bronze: party rows and the interactions that point at the records, the
        # sources' tables at once; the raw e-mail texts found there go to the quarantine scan
        def bronze_delete(name: str, source: SourceConfig) -> set[str]:
            ref, bronze = _table(ctx, ("bronze", name))
            if bronze is None:
                return set()
            keys = bronze_party_keys(source)
            cond = (F.arrays_overlap(keys, F.array(*[F.lit(r) for r in rids])) if rids
                    else F.lit(False))
            if whole_person and emails:
                cond = cond | F.coalesce(bronze_emails(source).isin(*emails), F.lit(False))
            hit = bronze.filter(cond).localCheckpoint(eager=True)
            texts: set[str] = set()
            if source.party is not None and source.party.email is not None:
                texts = {str(r[0]).strip().lower() for r in hit.select(
                    field_column(source.party.email)).collect() if r[0]}
            _delete(ctx, report, ref, hit, ["_batch_id", "_row_hash"])
            return texts

        raw_texts: set[str] = set().union(*io.in_parallel(
            [partial(bronze_delete, n, s) for n, s in sorted(cfg.sources.items())], workers))
        progress.step("bronze deleted")

        # silver, and the consent ledger: what to delete first (the quarantine scan needs
        # the interaction ids and raw texts), then every table's delete at once
        deletes: list[tuple[TableRef | tuple[str, str], DataFrame | None, list[str]]] = []
        inter_ref, interactions = _table(ctx, SILVER_INTERACTIONS)
        inter_ids: list[str] = []
        if interactions is not None and rids:
            mine_i = interactions.join(ids_df, "record_id", "left_semi")
            inter_ids = [r[0] for r in mine_i.select("interaction_id").collect()]
            # the keys as read, not the join again (a second pass over every interaction)
            deletes.append((inter_ref, spark.createDataFrame(
                [(i,) for i in inter_ids], "interaction_id string"), ["interaction_id"]))
        q_ref, quarantine = _table(ctx, SILVER_QUARANTINE)
        if quarantine is not None:
            needles = sorted(set(emails) | raw_texts | set(phones))
            hit_q = quarantine.filter(F.col("record_id").isin(*rids, *inter_ids)
                                      | contains_any(F.col("raw_row"), needles)
                                      | contains_any(F.col("raw_value"), needles))
            deletes.append((q_ref, hit_q, ["quarantine_id"]))
        # Candidate pairs, scores and the blocking index are left to the catch-up below:
        # block retires the records' index rows and pairs (it must see the blocks they
        # leave, or a block falling back under its size cap would not be expanded), score
        # their scores. Labels are no stage's output: deleted here.
        either = (F.col("record_id_l").isin(*rids) | F.col("record_id_r").isin(*rids)
                  ) if rids else F.lit(False)
        ref, labels = _table(ctx, SILVER_MATCH_LABELS)
        deletes.append((ref, None if labels is None else labels.filter(either),
                        ["record_id_l", "record_id_r", "label_source"]))
        # term frequencies: the values only this subject held
        ref, tf = _table(ctx, SILVER_MATCH_TERM_FREQUENCIES)
        if tf is not None and values:
            others = (records.join(ids_df, "record_id", "left_anti")
                      .select(F.explode(F.array(*[F.col(c).cast("string")
                                                  for c in _VALUE_COLUMNS])).alias("value"))
                      .filter(F.col("value").isin(*values)).distinct())
            own = tf.filter(F.col("value").isin(*values)).join(others, "value", "left_anti")
            deletes.append((ref, own, ["model_version", "comparison", "value"]))
        ref, ce = _table(ctx, PRIVACY_CONSENT_EVENTS)
        if ce is not None:
            subj = (F.col("subject").isin(*rids, *custs, *phones)
                    | ((F.col("subject_type") == "email")
                       & sf.canonical_email(F.col("subject")).isin(*emails))
                    ) if whole_person else F.col("subject").isin(*rids)
            deletes.append((ref, ce.filter(subj), ["event_id"]))
        io.in_parallel([partial(_delete, ctx, report, t, rows, on) for t, rows, on in deletes],
                       workers)
        progress.step("silver deleted")
        # audit rows that quote a value in an error message
        ref, runs = _table(ctx, AUDIT_RUNS)
        if runs is not None and values:
            scrub = runs.filter(contains_any(F.col("error"), [v for v in values if len(v) > 3]))
            if not scrub.isEmpty():
                (io.delta_table(spark, ref).alias("t").merge(
                    scrub.select("run_id").alias("s"), "t.run_id = s.run_id")
                 .whenMatchedUpdate(set={"error": F.lit("[erased]")}).execute())
                report.rows_removed[str(ref)] = scrub.count()
        # The party records last of the tables holding the subject's values: until they go,
        # a request cut short finds the subject again as it was; after, by the ids above.
        _delete(ctx, report, SILVER_PARTY_RECORDS, ids_df, ["record_id"])
        crash_point("erase:after_party_records")
        progress.step("party records deleted")

        # 4. the change-driven stages take the deletes in (resolve re-clusters what the
        # records held together), so that no stage's watermark is left behind the versions
        # the purge below removes the change data of
        caught = catch_up(ctx)
        block, scored = caught.get(SILVER_CANDIDATE_PAIRS), caught.get(SILVER_MATCH_SCORES)
        if isinstance(block, BlockReport):
            report.rows_removed[str(lake.ref(SILVER_CANDIDATE_PAIRS))] = block.pairs_retired
            report.rows_removed[str(lake.ref(SILVER_BLOCK_KEYS))] = block.index_rows_retired
        if isinstance(scored, dict):
            report.rows_removed[str(lake.ref(SILVER_MATCH_SCORES))] = int(
                scored.get("pairs_deleted", 0))
        progress.step("stages caught up")
        if whole_person and custs:
            gold: list[Callable[[], None]] = []
            for t, key in ((GOLD_IDENTITY_XREF, ["record_id"]),
                           (GOLD_CUSTOMER_PROFILE, ["customer_id"]),
                           (GOLD_CUSTOMER_PROFILE_HISTORY, ["customer_id", "valid_from"]),
                           (GOLD_SEGMENT_MEMBERSHIP, ["customer_id", "segment", "entered_at"]),
                           (GOLD_PROFILE_EVENTS, ["event_id"]),
                           (GOLD_IDENTITY_EVENTS, ["run_id", "event_type", "customer_id"]),
                           (GOLD_HOUSEHOLDS, ["household_id"])):
                ref, df = _table(ctx, t)
                if df is None:
                    continue
                sel = (df.filter(F.col("record_id").isin(*rids)) if t == GOLD_IDENTITY_XREF
                       else df.filter(F.arrays_overlap("member_ids", F.array(
                           *[F.lit(c) for c in custs]))) if t == GOLD_HOUSEHOLDS
                       else df.filter(F.col("customer_id").isin(*custs) | (
                           F.col("related_customer_id").isin(*custs)
                           if "related_customer_id" in df.columns else F.lit(False))))
                gold.append(partial(_delete, ctx, report, ref, sel, key))
            io.in_parallel(gold, workers)
            progress.step("gold deleted")
        elif rids:
            # one record: the customer stays; its history rows built from that record go
            ref, hist = _table(ctx, GOLD_CUSTOMER_PROFILE_HISTORY)
            if hist is not None:
                _delete(ctx, report, ref, hist.filter(contains_any(
                    F.to_json("lineage"), [f'"{r}"' for r in rids])),
                    ["customer_id", "valid_from"])
        # publish reads these tables' change feeds: it takes the deletes in now, so its
        # watermarks are not left inside the change data the purge removes
        if io.table_exists(spark, lake.ref(GOLD_CUSTOMER_PROFILE)):
            from udp_spark.pipeline.publish import run_publish

            run_publish(ctx)
            progress.step("published")
        # 5. purge earlier versions of every table, the longest first: the deletion-vector
        # tables' REORG rewrites whole tables (20 s each at 1M), the rest VACUUM in a few
        # seconds, so started last a REORG would run on alone while the other core idles
        # (not the tables that never hold a value of anyone: the leases and the suppression
        # list; the requests table is purged once this request's row is final, below)
        refs = sorted((r for r in lakehouse_tables(ctx)
                       if (r.layer, r.table) not in _NOT_PURGED),
                      key=lambda r: _PURGE_ORDER.get((r.layer, r.table), len(_PURGE_ORDER)))
        report.files_purged.update(io.vacuum_all(
            spark, refs, cfg.privacy.erasure.vacuum_retain_hours,
            purge_deletion_vectors=True, workers=cfg.privacy.erasure.parallel_purge))
        progress.step("earlier versions purged")
        # Spark's own checkpoint files hold copies of intermediate rows: remove the files,
        # keep the folders (the session's checkpoint directory stays usable)
        ckpt = Path(checkpoint_dir(cfg).removeprefix("file:"))
        if ckpt.is_dir():
            for f in ckpt.rglob("*"):
                if f.is_file():
                    f.unlink(missing_ok=True)
        run.row_counts.update({f"removed.{t}": n for t, n in report.rows_removed.items()})
        run.row_counts["files_purged"] = sum(report.files_purged.values())
        run.metrics["records"] = float(len(rids))
        log.info("erasure %s: %d records of %d customers; rows removed %s; %d files purged",
                 request_id, len(rids), len(custs), report.rows_removed,
                 sum(report.files_purged.values()))
        return report


def catch_up(ctx: StageContext) -> dict[tuple[str, str], object]:
    """Run standardize, block, score, resolve and publish on what changed (each where its
    output exists), before a purge removes the change data their watermarks point into.
    Returns each stage's report by its output table."""
    from udp_spark.pipeline.block import run_block
    from udp_spark.pipeline.publish import run_publish
    from udp_spark.pipeline.resolve import run_resolve
    from udp_spark.pipeline.score import run_score
    from udp_spark.pipeline.standardize import run_standardize

    lake, spark = ctx.lakehouse, ctx.spark
    stages: tuple[tuple[tuple[str, str], Callable[[StageContext], object]], ...] = (
        (SILVER_PARTY_RECORDS, run_standardize), (SILVER_CANDIDATE_PAIRS, run_block),
        (SILVER_MATCH_SCORES, run_score), (GOLD_IDENTITY_XREF, run_resolve),
        (GOLD_CUSTOMER_PROFILE, run_publish))
    return {table: stage(ctx) for table, stage in stages
            if io.table_exists(spark, lake.ref(table))}


def erase_pending(ctx: StageContext) -> list[ErasureReport]:
    """Carry out the requests the API recorded as ``pending``."""
    ref = ctx.lakehouse.ref(PRIVACY_ERASURE_REQUESTS)
    if not io.table_exists(ctx.spark, ref):
        return []
    pending = io.read_table(ctx.spark, ref).filter(F.col("status") == "pending").select(
        "request_id", "subject_type", "subject", "requested_by").collect()
    return [erase(ctx, r["subject_type"], r["subject"], request_id=r["request_id"],
                  requested_by=r["requested_by"] or "api") for r in pending]


__all__ = ["ErasureError", "ErasureReport", "erase", "erase_pending"]
