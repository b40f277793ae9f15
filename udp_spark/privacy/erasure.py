"""Right to erasure: which rows of each table belong to a subject, and the suppression list
that keeps a later batch from bringing the person back.

Pure column and DataFrame helpers; the runner (:mod:`udp_spark.pipeline.erase`) reads,
deletes, re-resolves and purges.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F
from pyspark.sql import types as T

from udp_spark.config import SourceConfig
from udp_spark.standardize import functions as sf
from udp_spark.standardize.transforms import field_column

__all__ = [
    "SUPPRESSION_SCHEMA",
    "bronze_party_keys",
    "salted_hash",
    "suppression_rows",
]

#: ``privacy.suppressions``: one row per erased identifier, as a salted hash only.
SUPPRESSION_SCHEMA = T.StructType([
    T.StructField("hash", T.StringType(), False),
    T.StructField("kind", T.StringType(), False),  # record | email
    T.StructField("request_id", T.StringType(), False),
    T.StructField("created_at", T.TimestampType(), False),
])

#: ``privacy.erasure_requests`` (the API appends pending ones; ``udp erase`` carries them out)
ERASURE_REQUEST_SCHEMA = T.StructType([
    T.StructField("request_id", T.StringType(), False),
    T.StructField("subject_type", T.StringType(), False),
    T.StructField("subject", T.StringType(), True),  # nulled once carried out
    T.StructField("subject_hash", T.StringType(), False),
    T.StructField("requested_at", T.TimestampType(), False),
    T.StructField("requested_by", T.StringType(), True),
    T.StructField("status", T.StringType(), False),
    T.StructField("completed_at", T.TimestampType(), True),
    T.StructField("report", T.StringType(), True),
    T.StructField("error", T.StringType(), True),
])


def salted_hash(value: Column, salt: str) -> Column:
    """SHA-256 of ``salt|value``: what the suppression list keeps instead of the value."""
    return F.sha2(F.concat_ws("|", F.lit(salt), value), 256)


def bronze_party_keys(source: SourceConfig) -> Column:
    """Over ``bronze.<source>`` rows: the record ids a raw row is about, as an array (the
    party record it is, and the party records its interactions point at), derived as
    standardize derives them."""
    keys: list[Column] = []
    if source.party is not None:
        key = sf.clean_text(field_column(source.party.source_key))
        keys.append(F.when(key.isNotNull(), F.concat_ws(":", F.lit(source.name), key)))
    for m in source.interactions:
        if m.party_key is None:
            continue
        key = sf.clean_text(field_column(m.party_key))
        keys.append(F.when(key.isNotNull(), F.concat_ws(":", F.lit(m.party_source
                                                                   or source.name), key)))
    if not keys:
        return F.array().cast("array<string>")
    return F.array_compact(F.array(*keys))


def bronze_emails(source: SourceConfig) -> Column:
    """Over bronze rows: the canonical e-mail the row's party mapping holds (or null)."""
    if source.party is None or source.party.email is None:
        return F.lit(None).cast("string")
    return sf.canonical_email(field_column(source.party.email))


def suppression_rows(spark_df: DataFrame, *, record_ids: Iterable[str],
                     emails: Iterable[str], salt: str, request_id: str) -> DataFrame:
    """The suppression list entries of one request (``spark_df``: any frame, for the
    session): record ids and canonical e-mails, hashed with ``salt``."""
    rows = [("record", r) for r in sorted(set(record_ids))] + [
        ("email", e) for e in sorted(set(emails))]
    spark = spark_df.sparkSession
    raw = spark.createDataFrame(rows, "kind string, value string")
    return raw.select(salted_hash(F.col("value"), salt).alias("hash"), "kind",
                      F.lit(request_id).alias("request_id"),
                      F.current_timestamp().alias("created_at")).dropDuplicates(["hash"])


def row_hashes(source: SourceConfig, salt: str) -> Column:
    """Over raw rows of ``source``: the salted hashes of the record ids and the canonical
    e-mail they carry, to look up in the suppression list."""
    keys = bronze_party_keys(source)
    email = bronze_emails(source)
    return F.array_compact(F.array_union(
        F.transform(keys, lambda k: salted_hash(k, salt)),
        F.array(F.when(email.isNotNull(), salted_hash(email, salt)))))


def split_suppressed(rows: DataFrame, source: SourceConfig, hashes: DataFrame | None,
                     salt: str) -> tuple[DataFrame, DataFrame | None]:
    """``rows`` (raw, before landing) -> (rows to land, rows of erased subjects). The second
    is None when the suppression list is empty.

    The list (a few hashes per erased person) is read into the driver once and compared as
    a literal array, so the input is read once, with no join and no checkpoint."""
    if hashes is None:
        return rows, None
    listed = sorted(r[0] for r in hashes.select("hash").distinct().collect())
    if not listed:
        return rows, None
    hit = F.coalesce(F.arrays_overlap(row_hashes(source, salt),
                                      F.array(*[F.lit(h) for h in listed])), F.lit(False))
    return rows.filter(~hit), rows.filter(hit)


def contains_any(col: Column, values: Sequence[str]) -> Column:
    """``col`` (text, compared lower-cased) contains any of ``values``."""
    if not values:
        return F.lit(False)
    text = F.lower(col)
    out = F.lit(False)
    for v in values:
        out = out | (F.instr(text, F.lit(v.lower())) > 0)
    return F.coalesce(out, F.lit(False))
