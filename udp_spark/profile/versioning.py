"""Change sets that version the profile: what to upsert, which history rows to close and
open (slowly changing dimension type 2), which segment spells begin and end.

Each target is compared with its own current state by ``_row_hash``, so a publish that was
interrupted between two writes repairs itself on the next run, and a publish on unchanged
input produces empty change sets (and so no Delta commit at all).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

__all__ = [
    "HISTORY_EXTRA_COLUMNS",
    "MEMBERSHIP_COLUMNS",
    "PROFILE_EVENT_COLUMNS",
    "PROFILE_EVENT_TYPES",
    "classify_changes",
    "history_changes",
    "profile_changes",
    "profile_events",
    "segment_transitions",
    "unannounced_identity_events",
]

HISTORY_EXTRA_COLUMNS = ("valid_from", "valid_to", "is_current", "change_type")
MEMBERSHIP_COLUMNS = ("customer_id", "segment", "entered_at", "exited_at", "entered_run_id",
                      "exited_run_id")


def classify_changes(new: DataFrame, current: DataFrame | None,
                     keys: Sequence[str] = ("customer_id",),
                     hash_col: str = "_row_hash") -> DataFrame:
    """``new`` rows with ``_change`` = insert / update / unchanged, plus a ``delete`` row
    (other columns null) for each key only in ``current`` (``keys`` + ``hash_col``)."""
    if current is None:
        return new.withColumn("_change", F.lit("insert"))
    cur = current.select(*keys, F.col(hash_col).alias("_old_hash"),
                         F.lit(True).alias("_in_current"))
    joined = new.withColumn("_in_new", F.lit(True)).join(cur, list(keys), "full")
    change = (F.when(F.col("_in_new").isNull(), F.lit("delete"))
              .when(F.col("_in_current").isNull(), F.lit("insert"))
              .when(F.col("_old_hash").eqNullSafe(F.col(hash_col)), F.lit("unchanged"))
              .otherwise(F.lit("update")))
    return joined.withColumn("_change", change).select(*new.columns, "_change")


def profile_changes(classified: DataFrame) -> DataFrame:
    """Classified rows -> the profile MERGE source: ``_action`` upsert or delete."""
    return (classified.filter(F.col("_change") != "unchanged")
            .withColumn("_action", F.when(F.col("_change") == "delete", F.lit("delete"))
                        .otherwise(F.lit("upsert")))
            .drop("_change"))


def history_changes(classified: DataFrame, at: datetime) -> DataFrame:
    """Classified rows -> the history MERGE source (``_action`` insert / replace / close).

    A new customer opens a row (``change_type`` created), a changed one closes its current
    row and opens another (updated), a vanished one (merged away) only closes it. The new
    row is valid from ``at``; a closed row is valid to ``at``.
    """
    change = F.col("_change")
    return (classified.filter(change != "unchanged")
            .withColumn("valid_from", F.lit(at))
            .withColumn("valid_to", F.lit(None).cast("timestamp"))
            .withColumn("is_current", F.lit(True))
            .withColumn("change_type", F.when(change == "insert", F.lit("created"))
                        .when(change == "update", F.lit("updated")))
            .withColumn("_action", F.when(change == "insert", F.lit("insert"))
                        .when(change == "update", F.lit("replace"))
                        .otherwise(F.lit("close")))
            .withColumn("_at", F.lit(at))
            .drop("_change", "published_at"))


def segment_transitions(profiles: DataFrame, open_spells: DataFrame | None, at: datetime,
                        run_id: str) -> DataFrame:
    """Segment spells that begin (``insert``) or end (``close``) at ``at``.

    Args:
        profiles: the new profiles (``customer_id``, ``segments``).
        open_spells: ``(customer_id, segment)`` of spells not yet ended, or None.
    """
    now = profiles.select("customer_id", F.explode("segments").alias("segment"),
                          F.lit(True).alias("_now"))
    if open_spells is None:
        joined = now.withColumn("_before", F.lit(None).cast("boolean"))
    else:
        before = open_spells.select("customer_id", "segment", F.lit(True).alias("_before"))
        joined = now.join(before, ["customer_id", "segment"], "full")
    entering = F.col("_before").isNull()
    return joined.filter(F.col("_now").isNull() | F.col("_before").isNull()).select(
        "customer_id", "segment",
        F.when(entering, F.lit(at)).alias("entered_at"),
        F.lit(None).cast("timestamp").alias("exited_at"),
        F.when(entering, F.lit(run_id)).alias("entered_run_id"),
        F.lit(None).cast("string").alias("exited_run_id"),
        F.when(entering, F.lit("insert")).otherwise(F.lit("close")).alias("_action"),
        F.lit(at).alias("_at"), F.lit(run_id).alias("_run_id"),
    )


# --------------------------------------------------------------------------- profile events

PROFILE_EVENT_COLUMNS = ("event_id", "customer_id", "event_type", "detail",
                         "related_customer_id", "run_id", "event_at")
PROFILE_EVENT_TYPES = ("profile_created", "profile_deleted", "merged", "split",
                       "attributes_changed", "metrics_changed", "consent_changed",
                       "segment_entered", "segment_exited")


def _compared(df: DataFrame, columns: Sequence[str], prefix: str) -> DataFrame:
    # as JSON, so that maps (which Spark cannot compare) compare too
    return df.select("customer_id", *[F.to_json(F.struct(F.col(c))).alias(f"{prefix}{c}")
                                      for c in columns],
                     F.col("segments").alias(f"{prefix}segments"),
                     (F.col("consent") if "consent" in df.columns else F.lit(None).cast(
                         "map<string,struct<status:string>>")).alias(f"{prefix}consent"),
                     F.lit(True).alias(f"{prefix}_in"))


def unannounced_identity_events(identity: DataFrame, announced: DataFrame) -> DataFrame:
    """The ``merged`` / ``split`` identity events in ``identity`` that no profile event in
    ``announced`` (``gold.profile_events``) has passed on yet.

    A publish killed after its events and profiles were committed, but before its watermarks
    (its audit row), reads the same identity events again when it is repeated; the profiles
    then compare equal, but the identity events would be announced twice. Passed on means a
    profile event of the same type, customer and related customer at or after the identity
    event (to the second: publish stamps whole seconds), so the same pair merging again
    later is announced again.
    """
    told = announced.filter(F.col("event_type").isin("merged", "split")).select(
        F.col("customer_id").alias("_c"), F.col("event_type").alias("_t"),
        F.col("related_customer_id").alias("_r"), F.col("event_at").alias("_at"))
    same = ((F.col("customer_id") == F.col("_c")) & (F.col("event_type") == F.col("_t"))
            & F.col("related_customer_id").eqNullSafe(F.col("_r"))
            & (F.col("_at") >= F.date_trunc("second", F.col("event_at"))))
    return identity.join(told, same, "left_anti")


def profile_events(new: DataFrame, old: DataFrame | None,
                   identity: DataFrame | None, *, attributes: Sequence[str],
                   metrics: Sequence[str], run_id: str, at: datetime,
                   purposes: Sequence[str] = ()) -> DataFrame:
    """The changes downstream systems act on, one row per customer and kind of change.

    Args:
        new: the profiles just built; ``old``: the current rows of the same customers.
            Segments entered and exited are the difference of their ``segments``: derived
            from the profile, like every other event, so that an interrupted publish that
            committed its events and profiles but not the segment spells announces nothing
            twice when it is repeated.
        identity: identity events since the last publish (``merged`` and ``split`` are
            passed on; ``created`` is ``profile_created`` here), or None.
        attributes, metrics: the columns whose changes are ``attributes_changed`` and
            ``metrics_changed`` (``detail`` lists the changed columns).
        purposes: the consent purposes whose status changing is ``consent_changed``
            (``detail`` lists them: an e-mail tool stops sending on it).

    Returns:
        :data:`PROFILE_EVENT_COLUMNS`; ``event_id`` is unique per run, customer, type and
        detail.
    """
    cols = [*attributes, *metrics]
    n = _compared(new, cols, "n_")
    if old is None:
        joined = n.select("*", *[F.lit(None).cast("string").alias(f"o_{c}") for c in cols],
                          F.lit(None).cast("array<string>").alias("o_segments"),
                          F.lit(None).cast("map<string,struct<status:string>>").alias(
                              "o_consent"),
                          F.lit(None).cast("boolean").alias("o__in"))
    else:
        joined = n.join(_compared(old, cols, "o_"), "customer_id", "full")

    def changed(names: Sequence[str]) -> Column:
        return F.array_join(F.array_compact(F.array(*[
            F.when(~F.col(f"n_{c}").eqNullSafe(F.col(f"o_{c}")), F.lit(c)) for c in names])),
            ",")

    both = F.col("n__in") & F.col("o__in")
    consent_changed = F.array_join(F.array_compact(F.array(*[
        F.when(~F.col("n_consent")[p]["status"].eqNullSafe(F.col("o_consent")[p]["status"]),
               F.lit(p)) for p in purposes])), ",") if purposes else F.lit("")
    def kind(name: str, detail: Column | None = None) -> Column:
        return F.struct(F.lit(name).alias("t"), (
            detail if detail is not None else F.lit(None)).cast("string").alias("d"))

    kinds = F.array(
        F.when(F.col("o__in").isNull(), kind("profile_created")),
        F.when(F.col("n__in").isNull(), kind("profile_deleted")),
        F.when(both & (changed(attributes) != ""), kind("attributes_changed",
                                                        changed(attributes))),
        F.when(both & (changed(metrics) != ""), kind("metrics_changed", changed(metrics))),
        F.when(both & (consent_changed != ""), kind("consent_changed", consent_changed)))
    changes = joined.select("customer_id", F.explode(F.array_compact(kinds)).alias("k")).select(
        "customer_id", F.col("k.t").alias("event_type"), F.col("k.d").alias("detail"),
        F.lit(None).cast("string").alias("related_customer_id"))
    none = F.array().cast("array<string>")
    entered = F.array_except(F.coalesce("n_segments", none), F.coalesce("o_segments", none))
    exited = F.array_except(F.coalesce("o_segments", none), F.coalesce("n_segments", none))
    segments = joined.select("customer_id", F.explode(F.array_union(
        F.transform(entered, lambda x: F.struct(F.lit("segment_entered").alias("t"),
                                                x.alias("d"))),
        F.transform(exited, lambda x: F.struct(F.lit("segment_exited").alias("t"),
                                               x.alias("d"))))).alias("k")).select(
        "customer_id", F.col("k.t").alias("event_type"), F.col("k.d").alias("detail"),
        F.lit(None).cast("string").alias("related_customer_id"))
    out = changes.unionByName(segments)
    if identity is not None:
        out = out.unionByName(identity.filter(F.col("event_type").isin("merged", "split"))
                              .select("customer_id", "event_type",
                                      F.lit(None).cast("string").alias("detail"),
                                      "related_customer_id"))
    return out.select(
        F.sha2(F.concat_ws("|", F.lit(run_id), "customer_id", "event_type",
                           F.coalesce("detail", F.lit("")),
                           F.coalesce("related_customer_id", F.lit(""))), 256).alias("event_id"),
        "customer_id", "event_type", "detail", "related_customer_id",
        F.lit(run_id).alias("run_id"), F.lit(at).alias("event_at")).dropDuplicates(["event_id"])
