"""Consent by purpose: events from sources and people, resolved to customers, and the
effective state per purpose that the profile carries.

Rules (each tested in ``tests/test_privacy_consent.py``):

- **Latest wins** across every event that resolves to the customer, whatever identifier it
  came through (a record of any source, an e-mail, a phone, the customer id). Equal times:
  a withdrawal wins over a grant.
- **Subjects resolve at read time**: a record through ``gold.identity_xref``, an e-mail
  through the records holding it (canonical form), a phone through the records holding it
  (E.164), a customer id through its ``merged`` identity events to the survivor. So consent
  follows merges and splits as the records move: two customers merged hold the events of
  both; a record split off takes the events given through it.
- A **customer-id withdrawal** also applies to the customers later split off that id (a
  withdrawal is never lost by a split); a customer-id grant stays with the id.
- An **expired grant** is no grant: status ``expired``, not allowed.
- No event: ``none``; allowed only for purposes that need no opt-in.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import datetime

from pyspark.sql import Column, DataFrame, Window
from pyspark.sql import functions as F
from pyspark.sql import types as T

from udp_spark.config import PurposeSettings, SourceConfig
from udp_spark.io import CORRUPT_COL
from udp_spark.standardize import functions as sf
from udp_spark.standardize.transforms import field_column

__all__ = [
    "CONSENT_EVENT_SCHEMA",
    "CONSENT_STATE_TYPE",
    "SUBJECT_TYPES",
    "consent_column",
    "effective_consent",
    "event_id",
    "resolve_subjects",
    "source_consent_events",
]

Transform = Callable[[DataFrame], DataFrame]

SUBJECT_TYPES = ("customer", "email", "phone", "record")
STATUSES = ("granted", "withdrawn")

#: ``privacy.consent_events``: append-only; one row per decision.
CONSENT_EVENT_SCHEMA = T.StructType([
    T.StructField("event_id", T.StringType(), False),
    T.StructField("subject_type", T.StringType(), False),
    T.StructField("subject", T.StringType(), False),
    T.StructField("purpose", T.StringType(), False),
    T.StructField("status", T.StringType(), False),
    T.StructField("legal_basis", T.StringType(), True),
    T.StructField("source", T.StringType(), True),
    T.StructField("occurred_at", T.TimestampType(), False),
    T.StructField("expires_at", T.TimestampType(), True),
    T.StructField("recorded_at", T.TimestampType(), False),
    T.StructField("run_id", T.StringType(), True),
])
CONSENT_EVENT_COLUMNS = tuple(f.name for f in CONSENT_EVENT_SCHEMA.fields)

#: The profile's ``consent`` column: purpose -> this struct.
CONSENT_STATE_TYPE = T.StructType([
    T.StructField("status", T.StringType()),  # granted | withdrawn | expired | none
    T.StructField("allowed", T.BooleanType()),
    T.StructField("occurred_at", T.TimestampType()),
    T.StructField("expires_at", T.TimestampType()),
    T.StructField("legal_basis", T.StringType()),
    T.StructField("source", T.StringType()),
    T.StructField("event_id", T.StringType()),
])


def event_id(subject_type: Column, subject: Column, purpose: Column, status: Column,
             occurred_at: Column) -> Column:
    """The event's key: the same decision recorded twice is one event."""
    return F.sha2(F.concat_ws("|", subject_type, subject, purpose, status,
                              F.date_format(occurred_at, "yyyy-MM-dd'T'HH:mm:ss.SSSSSS")), 256)


def source_consent_events(source: SourceConfig, run_id: str) -> Transform:
    """Bronze rows of ``source`` -> its consent events (subject: the party record).

    A status that is neither granted nor withdrawn, or a decision without a time, makes no
    event (they are not decisions latest-wins could order)."""
    assert source.party is not None

    def transform(bronze: DataFrame) -> DataFrame:
        key = sf.clean_text(field_column(source.party.source_key))  # type: ignore[union-attr]
        record_id = F.concat_ws(":", F.lit(source.name), key)
        usable = bronze.filter(F.col(CORRUPT_COL).isNull() & key.isNotNull())
        frames = []
        for m in source.consent:
            raw = F.lower(F.trim(field_column(m.status)))
            status = (F.when(raw.isin(*[g.lower() for g in m.granted]), F.lit("granted"))
                      .when(raw.isin(*[w.lower() for w in m.withdrawn]), F.lit("withdrawn")))
            occurred = sf.parse_timestamp(field_column(m.occurred_at), source.timestamp_formats)
            expires = (sf.parse_timestamp(field_column(m.expires_at), source.timestamp_formats)
                       if m.expires_at is not None else F.lit(None).cast("timestamp"))
            frames.append(usable.select(
                F.lit("record").alias("subject_type"), record_id.alias("subject"),
                F.lit(m.purpose).alias("purpose"), status.alias("status"),
                sf.clean_text(field_column(m.legal_basis)).alias("legal_basis"),
                F.lit(source.name).alias("source"), occurred.alias("occurred_at"),
                expires.alias("expires_at"))
                .filter(F.col("status").isNotNull() & F.col("occurred_at").isNotNull()))
        out = frames[0]
        for f in frames[1:]:
            out = out.unionByName(f)
        c = F.col
        return (out.select(
            event_id(c("subject_type"), c("subject"), c("purpose"), c("status"),
                     c("occurred_at")).alias("event_id"),
            "subject_type", "subject", "purpose", "status", "legal_basis", "source",
            "occurred_at", "expires_at", F.current_timestamp().alias("recorded_at"),
            F.lit(run_id).alias("run_id"))
            .dropDuplicates(["event_id"]))

    return transform


def _successors(ids: DataFrame, identity_events: DataFrame | None, *,
                follow_splits: bool, hops: int = 8) -> DataFrame:
    """``(subject, occurred_at, customer_id)``: the customers a customer-id subject stands for
    now: itself, the survivor of each ``merged`` event after the decision and, with
    ``follow_splits``, the ids ``split`` off it after the decision (``hops`` links at most).

    Decisions given through a customer id are manual (`udp consent set`, the API) and few,
    and so are merges and splits: the walk runs in the driver, one small query per hop.
    """
    spark = ids.sparkSession
    schema = "subject string, occurred_at timestamp, customer_id string"
    decisions = [(r["subject"], r["occurred_at"]) for r in ids.collect()]
    reached = {d: {d[0]} for d in decisions}
    if identity_events is not None and decisions:
        kinds = ["merged", "split"] if follow_splits else ["merged"]
        links = identity_events.filter(F.col("event_type").isin(*kinds)).select(
            F.when(F.col("event_type") == "merged", F.col("customer_id"))
            .otherwise(F.col("related_customer_id")).alias("_from"),
            F.when(F.col("event_type") == "merged", F.col("related_customer_id"))
            .otherwise(F.col("customer_id")).alias("_to"), F.col("event_at").alias("_at"))
        frontier = {d: {d[0]} for d in decisions}
        for _ in range(hops):
            wanted = sorted({i for ids_ in frontier.values() for i in ids_})
            if not wanted:
                break
            found: dict[str, list[tuple[str, object]]] = {}
            for r in links.filter(F.col("_from").isin(*wanted)).collect():
                found.setdefault(r["_from"], []).append((r["_to"], r["_at"]))
            nxt: dict[tuple[str, object], set[str]] = {}
            for d, ids_ in frontier.items():
                new = {to for i in ids_ for to, at in found.get(i, [])
                       if at is not None and at >= d[1]} - reached[d]
                if new:
                    reached[d] |= new
                    nxt[d] = new
            frontier = nxt
    rows = [(s, o, c) for (s, o), cs in reached.items() for c in sorted(cs)]
    return spark.createDataFrame(rows, schema)


def resolve_subjects(events: DataFrame, records: DataFrame, xref: DataFrame,
                     identity_events: DataFrame | None) -> DataFrame:
    """Consent events -> the same rows with ``customer_id``, one per customer each event
    applies to now (an e-mail held by two customers applies to both; a customer id merged
    away applies to its survivor). Events whose subject resolves to no customer are left
    out (the person is not known yet: they apply once a record arrives)."""
    x = xref.select("record_id", "customer_id")
    c = F.col
    by_record = events.filter(c("subject_type") == "record").join(
        x, c("subject") == c("record_id")).drop("record_id")
    emails = records.select("record_id", "email_canonical").filter(
        c("email_canonical").isNotNull())
    by_email = (events.filter(c("subject_type") == "email")
                .withColumn("_email", sf.canonical_email(c("subject")))
                .join(emails, c("_email") == c("email_canonical"))
                .join(x, "record_id").drop("record_id", "email_canonical", "_email"))
    phones = records.select("record_id", F.explode(F.array_distinct(F.filter(
        F.array(c("phone_e164"), c("mobile_e164")), lambda p: p.isNotNull()))).alias("_phone"))
    by_phone = (events.filter(c("subject_type") == "phone")
                .join(phones, c("subject") == c("_phone"))
                .join(x, "record_id").drop("record_id", "_phone"))
    by_customer = events.filter(c("subject_type") == "customer")
    parts = [by_record, by_email, by_phone]
    for follow_splits, status in ((False, "granted"), (True, "withdrawn")):
        chosen = by_customer.filter(c("status") == status)
        succ = _successors(chosen.select("subject", "occurred_at").distinct(), identity_events,
                           follow_splits=follow_splits)
        # only ids that exist now (a successor chain ends at a live customer)
        live = succ.join(x.select("customer_id").distinct(), "customer_id", "left_semi")
        parts.append(chosen.join(live, ["subject", "occurred_at"]))
    cols = [*CONSENT_EVENT_COLUMNS, "customer_id"]
    out = parts[0].select(*cols)
    for p in parts[1:]:
        out = out.unionByName(p.select(*cols))
    return out.dropDuplicates(["event_id", "customer_id"])


def effective_consent(resolved: DataFrame, at: datetime) -> DataFrame:
    """``(customer_id, purpose, state)`` from resolved events: the latest event per customer
    and purpose (a withdrawal wins a tie), ``expired`` when a grant's ``expires_at`` is not
    after ``at``."""
    order = Window.partitionBy("customer_id", "purpose").orderBy(
        F.desc("occurred_at"), F.desc(F.col("status") == "withdrawn"), F.desc("recorded_at"),
        F.desc("event_id"))
    latest = resolved.withColumn("_r", F.row_number().over(order)).filter("_r = 1")
    expired = (F.col("status") == "granted") & F.col("expires_at").isNotNull() & (
        F.col("expires_at") <= F.lit(at))
    status = F.when(expired, F.lit("expired")).otherwise(F.col("status"))
    return latest.select("customer_id", "purpose", F.struct(
        status.alias("status"), (status == "granted").alias("allowed"), "occurred_at",
        "expires_at", "legal_basis", "source", "event_id").cast(CONSENT_STATE_TYPE)
        .alias("state"))


def consent_column(purposes: Mapping[str, PurposeSettings], states: Column) -> Column:
    """The profile's ``consent`` map: every configured purpose, from ``states`` (a map
    purpose -> state, null for a customer without events) or the purpose's default."""
    def default(p: PurposeSettings) -> Column:
        return F.struct(F.lit("none").alias("status"),
                        F.lit(not p.requires_opt_in).alias("allowed"),
                        *[F.lit(None).cast(f.dataType).alias(f.name)
                          for f in CONSENT_STATE_TYPE.fields[2:]]).cast(CONSENT_STATE_TYPE)
    if not purposes:
        return F.create_map().cast(T.MapType(T.StringType(), CONSENT_STATE_TYPE))
    return F.create_map(*[x for name, p in sorted(purposes.items()) for x in (
        F.lit(name), F.coalesce(states[name], default(p)))])


def consent_states(effective: DataFrame) -> DataFrame:
    """``(customer_id, states)``: the effective states of a customer as one map."""
    return effective.groupBy("customer_id").agg(
        F.map_from_entries(F.collect_list(F.struct("purpose", "state"))).alias("states"))


def allowed_for(purpose: str, at: datetime) -> Column:
    """Over ``gold.customer_profile``: the customer may be used for ``purpose`` at ``at``
    (the published state, with a grant that has expired since counted as no grant)."""
    state = F.col("consent")[purpose]
    return F.coalesce(state["allowed"] & (state["expires_at"].isNull()
                                          | (state["expires_at"] > F.lit(at))), F.lit(False))
