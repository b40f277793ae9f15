"""Survivorship: one golden value per attribute and customer, each with its lineage.

An *attribute* is a group of profile columns always taken from one record together, so a
golden address never mixes one record's street with another's postcode:

=============  ==========================================================  ==============
attribute      profile columns                                             validity check
=============  ==========================================================  ==============
name           given_name, middle_name, family_name, full_name             -
email          email                                                       email_valid
phone          phone (from phone_e164 and mobile_e164)                     phone_valid /
                                                                           mobile_valid
address        street, city, state, postcode, country                      a street and a
                                                                           city or postcode
birth          date_of_birth, birth_year                                   -
gender         gender                                                      -
loyalty_id     loyalty_id                                                  -
=============  ==========================================================  ==============

Every record of a customer that has the attribute is a candidate. The attribute's ``rule``
ranks the candidates, its ``tie_breakers`` rank those the rule finds equal, and the smallest
``record_id`` decides last, so the result never depends on row order:

- ``source_priority``: the most trusted source (lowest ``trust_rank``) first.
- ``most_recent``: the latest observed record first (``updated_at``, else ``created_at``);
  records whose source gives neither rank after those that do, by ingestion time.
- ``most_frequent``: the value asserted by most records of the customer first (values are
  compared on a normalized key: normalized names, the e-mail, the E.164 number, ...).
- ``most_complete``: the candidate with most of the attribute's columns filled first, then
  the record with the highest ``completeness`` score.

``valid_only`` drops candidates failing the validity check and ``where`` drops records not
matching a SQL predicate; a customer with no eligible candidate gets nulls.

Each golden column has a lineage entry ``{source, record_id, rule, observed_at}`` in the
``lineage`` struct (``lineage.email.source``); it is null where the value is null.
Multi-valued ``emails``, ``phones`` and ``addresses`` keep every value any record asserts,
with first and last seen times, the number of sources asserting it, the sources and the
records (most recently seen first).
"""

from __future__ import annotations

from collections.abc import Callable

from pyspark.errors import AnalysisException
from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F
from pyspark.sql import types as T
from pyspark.sql.window import Window

from udp_spark.config import AttributeRule, SurvivorshipSettings
from udp_spark.profile.functions import observed_at, source_time

Transform = Callable[[DataFrame], DataFrame]

__all__ = [
    "ATTRIBUTE_FIELDS",
    "GOLDEN_COLUMNS",
    "GOLDEN_FIELDS",
    "LINEAGE_TYPE",
    "SurvivorshipError",
    "golden_records",
]


class SurvivorshipError(ValueError):
    """A survivorship setting does not work on the data (e.g. a ``where`` predicate)."""


# The value struct every candidate carries: the union of all attributes' columns.
VALUE_FIELDS: tuple[tuple[str, T.DataType], ...] = (
    ("given_name", T.StringType()), ("middle_name", T.StringType()),
    ("family_name", T.StringType()), ("full_name", T.StringType()),
    ("email", T.StringType()), ("phone", T.StringType()),
    ("street", T.StringType()), ("city", T.StringType()), ("state", T.StringType()),
    ("postcode", T.StringType()), ("country", T.StringType()),
    ("date_of_birth", T.DateType()), ("birth_year", T.IntegerType()),
    ("gender", T.StringType()), ("loyalty_id", T.StringType()),
)

ATTRIBUTE_FIELDS: dict[str, tuple[str, ...]] = {
    "name": ("given_name", "middle_name", "family_name", "full_name"),
    "email": ("email",),
    "phone": ("phone",),
    "address": ("street", "city", "state", "postcode", "country"),
    "birth": ("date_of_birth", "birth_year"),
    "gender": ("gender",),
    "loyalty_id": ("loyalty_id",),
}
GOLDEN_FIELDS: tuple[str, ...] = tuple(f for fs in ATTRIBUTE_FIELDS.values() for f in fs)
MULTI_VALUED = {"email": "emails", "phone": "phones", "address": "addresses"}

LINEAGE_TYPE = T.StructType([
    T.StructField("source", T.StringType()),
    T.StructField("record_id", T.StringType()),
    T.StructField("rule", T.StringType()),
    T.StructField("observed_at", T.TimestampType()),
])

GOLDEN_COLUMNS: tuple[str, ...] = (
    "customer_id", *GOLDEN_FIELDS, "emails", "phones", "addresses", "lineage",
    "record_count", "sources", "first_seen_at", "last_updated_at",
)

# Record columns the candidates are built from.
_RECORD_COLUMNS = (
    "customer_id", "record_id", "source", "source_rank", "completeness",
    "given_name", "middle_name", "family_name", "full_name",
    "given_name_norm", "middle_name_norm", "family_name_norm",
    "email", "email_valid", "phone_e164", "phone_valid", "mobile_e164", "mobile_valid",
    "street", "street_norm", "city", "city_norm", "state", "postcode", "country",
    "date_of_birth", "birth_year", "gender", "loyalty_id",
)


# --------------------------------------------------------------------------- candidates


def _filled(*cols: str) -> Column:
    total = F.lit(0)
    for c in cols:
        total = total + F.col(c).isNotNull().cast("int")
    return total


def _key(*cols: str) -> Column:
    return F.concat_ws("|", *[F.coalesce(F.col(c).cast("string"), F.lit("")) for c in cols])


def _candidate(attribute: str, values: dict[str, Column], present: Column, key: Column,
               valid: Column, fill: Column) -> Column:
    value = F.struct(*[(values[f] if f in values else F.lit(None)).cast(t).alias(f)
                       for f, t in VALUE_FIELDS])
    return F.struct(F.lit(attribute).alias("attribute"), value.alias("value"),
                    F.when(present, key).alias("key"),
                    F.coalesce(valid, F.lit(False)).alias("valid"),
                    fill.cast("int").alias("fill"))


def _candidates() -> Column:
    """One candidate struct per attribute a record asserts (two for its phone numbers)."""
    c = F.col
    has_name = c("given_name").isNotNull() | c("family_name").isNotNull()
    has_address = c("street").isNotNull() | c("city").isNotNull() | c("postcode").isNotNull()
    items = [
        _candidate("name", {f: c(f) for f in ATTRIBUTE_FIELDS["name"]}, has_name,
                   _key("given_name_norm", "middle_name_norm", "family_name_norm"),
                   F.lit(True), _filled("given_name", "middle_name", "family_name")),
        _candidate("email", {"email": c("email")}, c("email").isNotNull(),
                   F.lower(c("email")), c("email_valid"), F.lit(1)),
        _candidate("phone", {"phone": c("phone_e164")}, c("phone_e164").isNotNull(),
                   c("phone_e164"), c("phone_valid"), F.lit(1)),
        _candidate("phone", {"phone": c("mobile_e164")}, c("mobile_e164").isNotNull(),
                   c("mobile_e164"), c("mobile_valid"), F.lit(1)),
        _candidate("address", {f: c(f) for f in ATTRIBUTE_FIELDS["address"]}, has_address,
                   _key("street_norm", "city_norm", "postcode", "country"),
                   c("street").isNotNull() & (c("city").isNotNull() | c("postcode").isNotNull()),
                   _filled("street", "city", "state", "postcode")),
        _candidate("birth", {"date_of_birth": c("date_of_birth"), "birth_year": c("birth_year")},
                   c("date_of_birth").isNotNull() | c("birth_year").isNotNull(),
                   F.coalesce(c("date_of_birth").cast("string"), c("birth_year").cast("string")),
                   F.lit(True), _filled("date_of_birth", "birth_year")),
        _candidate("gender", {"gender": c("gender")}, c("gender").isNotNull(), c("gender"),
                   F.lit(True), F.lit(1)),
        _candidate("loyalty_id", {"loyalty_id": c("loyalty_id")}, c("loyalty_id").isNotNull(),
                   c("loyalty_id"), F.lit(True), F.lit(1)),
    ]
    return F.filter(F.array(*items), lambda x: x["key"].isNotNull())


# --------------------------------------------------------------------------- ranking

_FAR = 9.0e18  # ranks after every real key (missing times, ranks)


def _rank_keys(rule: str) -> list[Column]:
    """Numbers per candidate for one rule, compared in order; smaller ranks first."""
    if rule == "source_priority":
        return [F.coalesce(F.col("source_rank").cast("double"), F.lit(_FAR))]
    if rule == "most_recent":
        # A time the source gave beats none: an ingestion time is not a change time.
        return [F.col("_source_time").isNull().cast("double"),
                F.coalesce(-F.unix_micros(F.col("observed_at")).cast("double"), F.lit(_FAR))]
    if rule == "most_frequent":
        return [-F.col("_frequency").cast("double")]
    if rule == "most_complete":
        return [-(F.col("fill").cast("double") * 10
                  + F.coalesce(F.col("completeness").cast("double"), F.lit(0.0)))]
    raise ValueError(f"unknown survivorship rule {rule!r}")  # pragma: no cover - Literal


def _order_key(attribute: str, spec: AttributeRule) -> Column:
    """The sort key of an eligible candidate of ``attribute`` (null otherwise)."""
    eligible = F.col("attribute") == F.lit(attribute)
    if spec.valid_only:
        eligible = eligible & F.col("valid")
    if spec.where:
        eligible = eligible & F.col(f"_where_{attribute}")
    ranks = [k for r in (spec.rule, *spec.tie_breakers) for k in _rank_keys(r)]
    return F.when(eligible, F.struct(F.array(*ranks).alias("ranks"),
                                     F.col("record_id").alias("record_id")))


def _check_where(records: DataFrame, attribute: str, where: str) -> Column:
    try:
        col = F.expr(where)
        dtype = records.select(col.alias("_w")).schema["_w"].dataType
    except AnalysisException as exc:
        first = str(exc).splitlines()[0]
        raise SurvivorshipError(
            f"publish.survivorship.{attribute}.where: {where!r} does not work on "
            f"silver.party_records: {first}; columns are {sorted(records.columns)}") from None
    if not isinstance(dtype, T.BooleanType):
        raise SurvivorshipError(
            f"publish.survivorship.{attribute}.where: {where!r} is a {dtype.simpleString()}, "
            "not a condition; write a predicate such as \"email_valid = true\"")
    return F.coalesce(col, F.lit(False))


# --------------------------------------------------------------------------- golden


def golden_records(settings: SurvivorshipSettings) -> Transform:
    """Party records with ``customer_id`` -> one golden row per customer.

    Output columns: :data:`GOLDEN_COLUMNS`; ``record_count``/``sources`` count the records
    and sources behind the customer, ``first_seen_at`` is the earliest observed time of any
    of them and ``last_updated_at`` the latest time a source says one changed.

    Raises:
        SurvivorshipError: a ``where`` predicate does not resolve or is not a condition.
    """
    specs: dict[str, AttributeRule] = dict(settings)

    def transform(records: DataFrame) -> DataFrame:
        wheres = [_check_where(records, a, s.where).alias(f"_where_{a}")
                  for a, s in specs.items() if s.where]
        base = records.select(*_RECORD_COLUMNS, observed_at().alias("observed_at"),
                              source_time().alias("_source_time"), *wheres)
        exploded = base.select(
            "customer_id", "record_id", "source", "source_rank", "completeness",
            "observed_at", "_source_time", *[f"_where_{a}" for a, s in specs.items() if s.where],
            F.explode_outer(_candidates()).alias("c"),
        ).select("*", "c.*").drop("c")
        if any("most_frequent" in (s.rule, *s.tie_breakers) for s in specs.values()):
            by_value = Window.partitionBy("customer_id", "attribute", "key")
            exploded = exploded.withColumn(
                "_frequency", F.size(F.collect_set("record_id").over(by_value)))

        chosen = [
            F.min_by(F.struct(F.col("value"), F.struct(
                "source", "record_id", F.lit(spec.rule).alias("rule"), "observed_at")
                .alias("lineage")), _order_key(attr, spec)).alias(f"_g_{attr}")
            for attr, spec in specs.items()]
        golden = exploded.groupBy("customer_id").agg(
            *chosen,
            F.count_distinct("record_id").cast("int").alias("record_count"),
            F.sort_array(F.collect_set("source")).alias("sources"),
            F.min("observed_at").alias("first_seen_at"),
            F.max("_source_time").alias("last_updated_at"),
        )
        multi = exploded.transform(_multi_valued)
        lineage = F.struct(*[
            F.when(F.col(f"_g_{a}.value.{f}").isNotNull(), F.col(f"_g_{a}.lineage")).alias(f)
            for a, fields in ATTRIBUTE_FIELDS.items() for f in fields])
        return golden.join(multi, "customer_id", "left").select(
            "customer_id",
            *[F.col(f"_g_{a}.value.{f}").alias(f)
              for a, fields in ATTRIBUTE_FIELDS.items() for f in fields],
            *[F.coalesce(F.col(name), F.array()).alias(name) for name in MULTI_VALUED.values()],
            lineage.alias("lineage"),
            "record_count", "sources", "first_seen_at", "last_updated_at",
        )

    return transform


def _multi_valued(exploded: DataFrame) -> DataFrame:
    """``(customer_id, emails, phones, addresses)``: every value with when and by whom."""
    per_value = exploded.filter(F.col("attribute").isin(*MULTI_VALUED)).groupBy(
        "customer_id", "attribute", "key").agg(
        F.max_by("value", F.struct("observed_at", "record_id")).alias("value"),
        F.min("observed_at").alias("first_seen_at"),
        F.max("observed_at").alias("last_seen_at"),
        F.sort_array(F.collect_set("source")).alias("sources"),
        F.sort_array(F.collect_set("record_id")).alias("record_ids"),
    )
    seen = [F.col("first_seen_at"), F.col("last_seen_at"),
            F.size("sources").alias("source_count"), F.col("sources"), F.col("record_ids")]
    entries = {
        "email": F.struct(F.col("value.email").alias("value"), *seen),
        "phone": F.struct(F.col("value.phone").alias("value"), *seen),
        "address": F.struct(*[F.col(f"value.{f}").alias(f)
                              for f in ATTRIBUTE_FIELDS["address"]], *seen),
    }
    # Sorted by a leading (-last seen, key) pair, then unwrapped: most recent first.
    order = F.struct(-F.unix_micros("last_seen_at"), F.col("key"))
    collected = per_value.groupBy("customer_id").agg(*[
        F.sort_array(F.collect_list(F.when(
            F.col("attribute") == a, F.struct(order.alias("o"), entry.alias("e")))))
        .alias(f"_m_{a}") for a, entry in entries.items()])
    return collected.select("customer_id", *[
        F.transform(F.col(f"_m_{a}"), lambda x: x["e"]).alias(name)
        for a, name in MULTI_VALUED.items()])
