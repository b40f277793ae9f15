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
  the record with the highest ``completeness`` score. For names, the written-out words
  count: an initial or a word with a digit counts for nothing, and a known short form of a
  given name ('Jim') counts less than the full one ('James').

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

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F
from pyspark.sql import types as T
from pyspark.sql.window import Window

from udp_spark.config import AttributeRule, SurvivorshipSettings
from udp_spark.profile.functions import observed_at, predicate_problem, source_time
from udp_spark.standardize.functions import nickname_aliases

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


def _filled(*cols: str) -> str:
    return " + ".join(f"CAST({c} IS NOT NULL AS INT)" for c in cols)


def _key(*cols: str) -> str:
    return "concat_ws('|', " + ", ".join(f"coalesce(CAST({c} AS STRING), '')" for c in cols) + ")"


# How complete a name is: two points per written-out word; an initial, a word with a digit
# (a user name, an OCR slip) and a given name that is a known short form of another ('jim'
# for 'james') earn nothing. 'Sarah R.' < 'Sarah Roberts', 'Jim Graves' < 'James Graves',
# 'Maria Cortes' < 'Maria Angeles Cortes Sanchez'.
_NAME_FILL = (
    "2 * size(filter(split(concat_ws(' ', given_name_norm, middle_name_norm, "
    "family_name_norm), ' '), w -> length(w) > 1 AND NOT w RLIKE '[0-9]')) "
    "- 2 * CAST(coalesce(NOT given_name_norm LIKE '% %' AND size(_given_aliases) > 1 "
    "AND length(given_name_norm) > 1 AND NOT given_name_norm RLIKE '[0-9]', false) AS INT)")


def _candidate(attribute: str, values: dict[str, str], present: str, key: str, valid: str,
               fill: str, slot: int = 0) -> str:
    """``slot``: which of a record's own fields for the attribute it is (its phone 0, its
    mobile 1): the last tie-breaker, so that equal candidates of one record never leave the
    choice to the order rows happen to arrive in."""
    value = ", ".join(f"'{f}', CAST({values.get(f, 'NULL')} AS {t.simpleString()})"
                      for f, t in VALUE_FIELDS)
    return (f"named_struct('attribute', '{attribute}', 'value', named_struct({value}), "
            f"'key', CASE WHEN {present} THEN {key} END, 'valid', coalesce({valid}, false), "
            f"'fill', CAST({fill} AS INT), 'slot', {slot})")


def _candidates() -> Column:
    """One candidate struct per attribute a record asserts (two for its phone numbers).

    Written as one SQL expression: built from Column objects it would take hundreds of
    calls into the JVM per plan.
    """
    items = [
        _candidate("name", {f: f for f in ATTRIBUTE_FIELDS["name"]},
                   "given_name IS NOT NULL OR family_name IS NOT NULL",
                   _key("given_name_norm", "middle_name_norm", "family_name_norm"), "true",
                   _NAME_FILL),
        _candidate("email", {"email": "email"}, "email IS NOT NULL", "lower(email)",
                   "email_valid", "1"),
        _candidate("phone", {"phone": "phone_e164"}, "phone_e164 IS NOT NULL", "phone_e164",
                   "phone_valid", "1"),
        _candidate("phone", {"phone": "mobile_e164"}, "mobile_e164 IS NOT NULL",
                   "mobile_e164", "mobile_valid", "1", slot=1),
        _candidate("address", {f: f for f in ATTRIBUTE_FIELDS["address"]},
                   "street IS NOT NULL OR city IS NOT NULL OR postcode IS NOT NULL",
                   _key("street_norm", "city_norm", "postcode", "country"),
                   "street IS NOT NULL AND (city IS NOT NULL OR postcode IS NOT NULL)",
                   _filled("street", "city", "state", "postcode")),
        _candidate("birth", {"date_of_birth": "date_of_birth", "birth_year": "birth_year"},
                   "date_of_birth IS NOT NULL OR birth_year IS NOT NULL",
                   "coalesce(CAST(date_of_birth AS STRING), CAST(birth_year AS STRING))",
                   "true", _filled("date_of_birth", "birth_year")),
        _candidate("gender", {"gender": "gender"}, "gender IS NOT NULL", "gender", "true", "1"),
        _candidate("loyalty_id", {"loyalty_id": "loyalty_id"}, "loyalty_id IS NOT NULL",
                   "loyalty_id", "true", "1"),
    ]
    return F.expr(f"filter(array({', '.join(items)}), x -> x.key IS NOT NULL)")


# --------------------------------------------------------------------------- ranking

_FAR = "9.0e18"  # ranks after every real key (missing times, ranks)

# SQL per rule: numbers compared in order, smaller ranks first. The expressions in this
# module are SQL text on purpose: one call into the JVM each instead of dozens.
_RANK_KEYS: dict[str, tuple[str, ...]] = {
    "source_priority": (f"coalesce(CAST(source_rank AS DOUBLE), {_FAR})",),
    # A time the source gave beats none: an ingestion time is not a change time.
    "most_recent": ("CAST(_source_time IS NULL AS DOUBLE)",
                    f"coalesce(-CAST(unix_micros(observed_at) AS DOUBLE), {_FAR})"),
    "most_frequent": ("-CAST(_frequency AS DOUBLE)",),
    "most_complete": ("-(CAST(fill AS DOUBLE) * 10 + coalesce(CAST(completeness AS DOUBLE), 0))",),
}


def _chosen(attribute: str, spec: AttributeRule) -> Column:
    """The best eligible candidate of ``attribute`` with its lineage (an aggregate)."""
    eligible = [f"attribute = '{attribute}'"]
    if spec.valid_only:
        eligible.append("valid")
    if spec.where:
        eligible.append(f"_where_{attribute}")
    ranks = ", ".join(k for r in (spec.rule, *spec.tie_breakers) for k in _RANK_KEYS[r])
    order = (f"CASE WHEN {' AND '.join(eligible)} THEN "
             f"named_struct('ranks', array({ranks}), 'record_id', record_id, 'slot', slot) END")
    lineage = (f"named_struct('source', source, 'record_id', record_id, 'rule', "
               f"'{spec.rule}', 'observed_at', observed_at)")
    return F.expr(f"min_by(named_struct('value', value, 'lineage', {lineage}), {order})")


def _check_where(records: DataFrame, attribute: str, where: str) -> Column:
    problem = predicate_problem(records, where, "silver.party_records")
    if problem:
        raise SurvivorshipError(
            f"publish.survivorship.{attribute}.where: {where!r} {problem}; write a "
            f"predicate such as \"email_valid = true\"; "
            f"columns are {sorted(records.columns)}")
    col = F.expr(where)
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
                              source_time().alias("_source_time"),
                              nickname_aliases(F.col("given_name_norm")).alias("_given_aliases"),
                              *wheres)
        exploded = base.select(
            "customer_id", "record_id", "source", "source_rank", "completeness",
            "observed_at", "_source_time", *[f"_where_{a}" for a, s in specs.items() if s.where],
            F.explode_outer(_candidates()).alias("c"),
        ).select("*", "c.*").drop("c")
        if any("most_frequent" in (s.rule, *s.tie_breakers) for s in specs.values()):
            by_value = Window.partitionBy("customer_id", "attribute", "key")
            exploded = exploded.withColumn(
                "_frequency", F.size(F.collect_set("record_id").over(by_value)))

        golden = exploded.groupBy("customer_id").agg(
            *[_chosen(attr, spec).alias(f"_g_{attr}") for attr, spec in specs.items()],
            F.count_distinct("record_id").cast("int").alias("record_count"),
            F.sort_array(F.collect_set("source")).alias("sources"),
            F.min("observed_at").alias("first_seen_at"),
            F.max("_source_time").alias("last_updated_at"),
        )
        multi = exploded.transform(_multi_valued)
        fields = [(a, f) for a, fs in ATTRIBUTE_FIELDS.items() for f in fs]
        lineage = ", ".join(f"'{f}', CASE WHEN _g_{a}.value.{f} IS NOT NULL "
                            f"THEN _g_{a}.lineage END" for a, f in fields)
        return golden.join(multi, "customer_id", "left").selectExpr(
            "customer_id",
            *[f"_g_{a}.value.{f} AS {f}" for a, f in fields],
            *[f"coalesce({name}, array()) AS {name}" for name in MULTI_VALUED.values()],
            f"named_struct({lineage}) AS lineage",
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
