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
- ``most_recent``: the value the customer's records asserted last first (``updated_at``,
  else ``created_at``); values no source gave a time for rank after those with one, by
  ingestion time. An address is one value however written: its house number and street
  words, without street types and unit ('1083 Pacific Ave Apt 23B' is '1083 Pacific
  Avenue #23B'), so that the latest record leaving out the postcode does not outrank the
  same address written in full.
- ``most_frequent``: the value asserted by most records of the customer first (values are
  compared on a normalized key: the canonical e-mail, the E.164 number, ...). For names, the
  records that *agree* with the candidate are counted: each word of a record's given and
  middle names stands for one of the candidate's (the same word, its initial, or a known
  short form: 'Jim' for 'James'; a middle name only when the candidate has one), each
  word of its family name is one of the candidate's, and a missing part agrees with
  anything; words are compared accent-folded, with 'ue',
  'oe', 'ae' read as 'u', 'o', 'a' ('Mueller' is 'Müller'). So 'Maria', 'M.' and 'Maria
  Costa' all count for 'Maria Carmen Costa Delgado', and a typo counts only for itself.
- ``most_complete``: the candidate with most of the attribute's columns filled first (an
  address's street and postcode count twice its city and state), then the record with the
  highest ``completeness`` score. For names, only the distinct written-out words count: an
  initial or a word with a digit counts for nothing, a known short form of a given name
  ('Jim') counts less than the full one ('James'), and the spelling with accents ('Müller',
  'Gómez') counts one point more than the one without.
- ``most_common`` (names): the name whose rarest word is most common in its role among all
  customers, then whose words are, summed (given words as given names, family words as
  family names, counted among all customers: ``population``): a typo
  ('Jacon'), or a given and family name swapped ('Weber Thomas'), makes a rare word.
  (E-mails): the address whose domain most customers use (``population``): a misspelt
  provider ('gmail.con') is rare, and so is a company's domain (a work address) beside the
  big providers of personal ones; a relay address (Apple's Hide My Email and the like:
  ``RELAY_EMAIL_DOMAINS``) counts as the rarest, however many customers have one.
- ``spells_name`` (e-mails): the address whose local part spells most of the customer's
  name words (the given and family name words of any of its records, three letters or
  more, accents folded: 'joerg.mueller' spells Jörg Müller twice): a typo in the address
  breaks a word of the name ('rachel.mccarth82' spells one, 'rachel.mccarthy82' two), and
  a relay address spells none.
- ``least_shared`` (e-mails, phones): the value the fewest customers assert (counted among
  all customers: ``population``): a shop's own phone number keyed in for its customers, or
  a household's shared mailbox, ranks after the customer's own.
- ``mobile_first`` (phones): a mobile number (a record's mobile field, or a phone number
  whose kind is mobile) before a landline: it reaches the person, not the household, and
  it outlives a move.

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
from udp_spark.standardize.functions import in_set, nickname_aliases
from udp_spark.standardize.reference import RELAY_EMAIL_DOMAINS, STREET_TYPES

Transform = Callable[[DataFrame], DataFrame]

__all__ = [
    "ATTRIBUTE_FIELDS",
    "GOLDEN_COLUMNS",
    "GOLDEN_FIELDS",
    "LINEAGE_TYPE",
    "SurvivorshipError",
    "golden_records",
    "population_counts",
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
    "email", "email_canonical", "email_valid",
    "phone_e164", "phone_valid", "phone_kind", "mobile_e164", "mobile_valid",
    "street", "street_norm", "city", "city_norm", "state", "postcode", "country",
    "date_of_birth", "birth_year", "gender", "loyalty_id",
)


# --------------------------------------------------------------------------- candidates


def _filled(*cols: str) -> str:
    return " + ".join(f"CAST({c} IS NOT NULL AS INT)" for c in cols)


def _key(*cols: str) -> str:
    return "concat_ws('|', " + ", ".join(f"coalesce(CAST({c} AS STRING), '')" for c in cols) + ")"


# How complete a name is: two points per written-out word; an initial, a word with a digit
# (a user name, an OCR slip) and a given name that is a known short form of a longer one
# ('jim' for 'james'; not 'thomas', which the table also relates to 'thom') earn nothing.
# 'Sarah R.' < 'Sarah Roberts', 'Jim Graves' < 'James Graves',
# 'Maria Cortes' < 'Maria Angeles Cortes Sanchez'.
# The spelling with accents earns one point more ('Müller' > 'Mueller', 'Gómez' > 'Gomez'):
# systems that cannot store them write the ASCII form, never the other way round.
_NAME_FILL = (
    "2 * size(array_distinct(filter(split(concat_ws(' ', given_name_norm, middle_name_norm, "
    "family_name_norm), ' '), w -> length(w) > 1 AND NOT w RLIKE '[0-9]'))) "
    "- 2 * CAST(coalesce(NOT given_name_norm LIKE '% %' "
    "AND exists(_given_aliases, a -> length(a) > length(given_name_norm)) "
    "AND length(given_name_norm) > 1 AND NOT given_name_norm RLIKE '[0-9]', false) AS INT) "
    "+ CAST(coalesce(concat_ws('', given_name, middle_name, family_name) RLIKE '[^ -~]', "
    "false) AS INT)")


# Street words that say nothing about which street it is: types (after normalize_street
# shortened them) and unit words. "1083 Pacific Ave Apt 23B" and "1083 Pacific Avenue #23B"
# are one place: house number 1083 and the words {pacific}.
_NOT_PLACE_WORDS = sorted({*STREET_TYPES.values(), "apt", "app", "appt", "flat", "unit",
                           "suite", "ste", "floor", "bldg", "piso", "puerta", "etage",
                           "wohnung"})
_PLACE = (
    "CASE WHEN street_norm IS NOT NULL THEN concat_ws('|', "
    "regexp_extract(street_norm, '(^| )([0-9]+)', 2), array_join(array_sort(array_distinct("
    "filter(split(street_norm, ' '), w -> length(w) >= 3 AND NOT w RLIKE '[0-9]' AND NOT "
    "array_contains(array(" + ", ".join(f"'{w}'" for w in _NOT_PLACE_WORDS) + "), w)))), "
    "' ')) END")


def _candidate(attribute: str, values: dict[str, str], present: str, key: str, valid: str,
               fill: str, slot: int = 0, *, support: str = "NULL", common: str = "0",
               common_total: str = "0", mobile: str = "false", place: str | None = None,
               spells: str = "0") -> str:
    """``slot``: which of a record's own fields for the attribute it is (its phone 0, its
    mobile 1): the last tie-breaker, so that equal candidates of one record never leave the
    choice to the order rows happen to arrive in. ``support``: the records agreeing with it
    (null: count the records with its key); ``common``, ``common_total``: how common its
    rarest word is and all its words are; ``mobile``:
    whether it is a mobile number; ``place``: what makes two of the attribute's values the
    same for ``most_recent`` (default: the key)."""
    value = ", ".join(f"'{f}', CAST({values.get(f, 'NULL')} AS {t.simpleString()})"
                      for f, t in VALUE_FIELDS)
    return (f"named_struct('attribute', '{attribute}', 'value', named_struct({value}), "
            f"'key', CASE WHEN {present} THEN {key} END, 'valid', coalesce({valid}, false), "
            f"'fill', CAST({fill} AS INT), 'slot', {slot}, "
            f"'support', CAST({support} AS INT), 'common', CAST({common} AS DOUBLE), "
            f"'common_total', CAST({common_total} AS DOUBLE), "
            f"'mobile', coalesce({mobile}, false), 'spells', coalesce(CAST({spells} AS INT), 0), "
            f"'place', CASE WHEN {present} THEN coalesce({place or key}, {key}) END)")


# An e-mail's key: the same mailbox, case, a +tag and gmail's dots aside.
_EMAIL_KEY = "coalesce(email_canonical, lower(email))"


def _candidates() -> Column:
    """One candidate struct per attribute a record asserts (two for its phone numbers).

    Written as one SQL expression: built from Column objects it would take hundreds of
    calls into the JVM per plan.
    """
    items = [
        _candidate("name", {f: f for f in ATTRIBUTE_FIELDS["name"]},
                   "given_name IS NOT NULL OR family_name IS NOT NULL",
                   _key("given_name_norm", "middle_name_norm", "family_name_norm"), "true",
                   _NAME_FILL, support="_name_support", common="_name_common.rarest",
                   common_total="_name_common.total"),
        _candidate("email", {"email": "email"}, "email IS NOT NULL", _EMAIL_KEY, "email_valid",
                   "1", common="_email_common", spells="_email_spells"),
        _candidate("phone", {"phone": "phone_e164"}, "phone_e164 IS NOT NULL", "phone_e164",
                   "phone_valid", "1", mobile="phone_kind = 'mobile'"),
        _candidate("phone", {"phone": "mobile_e164"}, "mobile_e164 IS NOT NULL",
                   "mobile_e164", "mobile_valid", "1", slot=1, mobile="true"),
        _candidate("address", {f: f for f in ATTRIBUTE_FIELDS["address"]},
                   "street IS NOT NULL OR city IS NOT NULL OR postcode IS NOT NULL",
                   _key("street_norm", "city_norm", "postcode", "country"),
                   "street IS NOT NULL AND (city IS NOT NULL OR postcode IS NOT NULL)",
                   # street and postcode deliver a letter; city and state only help
                   f"2 * ({_filled('street', 'postcode')}) + {_filled('city', 'state')}",
                   place=_PLACE),
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
    "most_recent": ("CAST(_place_source_time IS NULL AS DOUBLE)",
                    f"coalesce(-CAST(unix_micros(_place_seen) AS DOUBLE), {_FAR})"),
    "most_frequent": ("-CAST(_frequency AS DOUBLE)",),
    # A name is ranked by its own words only: how complete the rest of its record is says
    # nothing about whether the name is spelt right, and would leave most_common no tie.
    "most_complete": ("-(CAST(fill AS DOUBLE) * 10 + CASE WHEN attribute = 'name' THEN 0 "
                      "ELSE coalesce(CAST(completeness AS DOUBLE), 0) END)",),
    "most_common": ("-coalesce(common, 0.0)", "-coalesce(common_total, 0.0)"),
    "mobile_first": ("CAST(NOT mobile AS DOUBLE)",),
    "least_shared": ("CAST(coalesce(_sharers, 1) AS DOUBLE)",),
    "spells_name": ("-CAST(spells AS DOUBLE)",),
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


# --------------------------------------------------------------------------- names


def _folded(col: Column) -> Column:
    """A normalized name word compared loosely: 'ue', 'oe', 'ae' as 'u', 'o', 'a', so the
    transliterated 'mueller' meets 'muller' (what ``normalize_name`` makes of 'Müller')."""
    return F.regexp_replace(col, "([aou])e", "$1")


def _words(*cols: str) -> Column:
    return F.filter(F.split(F.concat_ws(" ", *[F.col(c) for c in cols]), " "),
                    lambda w: w != F.lit(""))


def _name_parts(forms: str | None = "_given_aliases") -> Column:
    """A record's name as folded words: ``given``, ``middle``, ``first`` (both) and
    ``family``, and ``forms``, the folded known forms of its given name (the ``forms``
    column, from ``nickname_aliases``; none when it is None); null without a name."""
    return F.when(F.col("given_name").isNotNull() | F.col("family_name").isNotNull(),
                  F.struct(
                      F.transform(_words("given_name_norm"), _folded).alias("given"),
                      F.transform(_words("middle_name_norm"), _folded).alias("middle"),
                      F.transform(_words("given_name_norm", "middle_name_norm"), _folded
                                  ).alias("first"),
                      F.transform(_words("family_name_norm"), _folded).alias("family"),
                      (F.transform(F.coalesce(F.col(forms), F.array().cast("array<string>")),
                                   _folded) if forms else F.array().cast("array<string>")
                       ).alias("forms")))


def _agrees(b: Column, a: Column) -> Column:
    """Whether record name ``b`` agrees with candidate name ``a``: each of b's given words
    is one of a's given or middle words or its initial, or the two given names are known
    forms of one another; so is each of b's middle words, unless a has no middle name; each
    of b's family words is one of a's family (or middle) words or its initial."""
    a_last = F.concat(a["family"], a["middle"])

    def initial_of(word: Column, words: Column) -> Column:
        return (F.length(word) == 1) & F.exists(words, lambda y: y.startswith(word))

    def first_ok(w: Column) -> Column:
        return F.array_contains(a["first"], w) | initial_of(w, a["first"])

    return ((F.forall(b["given"], first_ok) | F.arrays_overlap(b["forms"], a["forms"]))
            & ((F.size(a["middle"]) == 0) | F.forall(b["middle"], first_ok))
            & F.forall(b["family"], lambda w: F.array_contains(a_last, w)
                       | initial_of(w, a_last)))


def _with_name_support(base: DataFrame) -> DataFrame:
    """``_name_support``: how many of the customer's records agree with the record's name."""
    names = F.collect_list("_name").over(Window.partitionBy("customer_id"))
    return base.withColumn("_name_support", F.when(
        F.col("_name").isNotNull(),
        F.size(F.filter(names, lambda b: _agrees(b, F.col("_name"))))))


def _role_words(name: Column) -> Column:
    """``(kind, value)`` per written-out word of a name struct: kind ``g`` for given and
    middle words, ``f`` for family words (initials left out)."""
    return F.filter(F.concat(
        F.transform(name["first"], lambda w: F.struct(F.lit("g").alias("kind"),
                                                      w.alias("value"))),
        F.transform(name["family"], lambda w: F.struct(F.lit("f").alias("kind"),
                                                       w.alias("value")))),
        lambda x: F.length(x["value"]) > 1)


def _kind_values() -> Column:
    """A record's ``(kind, value)`` pairs that :func:`population_counts` counts."""
    c = F.col
    contacts = F.array(
        F.struct(F.lit("email").alias("kind"),
                 F.expr(_EMAIL_KEY).alias("value")),
        F.struct(F.lit("email_domain").alias("kind"), _email_domain().alias("value")),
        F.struct(F.lit("phone").alias("kind"), c("phone_e164").alias("value")),
        F.struct(F.lit("phone").alias("kind"), c("mobile_e164").alias("value")))
    return F.filter(F.concat(contacts, F.coalesce(_role_words(_name_parts(None)), F.array().cast(
        "array<struct<kind:string,value:string>>"))), lambda x: x["value"].isNotNull())


def population_counts(population: DataFrame, of: DataFrame | None = None) -> DataFrame:
    """``(kind, value, customers)``: how many customers of ``population`` (party records
    with ``customer_id``) have each given (kind ``g``) and family (``f``) name word, e-mail
    (``email``, keyed as its candidate), e-mail domain (``email_domain``) and phone number
    (``phone``): what ``most_common``
    and ``least_shared`` rank by. With ``of`` (party records), only the values those
    records hold are counted (all a publish of some customers needs)."""
    values = population.select("customer_id", F.explode(_kind_values()).alias("v")).select(
        "customer_id", "v.*")
    if of is not None:
        wanted = of.select(F.explode(_kind_values()).alias("v")).select("v.*").distinct()
        values = values.join(F.broadcast(wanted), ["kind", "value"], "left_semi")
    return values.groupBy("kind", "value").agg(
        F.count_distinct("customer_id").alias("customers"))


def _with_name_commonness(base: DataFrame, counts: DataFrame) -> DataFrame:
    """``_name_common``: ``rarest``, how common the rarest written-out word of the record's
    name is, and ``total`` over all its words: log(1 + the number of customers with the
    word in the same role, given or family: ``counts``). A typo or a swapped name has a
    rare word; initials do not count."""
    common = (base.filter(F.col("_name").isNotNull())
              .select("record_id", F.explode(_role_words(F.col("_name"))).alias("w"))
              .select("record_id", "w.*")
              .join(counts, ["kind", "value"], "left")
              .withColumn("_log", F.log1p(F.coalesce(F.col("customers"), F.lit(0))))
              .groupBy("record_id")
              .agg(F.struct(F.min("_log").alias("rarest"), F.sum("_log").alias("total")
                            ).alias("_name_common")))
    return base.join(common, "record_id", "left")


def _email_local() -> Column:
    """The local part of a record's e-mail as its candidate keys it (before the '@')."""
    return F.expr(f"substring_index({_EMAIL_KEY}, '@', 1)")


def _email_domain() -> Column:
    """The domain of a record's e-mail as its candidate keys it; null without one."""
    return F.expr(f"nullif(substring_index({_EMAIL_KEY}, '@', -1), '')")


def _with_email_commonness(base: DataFrame, counts: DataFrame) -> DataFrame:
    """``_email_common``: how common the domain of the record's e-mail is, log(1 + the
    number of customers with an address there: ``counts``). A misspelt provider
    ('gmail.con', 'hotmial.com') is a rare domain."""
    domains = counts.filter(F.col("kind") == "email_domain").select(
        F.col("value").alias("_email_domain"),
        # a relay address forwards to the person's own: as rare as a misspelt provider
        F.when(~in_set(F.col("value"), RELAY_EMAIL_DOMAINS), F.log1p(F.col("customers")))
        .alias("_email_common"))
    return (base.withColumn("_email_domain", _email_domain())
            .join(domains, "_email_domain", "left").drop("_email_domain"))


def _with_email_spelling(base: DataFrame) -> DataFrame:
    """``_email_spells``: how many of the customer's name words the local part of the
    record's e-mail holds (given and family name words of any of its records, 3 letters or
    more, folded as names are; the local part's letters folded alike); null without one."""
    no_words = F.array().cast("array<string>")
    own = F.filter(F.concat(F.coalesce(F.col("_name.given"), no_words),
                            F.coalesce(F.col("_name.family"), no_words)),
                   lambda w: F.length(w) >= 3)
    local = _folded(F.regexp_replace(_email_local(), "[^a-z]", ""))
    words = F.array_distinct(F.flatten(F.collect_list(own).over(
        Window.partitionBy("customer_id"))))
    return base.withColumn("_email_spells", F.when(
        F.col("email").isNotNull(), F.size(F.filter(words, lambda w: F.instr(local, w) > 0))))


# --------------------------------------------------------------------------- golden


def golden_records(settings: SurvivorshipSettings,
                   population: DataFrame | None = None) -> Transform:
    """Party records with ``customer_id`` -> one golden row per customer.

    Output columns: :data:`GOLDEN_COLUMNS`; ``record_count``/``sources`` count the records
    and sources behind the customer, ``first_seen_at`` is the earliest observed time of any
    of them and ``last_updated_at`` the latest time a source says one changed.

    Args:
        settings: the rules per attribute.
        population: :func:`population_counts` of every customer's records, by which
            ``most_common`` and ``least_shared`` rank; by default those of the records
            transformed. Give them when transforming only some customers' records, so the
            values are chosen as in a full run.

    Raises:
        SurvivorshipError: a ``where`` predicate does not resolve or is not a condition.
    """
    specs: dict[str, AttributeRule] = dict(settings)
    name_rules = (specs["name"].rule, *specs["name"].tie_breakers) if "name" in specs else ()

    def transform(records: DataFrame) -> DataFrame:
        # one plan for both rules that read it (lazy: built only when a rule asks)
        counts = population_counts(records) if population is None else population

        wheres = [_check_where(records, a, s.where).alias(f"_where_{a}")
                  for a, s in specs.items() if s.where]
        base = records.select(*_RECORD_COLUMNS, observed_at().alias("observed_at"),
                              source_time().alias("_source_time"),
                              nickname_aliases(F.col("given_name_norm")).alias("_given_aliases"),
                              *wheres).withColumn("_name", _name_parts())
        if "most_frequent" in name_rules:
            base = base.transform(_with_name_support)
        else:
            base = base.withColumn("_name_support", F.lit(None).cast("int"))
        if "most_common" in name_rules:
            base = _with_name_commonness(base, counts)
        else:
            base = base.withColumn("_name_common", F.lit(None).cast(
                "struct<rarest:double,total:double>"))
        if "email" in specs and "most_common" in (specs["email"].rule,
                                                   *specs["email"].tie_breakers):
            base = _with_email_commonness(base, counts)
        else:
            base = base.withColumn("_email_common", F.lit(None).cast("double"))
        if "email" in specs and "spells_name" in (specs["email"].rule,
                                                   *specs["email"].tie_breakers):
            base = base.transform(_with_email_spelling)
        else:
            base = base.withColumn("_email_spells", F.lit(None).cast("int"))
        exploded = base.select(
            "customer_id", "record_id", "source", "source_rank", "completeness",
            "observed_at", "_source_time", *[f"_where_{a}" for a, s in specs.items() if s.where],
            F.posexplode_outer(_candidates()).alias("_pos", "c"),
        ).select("*", "c.*").drop("c")
        # most_recent: when the customer's records last asserted the value (an address:
        # the place, however written), so a newer record that leaves out the postcode does
        # not hide the one that has it
        at_place = Window.partitionBy("customer_id", "attribute", "place")
        exploded = exploded.withColumn("_place_seen", F.max("observed_at").over(at_place)
                                       ).withColumn("_place_source_time",
                                                    F.max("_source_time").over(at_place))
        if any("least_shared" in (s.rule, *s.tie_breakers) for s in specs.values()):
            sharers = counts.filter(F.col("kind").isin("email", "phone")).select(
                F.col("kind").alias("attribute"), F.col("value").alias("key"),
                F.col("customers").alias("_sharers"))
            exploded = exploded.join(sharers, ["attribute", "key"], "left")
        else:
            exploded = exploded.withColumn("_sharers", F.lit(None).cast("long"))
        if any("most_frequent" in (s.rule, *s.tie_breakers) for s in specs.values()):
            by_value = Window.partitionBy("customer_id", "attribute", "key")
            exploded = exploded.withColumn(
                "_frequency", F.coalesce(F.col("support"),
                                         F.size(F.collect_set("record_id").over(by_value))))

        golden = exploded.groupBy("customer_id").agg(
            *[_chosen(attr, spec).alias(f"_g_{attr}") for attr, spec in specs.items()],
            # a record's first candidate (or its one row without any) counts it: a distinct
            # count would aggregate every candidate twice, by record and then by customer
            F.count(F.when(F.coalesce("_pos", F.lit(0)) == 0, True)).cast("int").alias(
                "record_count"),
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
