"""The golden profile row: survivorship + metrics + segments + household + a content hash."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date

from pyspark.sql import DataFrame
from pyspark.sql import functions as F
from pyspark.sql import types as T

from udp_spark.config import PublishSettings, PurposeSettings
from udp_spark.privacy.consent import CONSENT_STATE_TYPE, consent_column
from udp_spark.profile.functions import content_hash
from udp_spark.profile.metrics import METRIC_COLUMNS, customer_metrics, with_metric_defaults
from udp_spark.profile.segments import with_segments
from udp_spark.profile.survivorship import GOLDEN_COLUMNS, golden_records

__all__ = ["CONTENT_COLUMNS", "PROFILE_COLUMNS", "build_profiles"]

# What a profile says; ``_row_hash`` is computed over exactly these columns. A change of
# household is a change of the profile (a new history row, an attributes_changed event):
# marketing addresses households, so who a customer lives with is part of what it says.
CONTENT_COLUMNS: tuple[str, ...] = (
    *GOLDEN_COLUMNS, *METRIC_COLUMNS, "last_seen_at", "segments", "consent", "household_id")

# The columns of gold.customer_profile: content, hash, and the publish that last changed it.
PROFILE_COLUMNS: tuple[str, ...] = (*CONTENT_COLUMNS, "_row_hash", "run_id", "published_at")


def build_profiles(records: DataFrame, xref: DataFrame, interactions: DataFrame,
                   settings: PublishSettings, as_of: date, *,
                   consent: DataFrame | None = None,
                   purposes: Mapping[str, PurposeSettings] | None = None,
                   population: DataFrame | None = None) -> DataFrame:
    """One profile per customer in ``xref``: :data:`CONTENT_COLUMNS` plus ``_row_hash``.

    ``household_id`` is null here: households need every customer's profile, so publish
    sets it afterwards (:func:`~udp_spark.profile.households.with_household_ids`).

    Args:
        records: ``silver.party_records``.
        xref: ``gold.identity_xref`` (``record_id`` -> ``customer_id``).
        interactions: ``silver.interactions`` (may be empty); rows without a resolved
            record are anonymous and left out.
        settings: survivorship rules, metric settings and segments.
        as_of: the day metrics are computed for.
        consent: ``(customer_id, states)``: each customer's effective consent states
            (:func:`~udp_spark.privacy.consent.consent_states`); customers absent get each
            purpose's default.
        purposes: the configured purposes (``privacy.purposes``); none: an empty map.
        population: :func:`~udp_spark.profile.survivorship.population_counts` of every
            customer's records, when ``records`` holds only some customers' (survivorship's
            ``most_common`` and ``least_shared`` rank by them).

    Raises:
        SurvivorshipError, SegmentError: a configured predicate does not work (raised while
        the plan is built, before any Spark job runs).
    """
    ids = xref.select("record_id", "customer_id")
    golden = records.join(ids, "record_id").transform(
        golden_records(settings.survivorship, population))
    metrics = (interactions.select("record_id", "type", "occurred_at", "amount", "currency",
                                   "channel", "status", "attributes")
               .join(ids, "record_id")
               .transform(customer_metrics(settings.metrics, as_of)))
    joined = golden.join(metrics, "customer_id", "left").transform(with_metric_defaults)
    if consent is not None:
        joined = joined.join(consent.select("customer_id", "states"), "customer_id", "left")
    else:
        joined = joined.withColumn("states", F.lit(None).cast(
            T.MapType(T.StringType(), CONSENT_STATE_TYPE)))
    profiles = joined.withColumn(
        "last_seen_at", F.greatest(F.col("last_interaction_at"), F.col("last_updated_at"))
    ).withColumn("consent", consent_column(purposes or {}, F.col("states"))
    ).withColumn("household_id", F.lit(None).cast("string"))
    return (profiles.transform(with_segments(settings.segments))
            .select(*CONTENT_COLUMNS)
            .withColumn("_row_hash", content_hash(CONTENT_COLUMNS)))
