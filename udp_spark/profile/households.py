"""Households: customers who live together, as entities (``gold.households``) and as the
profile's ``household_id``.

**Rule.** Two customers are linked when, over overlapping time,

- they share a residential address *and* a family name (the address key is the normalized
  street line, the postcode (else the normalized city) and the country; the family name is
  the golden one, normalized), or
- they share a phone number (``publish.households.link_phones``) that does not look like a
  placeholder (its last seven digits one or two distinct digits, or a run).

A household is a connected component of these links. Time: a customer lives at an address
(holds a number) from the first time a record shows it until a record first shows another
one later than its last sighting; the newest stays open. Two spells overlap when each starts
before the other ends.

**Caps.** An address held by more than ``max_address_customers`` customers (any family
name, any time: a care home, a PO box, a shop's address typed in as a placeholder) or a
phone held by more than ``max_phone_customers`` links no one; :func:`household_edges`
returns those keys so the run can count them.

**Who gets one.** Every customer with a usable address (a street and a postcode or city)
gets a household, alone if nothing links them (a mailer needs an address unit for
everyone); customers linked by a phone get one with their linked members even without an
address. A customer with neither has no household (``household_id`` null).

**Stable ids.** Each previous household id goes to the new household holding most of its
former members (ties: the smaller component), and each new household keeps, among the ids
that came to it, the one held by most of its members (ties: the larger previous household,
then the smaller id). So an unchanged household keeps its id, and so does one that gained
or lost a member; when two merge, the id of the larger survives; when one splits, the part
holding most former members keeps it. A household that inherits no id gets
``H`` + 15 hex digits of a hash of its members' smallest record ids: derived from the
records, not the run, so two lakehouses built from the same data give the same ids.

**Incremental.** Given the customers that changed since the previous households were
built (and their profiles then), :func:`build_households` rebuilds only the households they
can reach (:func:`households_to_rebuild`): the rows a whole build gives for those, the
others untouched.

Pure ``DataFrame -> DataFrame`` logic; the publish runner reads the profiles and the
previous households and writes the result.
"""

from __future__ import annotations

import hashlib
from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import date
from typing import Any

import numpy as np
from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql import types as T
from pyspark.sql.window import Window

from udp_spark import io
from udp_spark.config import HouseholdSettings
from udp_spark.graph import connected_components, min_labels
from udp_spark.profile.build import CONTENT_COLUMNS
from udp_spark.profile.functions import content_hash
from udp_spark.standardize import functions as sf

Transform = Callable[[DataFrame], DataFrame]

__all__ = [
    "HOUSEHOLD_COLUMNS",
    "HOUSEHOLD_CONTENT_COLUMNS",
    "HOUSEHOLD_INPUT_COLUMNS",
    "Households",
    "build_households",
    "household_edges",
    "household_evidence",
    "household_input_changes",
    "households_to_rebuild",
    "looks_like_placeholder_phone",
    "member_role",
    "with_household_ids",
]

# What households are built from: columns of gold.customer_profile.
HOUSEHOLD_INPUT_COLUMNS: tuple[str, ...] = (
    "customer_id", "family_name", "date_of_birth", "birth_year", "addresses", "phones")

HOUSEHOLD_CONTENT_COLUMNS: tuple[str, ...] = (
    "household_id", "member_ids", "members", "size", "links", "address", "first_seen_at",
    "last_seen_at")
# The columns of gold.households: content, its hash, and the publish that last changed it.
HOUSEHOLD_COLUMNS: tuple[str, ...] = (*HOUSEHOLD_CONTENT_COLUMNS, "_row_hash", "run_id")

_ADDRESS_FIELDS = ("street", "city", "state", "postcode", "country")

# A build over at most this many evidence rows (a rebuild around the few customers a stream
# micro-batch or an erasure changed; a small lakehouse's whole build) runs in the driver:
# the same rules on collected rows, about 5 Spark jobs instead of about 35. At 1M source
# rows that is 1 s of an erasure's 24 s households step (the rest is whole-table work
# before the build, docs/bench.md); on the demo's data the whole build. 0: always in Spark.
DRIVER_MAX_EVIDENCE = 50_000


# --------------------------------------------------------------------------- columns


def looks_like_placeholder_phone(e164: Column) -> Column:
    """True for a number whose last seven digits are one or two distinct digits or a run
    ('+15555555555', '+12125050505', '+12171234567'): typed in for 'no number', shared by
    strangers. Null stays null."""
    last7 = F.regexp_extract(e164, r"(\d{7})$", 1)
    few_digits = F.size(F.array_distinct(F.split(last7, ""))) <= 2
    run = (F.instr(F.lit("01234567890123"), last7) > 0) | (
        F.instr(F.lit("98765432109876"), last7) > 0)
    return F.when(e164.isNotNull(), (F.length(last7) == 7) & (few_digits | run))


def member_role(date_of_birth: Column, birth_year: Column, as_of: date, adult_age: int
                ) -> Column:
    """'adult' or 'minor' by age at ``as_of``; from the birth year alone only when it
    decides (born more than a year either side of the cut); null when unknown."""
    age = F.floor(F.months_between(F.lit(as_of), date_of_birth) / 12)
    by_year = F.lit(as_of.year) - birth_year
    return (F.when(date_of_birth.isNotNull(),
                   F.when(age >= adult_age, F.lit("adult")).otherwise(F.lit("minor")))
            .when(by_year > adult_age, F.lit("adult"))
            .when(by_year < adult_age, F.lit("minor")))


def _spells(entries: str) -> Column:
    """Each entry of the ``entries`` array (``first_seen_at``, ``last_seen_at``) with
    ``until``: the first time another entry was seen after this one's last sighting (the
    customer moved on / changed number), null for one still current."""
    return F.transform(F.col(entries), lambda x: F.struct(
        x.alias("e"),
        F.array_min(F.transform(
            F.filter(F.col(entries), lambda y: y["first_seen_at"] > x["last_seen_at"]),
            lambda y: y["first_seen_at"])).alias("until")))


# --------------------------------------------------------------------------- transforms


def household_evidence(settings: HouseholdSettings) -> Transform:
    """Profiles (:data:`HOUSEHOLD_INPUT_COLUMNS`) -> one row per customer and usable address
    or phone: ``customer_id, kind (address | phone), key, link_key, address, valid_from,
    until, first_seen_at, last_seen_at, anchor, placeholder``.

    ``key`` is the address key (street | postcode or city | country) or the E.164 number;
    ``link_key`` what links two customers: the address key with the family name (null
    without one), or the number. ``anchor`` is the customer's smallest record id (behind
    any address or phone): what new household ids are derived from.
    """

    def transform(profiles: DataFrame) -> DataFrame:
        anchor = F.array_min(F.flatten(F.array(
            F.flatten(F.transform("addresses", lambda a: a["record_ids"])),
            F.flatten(F.transform("phones", lambda p: p["record_ids"])))))
        base = profiles.select(
            "customer_id", sf.normalize_name(F.col("family_name")).alias("_family"),
            anchor.alias("anchor"), _spells("addresses").alias("_addresses"),
            (_spells("phones") if settings.link_phones
             else F.array().cast("array<struct<e:struct<value:string,"
                                 "first_seen_at:timestamp,last_seen_at:timestamp>,"
                                 "until:timestamp>>")).alias("_phones"))
        # One projection per step: a regex chain referenced twice in the next step (the
        # key's condition and its value, the key in the link key) is computed once, since
        # Spark does not collapse a projection into one that would repeat an expensive
        # expression (four times each before: 10-14 s for 96k customers at 1M rows).
        addr = base.select(
            "customer_id", "_family", "anchor", F.explode("_addresses").alias("s")).select(
            "*", sf.normalize_street(F.col("s.e.street")).alias("_street"),
            F.coalesce(sf.normalize_postcode(F.col("s.e.postcode")),
                       sf.normalize_city(F.col("s.e.city"))).alias("_place"))
        key = F.when(F.col("_street").isNotNull() & F.col("_place").isNotNull(), F.concat_ws(
            "|", "_street", "_place", F.coalesce(F.upper(F.col("s.e.country")), F.lit(""))))
        addresses = addr.withColumn("key", key).select(
            "customer_id", F.lit("address").alias("kind"), "key",
            F.when(F.col("_family").isNotNull(), F.concat_ws("|", "key", F.col("_family"))
                   ).alias("link_key"),
            F.struct(*[F.col(f"s.e.{f}").alias(f) for f in _ADDRESS_FIELDS]).alias("address"),
            F.col("s.e.first_seen_at").alias("valid_from"), F.col("s.until").alias("until"),
            F.col("s.e.first_seen_at").alias("first_seen_at"),
            F.col("s.e.last_seen_at").alias("last_seen_at"), "anchor",
            F.lit(False).alias("placeholder"),
        ).filter(F.col("key").isNotNull())
        phones = base.select("customer_id", "anchor", F.explode("_phones").alias("s")).select(
            "customer_id", F.lit("phone").alias("kind"), F.col("s.e.value").alias("key"),
            F.col("s.e.value").alias("link_key"),
            F.lit(None).cast(addresses.schema["address"].dataType).alias("address"),
            F.col("s.e.first_seen_at").alias("valid_from"), F.col("s.until").alias("until"),
            F.col("s.e.first_seen_at").alias("first_seen_at"),
            F.col("s.e.last_seen_at").alias("last_seen_at"), "anchor",
            F.coalesce(looks_like_placeholder_phone(F.col("s.e.value")), F.lit(False)
                       ).alias("placeholder"),
        ).filter(F.col("key").isNotNull())
        return addresses.unionByName(phones)

    return transform


def household_edges(evidence: DataFrame, settings: HouseholdSettings,
                    counted: DataFrame | None = None) -> tuple[DataFrame, DataFrame]:
    """Links between customers, and the keys the caps kept from linking.

    ``counted``: the evidence of the whole population when ``evidence`` is a part of it
    (the customers whose households are rebuilt): a key's holders are counted there, so a
    cap blocks the same keys as over everyone.

    Returns:
        ``(src, dst, kind, link_key)`` with ``src < dst``, one row per pair and key; and
        ``(kind, key, customers, reason)`` for every key that links no one because it is
        held by too many customers (``over_cap``) or is a placeholder number
        (``placeholder``).
    """
    caps = {"address": settings.max_address_customers, "phone": settings.max_phone_customers}
    pool = evidence if counted is None else counted.join(
        evidence.select("kind", "key").distinct(), ["kind", "key"], "left_semi")
    holders = pool.groupBy("kind", "key").agg(
        F.count_distinct("customer_id").alias("customers"),
        F.max(F.col("placeholder").cast("int")).alias("_placeholder"))
    cap = F.when(F.col("kind") == "address", F.lit(caps["address"])).otherwise(
        F.lit(caps["phone"]))
    blocked = holders.filter((F.col("customers") > cap) | (F.col("_placeholder") == 1)).select(
        "kind", "key", "customers",
        F.when(F.col("_placeholder") == 1, F.lit("placeholder")).otherwise(F.lit("over_cap"))
        .alias("reason"))
    usable = (evidence.filter(F.col("link_key").isNotNull())
              .join(blocked.select("kind", "key"), ["kind", "key"], "left_anti")
              .select("customer_id", "kind", "link_key", "valid_from", "until"))
    a, b = usable.alias("a"), usable.alias("b")
    far = F.lit("9999-12-31 00:00:00").cast("timestamp")
    overlap = ((F.col("a.valid_from") <= F.coalesce(F.col("b.until"), far))
               & (F.col("b.valid_from") <= F.coalesce(F.col("a.until"), far)))
    edges = (a.join(b, (F.col("a.kind") == F.col("b.kind"))
                    & (F.col("a.link_key") == F.col("b.link_key"))
                    & (F.col("a.customer_id") < F.col("b.customer_id")))
             .filter(overlap)
             .select(F.col("a.customer_id").alias("src"), F.col("b.customer_id").alias("dst"),
                     F.col("a.kind").alias("kind"), F.col("a.link_key").alias("link_key"))
             .distinct())
    return edges, blocked


@dataclass
class Households:
    """What :func:`build_households` gives: the households (:data:`HOUSEHOLD_COLUMNS`),
    each customer's household (``customer_id, household_id``) and the keys the caps
    blocked (see :func:`household_edges`)."""

    households: DataFrame
    assignment: DataFrame
    blocked: DataFrame
    # Rebuilt around changed customers only (``changed``): the customers whose households
    # were rebuilt and the previous household ids they held, which ``households`` replaces
    # (one no longer there is gone); every other household is as before. None: everyone.
    customers: DataFrame | None = None
    replaced: DataFrame | None = None


def _stable_ids(components: DataFrame, previous: DataFrame | None,
                reserved: DataFrame | None = None) -> DataFrame:
    """``(component, household_id)``: each component's inherited id (module doc), or a new
    one from its members' anchors. ``reserved`` (``household_id``): ids kept by households
    outside ``components`` (an incremental rebuild's untouched ones)."""
    fingerprint = components.groupBy("component").agg(
        F.sort_array(F.collect_list(F.coalesce("anchor", "customer_id"))).alias("_anchors"))
    minted = fingerprint.select("component", F.concat(F.lit("H"), F.substring(
        F.sha2(F.array_join("_anchors", ","), 256), 1, 15)).alias("_minted"))
    if previous is None and reserved is None:
        return minted.select("component", F.col("_minted").alias("household_id"))
    if previous is None:
        previous = components.sparkSession.createDataFrame(
            [], "household_id string, size int, member_ids array<string>")
    prev = previous.select(F.col("household_id").alias("prev_id"), "size",
                           F.explode("member_ids").alias("customer_id"))
    votes = components.join(prev, "customer_id").groupBy("component", "prev_id").agg(
        F.count("*").alias("n"), F.max("size").alias("prev_size"))
    by_prev = Window.partitionBy("prev_id").orderBy(F.desc("n"), "component")
    by_comp = Window.partitionBy("component").orderBy(F.desc("n"), F.desc("prev_size"),
                                                      "prev_id")
    kept = (votes.withColumn("_r", F.row_number().over(by_prev)).filter(F.col("_r") == 1)
            .withColumn("_r", F.row_number().over(by_comp)).filter(F.col("_r") == 1)
            .select("component", F.col("prev_id").alias("_kept")))
    # A new id equal to one kept elsewhere (the same members formed a household before
    # and its id moved on) takes the component into its hash instead.
    taken = kept.select(F.col("_kept").alias("_minted"))
    if reserved is not None:
        taken = taken.unionByName(reserved.select(F.col("household_id").alias("_minted")))
    taken = taken.distinct().withColumn("_taken", F.lit(True))
    return (minted.join(kept, "component", "left").join(taken, "_minted", "left")
            .select("component", F.coalesce(
                "_kept", F.when(F.col("_taken"), F.concat(F.lit("H"), F.substring(F.sha2(
                    F.concat_ws("|", "_minted", "component"), 256), 1, 15)))
                .otherwise(F.col("_minted"))).alias("household_id")))


def household_input_changes(profiles: DataFrame, current: DataFrame) -> DataFrame:
    """``customer_id`` of the customers whose households may have changed: created (in
    ``profiles`` only), vanished (in ``current`` only) or with other
    :data:`HOUSEHOLD_INPUT_COLUMNS` (family name, birth date or year, addresses, phones with
    their times and records) in ``profiles`` (just built) than in ``current`` (their
    published rows). A customer whose profile changed in nothing households are built from
    (new orders, a new e-mail) holds the same keys as before, so its household cannot move.
    """
    cols = [c for c in HOUSEHOLD_INPUT_COLUMNS if c != "customer_id"]
    new = profiles.select("customer_id", content_hash(cols).alias("_new"))
    old = current.select("customer_id", content_hash(cols).alias("_old"))
    return (new.join(old, "customer_id", "full")
            .filter(~F.col("_new").eqNullSafe(F.col("_old"))).select("customer_id"))


def households_to_rebuild(evidence: DataFrame, previous: DataFrame, changed: DataFrame,
                          before: DataFrame | None) -> tuple[DataFrame, DataFrame]:
    """The customers whose households a change can reach, and the previous households
    they held: ``(customer_id)``, ``(household_id)``.

    A link can appear or vanish only on a key (address key or number, whatever the family
    name) a changed customer holds now or held before: through their own evidence, or a
    cap their arrival or departure crosses. So the customers to rebuild are the changed
    ones, every holder of those keys, and every member of a previous household holding one
    of them. That set is closed: any other link of theirs is unchanged, so it stays inside
    a previous household already taken whole, and a household outside it is exactly as
    before.

    Args:
        evidence: :func:`household_evidence` of the whole current population.
        previous: the households built before the change (``household_id, member_ids``).
        changed: ``customer_id`` of every customer whose profile changed, was created or
            vanished since ``previous`` was built.
        before: :func:`household_evidence` of the changed customers' profiles as
            ``previous`` was built from them (None: none existed).
    """
    keys = evidence.join(changed, "customer_id", "left_semi").select("kind", "key")
    if before is not None:
        keys = keys.unionByName(before.select("kind", "key"))
    holders = evidence.join(keys.distinct(), ["kind", "key"], "left_semi").select(
        "customer_id")
    near = changed.select("customer_id").unionByName(holders).distinct()
    held = previous.select("household_id", F.explode("member_ids").alias("customer_id"))
    replaced = io.checkpoint(held.join(near, "customer_id", "left_semi").select(
        "household_id").distinct())
    customers = near.unionByName(held.join(replaced, "household_id", "left_semi").select(
        "customer_id")).distinct()
    return io.checkpoint(customers), replaced


def build_households(profiles: DataFrame, previous: DataFrame | None,
                     settings: HouseholdSettings, as_of: date, run_id: str, *,
                     changed: DataFrame | None = None, before: DataFrame | None = None,
                     driver_max_evidence: int = DRIVER_MAX_EVIDENCE) -> Households:
    """Households of every customer in ``profiles`` (the whole population, not a subset:
    a household reaches any customer), or, given ``changed`` and ``previous``, only the
    households the changed customers can reach (:func:`households_to_rebuild`): the same
    rows a whole build gives for those, every other previous household staying as it is.

    Args:
        profiles: :data:`HOUSEHOLD_INPUT_COLUMNS` of every current customer.
        previous: the current ``gold.households`` (``household_id, member_ids, size``), or
            None: the ids to keep stable.
        as_of: the day members' ages (roles) are computed for.
        run_id: written on every row (the runner keeps the old row where nothing changed).
        changed: ``customer_id`` of the customers whose profile changed (created, updated,
            vanished) since ``previous`` was built, to rebuild only around them; None:
            build everyone's.
        before: those customers' :data:`HOUSEHOLD_INPUT_COLUMNS` as ``previous`` was built
            from (their keys then), with ``changed``.
        driver_max_evidence: build in the driver (:func:`_build_in_driver`, the same rows)
            when the households to build hold at most this many evidence rows; 0: never.

    Example::

        hh = build_households(profiles, None, HouseholdSettings(), date(2026, 6, 30), "r1")
        hh.households.select("household_id", "member_ids", "links").show()
    """
    # Materialised once each: the evidence feeds five aggregates, the edges three, and
    # recomputing them costs more Spark stages than the data (a few rows per customer).
    evidence = io.checkpoint(profiles.transform(household_evidence(settings)))
    counted = customers = replaced = reserved = None
    if changed is not None and previous is not None:
        customers, replaced = households_to_rebuild(
            evidence, previous, changed,
            None if before is None else before.transform(household_evidence(settings)))
        # caps count holders over everyone; ids kept by untouched households stay theirs
        counted = evidence
        evidence = io.checkpoint(evidence.join(customers, "customer_id", "left_semi"))
        profiles = profiles.join(customers, "customer_id", "left_semi")
        reserved = previous.join(replaced, "household_id", "left_anti").select("household_id")
        previous = previous.join(replaced, "household_id", "left_semi")
    if driver_max_evidence and evidence.count() <= driver_max_evidence:
        households, blocked = _build_in_driver(evidence, profiles, previous, reserved, counted,
                                               settings, as_of, run_id)
        assignment = households.select(F.explode("member_ids").alias("customer_id"),
                                       "household_id")
        return Households(households, assignment, blocked, customers, replaced)
    edges, blocked = household_edges(evidence, settings, counted)
    edges = io.checkpoint(edges)
    # vertices: customers with a usable address, and customers with a link
    addressed = evidence.filter(F.col("kind") == "address").select(
        F.col("customer_id").alias("id"))
    vertices = addressed.unionByName(edges.select(F.col("src").alias("id"))).unionByName(
        edges.select(F.col("dst").alias("id"))).distinct()
    comps = connected_components(vertices, edges.select("src", "dst")).select(
        F.col("id").alias("customer_id"), "component")
    people = profiles.select(
        "customer_id",
        member_role(F.col("date_of_birth"), F.col("birth_year"), as_of, settings.adult_age
                    ).alias("role"))
    anchors = evidence.groupBy("customer_id").agg(F.min("anchor").alias("anchor"))
    members = io.checkpoint(comps.join(people, "customer_id", "left").join(
        anchors, "customer_id", "left"))
    ids = _stable_ids(members, previous, reserved)

    # (new attribute names: the checkpointed frames keep theirs, and Spark cannot tell
    # two uses of one checkpoint apart in a join)
    links = (edges.join(members.select(F.col("customer_id").alias("src"),
                                       F.col("component").alias("_c")), "src")
             .groupBy(F.col("_c").alias("component")).agg(F.sort_array(F.collect_set(F.struct(
                 "kind", F.col("link_key").alias("key")))).alias("links")))
    # times and address: from the evidence on the keys that linked the household; for a
    # household nothing linked, from its member's addresses
    used = (evidence.join(members.select("customer_id", "component"), "customer_id")
            .join(links.select("component", F.explode("links").alias("l")).select(
                "component", F.col("l.kind").alias("kind"), F.col("l.key").alias("link_key"),
                F.lit(True).alias("_linked")), ["component", "kind", "link_key"], "left"))
    linked = F.coalesce(F.col("_linked"), F.lit(False))
    per_address = used.filter(F.col("kind") == "address").groupBy("component", "key").agg(
        F.count_distinct("customer_id").alias("_holders"), F.max("last_seen_at").alias("_last"),
        # the latest-seen spelling; of two seen last at once (members landed in one file),
        # the greater, so that the choice never depends on row order
        F.max(F.struct("last_seen_at", "address"))["address"].alias("address"))
    address = per_address.groupBy("component").agg(F.max_by("address", F.struct(
        "_holders", "_last", F.col("key"))).alias("address"))
    times = used.groupBy("component").agg(
        F.coalesce(F.min(F.when(linked, F.col("first_seen_at"))),
                   F.min(F.when(F.col("kind") == "address", F.col("first_seen_at"))),
                   F.min("first_seen_at")).alias("first_seen_at"),
        F.coalesce(F.max(F.when(linked, F.col("last_seen_at"))),
                   F.max(F.when(F.col("kind") == "address", F.col("last_seen_at"))),
                   F.max("last_seen_at")).alias("last_seen_at"))
    grouped = members.groupBy("component").agg(
        F.sort_array(F.collect_list("customer_id")).alias("member_ids"),
        F.sort_array(F.collect_list(F.struct("customer_id", "role"))).alias("members"),
        F.count("*").cast("int").alias("size"))
    empty_links = F.array().cast(links.schema["links"].dataType)
    households = (grouped.join(ids, "component").join(links, "component", "left")
                  .join(address, "component", "left").join(times, "component", "left")
                  .withColumn("links", F.coalesce("links", empty_links))
                  .select(*HOUSEHOLD_CONTENT_COLUMNS)
                  .withColumn("_row_hash", content_hash(HOUSEHOLD_CONTENT_COLUMNS))
                  .withColumn("run_id", F.lit(run_id)))
    assignment = households.select(F.explode("member_ids").alias("customer_id"),
                                   "household_id")
    return Households(households, assignment, blocked, customers, replaced)


# --------------------------------------------------------------------------- in the driver
#
# :func:`build_households`'s Spark plan, step for step, on collected rows: every rule above
# (caps, time overlap, components, stable ids, the chosen address and times) gives the same
# rows, which tests/test_households.py checks against the plan on every scenario. Strings
# compare by code point, as Spark compares them; a null sorts first and an aggregate skips
# it, as in Spark.

_TIMES = ("valid_from", "until", "first_seen_at", "last_seen_at")
_FAR = 1 << 62  # later than any timestamp (microseconds): an open spell's end
_ADDRESS_TYPE = T.StructType([T.StructField(f, T.StringType()) for f in _ADDRESS_FIELDS])
# gold.households as the Spark plan types it (nullability included: the table's schema)
_DRIVER_SCHEMA = T.StructType([
    T.StructField("household_id", T.StringType()),
    T.StructField("member_ids", T.ArrayType(T.StringType(), False), False),
    T.StructField("members", T.ArrayType(T.StructType([
        T.StructField("customer_id", T.StringType()),
        T.StructField("role", T.StringType())]), False), False),
    T.StructField("size", T.IntegerType(), False),
    T.StructField("links", T.ArrayType(T.StructType([
        T.StructField("kind", T.StringType(), False),
        T.StructField("key", T.StringType())]), False), False),
    T.StructField("address", _ADDRESS_TYPE),
    T.StructField("first_seen_at", T.LongType()),
    T.StructField("last_seen_at", T.LongType())])
_BLOCKED_SCHEMA = T.StructType([
    T.StructField("kind", T.StringType(), False), T.StructField("key", T.StringType()),
    T.StructField("customers", T.LongType(), False),
    T.StructField("reason", T.StringType(), False)])


def _nulls_first(value: Any) -> tuple[bool, Any]:
    """Sort key of a nullable value as Spark orders it ascending: null first."""
    return (value is not None, value if value is not None else 0)


def _least(values: Iterable[Any]) -> Any:
    present = [v for v in values if v is not None]
    return min(present) if present else None


def _greatest(values: Iterable[Any]) -> Any:
    present = [v for v in values if v is not None]
    return max(present) if present else None


def _sha_id(text: str) -> str:
    """``'H' || substring(sha2(text, 256), 1, 15)``."""
    return "H" + hashlib.sha256(text.encode("utf-8")).hexdigest()[:15]


def _build_in_driver(evidence: DataFrame, profiles: DataFrame, previous: DataFrame | None,
                     reserved: DataFrame | None, counted: DataFrame | None,
                     settings: HouseholdSettings, as_of: date, run_id: str
                     ) -> tuple[DataFrame, DataFrame]:
    """The households and blocked keys :func:`build_households` gives, computed on the
    collected ``evidence`` (already the customers to rebuild): a few Spark jobs to collect
    the inputs, none per step."""
    spark = evidence.sparkSession
    rows = [r.asDict() for r in evidence.select(
        "customer_id", "kind", "key", "link_key", "address", "anchor", "placeholder",
        *[F.unix_micros(c).alias(c) for c in _TIMES]).collect()]
    # caps: holders counted over the whole population (``counted``) when this is a part
    caps = {"address": settings.max_address_customers, "phone": settings.max_phone_customers}
    if counted is None:
        holder_sets: dict[tuple[str, str], set[str]] = defaultdict(set)
        flagged: dict[tuple[str, str], bool] = defaultdict(bool)
        for r in rows:
            holder_sets[(r["kind"], r["key"])].add(r["customer_id"])
            flagged[(r["kind"], r["key"])] |= bool(r["placeholder"])
        holders = {k: (len(v), flagged[k]) for k, v in holder_sets.items()}
    else:
        holders = {(h["kind"], h["key"]): (h["customers"], bool(h["_placeholder"]))
                   for h in counted.join(evidence.select("kind", "key").distinct(),
                                         ["kind", "key"], "left_semi")
                   .groupBy("kind", "key").agg(
                       F.count_distinct("customer_id").alias("customers"),
                       F.max(F.col("placeholder").cast("int")).alias("_placeholder"))
                   .collect()}
    blocked = {k: (n, "placeholder" if ph else "over_cap") for k, (n, ph) in holders.items()
               if n > caps[k[0]] or ph}
    # links: two holders of one link key whose spells overlap
    by_link: dict[tuple[str, str], list[dict[str, Any]]] = defaultdict(list)
    for r in rows:
        if r["link_key"] is not None and (r["kind"], r["key"]) not in blocked:
            by_link[(r["kind"], r["link_key"])].append(r)
    edges: set[tuple[str, str, str, str]] = set()
    for (kind, link_key), held in by_link.items():
        for a in held:
            for b in held:
                if (a["customer_id"] < b["customer_id"] and a["valid_from"] is not None
                        and b["valid_from"] is not None
                        and a["valid_from"] <= (b["until"] if b["until"] is not None else _FAR)
                        and b["valid_from"] <= (a["until"] if a["until"] is not None
                                                else _FAR)):
                    edges.add((a["customer_id"], b["customer_id"], kind, link_key))
    # components: customers with a usable address, and customers with a link
    vertices = ({r["customer_id"] for r in rows if r["kind"] == "address"}
                | {e[0] for e in edges} | {e[1] for e in edges})
    component = {v: v for v in vertices}
    if edges:
        ids, comps = min_labels(np.array([e[0] for e in edges], dtype=object),
                                np.array([e[1] for e in edges], dtype=object))
        component.update(zip(ids.tolist(), comps.tolist(), strict=True))
    roles = {r["customer_id"]: r["role"] for r in profiles.join(
        evidence.select("customer_id").distinct(), "customer_id", "left_semi").select(
        "customer_id", member_role(F.col("date_of_birth"), F.col("birth_year"), as_of,
                                   settings.adult_age).alias("role")).collect()}
    anchors: dict[str, list[Any]] = defaultdict(list)
    for r in rows:
        anchors[r["customer_id"]].append(r["anchor"])
    anchor = {v: _least(anchors[v]) for v in vertices}
    members: dict[str, list[str]] = defaultdict(list)
    for v in vertices:
        members[component[v]].append(v)
    household_ids = _driver_stable_ids(spark, members, anchor, previous, reserved)
    links: dict[str, set[tuple[str, str]]] = defaultdict(set)
    for src, _, kind, link_key in edges:
        links[component[src]].add((kind, link_key))
    # times and address: from the evidence on the keys that linked the household; for a
    # household nothing linked, from its member's addresses
    used: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for r in rows:
        if r["customer_id"] in component:
            c = component[r["customer_id"]]
            used[c].append({**r, "_linked": (r["kind"], r["link_key"]) in links[c]})
    out = []
    for c, ms in members.items():
        mine = used[c]
        per_address: dict[str, list[dict[str, Any]]] = defaultdict(list)
        for r in mine:
            if r["kind"] == "address":
                per_address[r["key"]].append(r)
        candidates = []
        for key, held in per_address.items():
            best = max(held, key=lambda r: (_nulls_first(r["last_seen_at"]), tuple(
                _nulls_first(r["address"][f]) for f in _ADDRESS_FIELDS)))
            candidates.append(((len({r["customer_id"] for r in held}),
                                _nulls_first(_greatest(r["last_seen_at"] for r in held)), key),
                               best["address"]))
        address = max(candidates, key=lambda x: x[0])[1] if candidates else None
        linked = [r for r in mine if r["_linked"]]
        at_address = [r for r in mine if r["kind"] == "address"]
        first = next((x for x in (_least(r["first_seen_at"] for r in part)
                                  for part in (linked, at_address, mine)) if x is not None),
                     None)
        last = next((x for x in (_greatest(r["last_seen_at"] for r in part)
                                 for part in (linked, at_address, mine)) if x is not None),
                    None)
        out.append((household_ids[c], sorted(ms),
                    [(m, roles.get(m)) for m in sorted(ms)],  # ids unique: sorted by id
                    len(ms), sorted(links[c]), address, first, last))
    households = spark.createDataFrame(out, _DRIVER_SCHEMA).select(
        *[F.timestamp_micros(c).alias(c) if c in ("first_seen_at", "last_seen_at") else c
          for c in HOUSEHOLD_CONTENT_COLUMNS])
    households = (households.withColumn("_row_hash", content_hash(HOUSEHOLD_CONTENT_COLUMNS))
                  .withColumn("run_id", F.lit(run_id)))
    blocked_df = spark.createDataFrame(
        [(k, key, n, reason) for (k, key), (n, reason) in sorted(blocked.items())],
        _BLOCKED_SCHEMA)
    return households, blocked_df


def _driver_stable_ids(spark: SparkSession, members: dict[str, list[str]], anchor: dict[str, Any],
                       previous: DataFrame | None, reserved: DataFrame | None
                       ) -> dict[str, str]:
    """:func:`_stable_ids` on collected rows: component -> household id."""
    minted = {c: _sha_id(",".join(sorted(anchor[m] if anchor[m] is not None else m
                                         for m in ms))) for c, ms in members.items()}
    if previous is None and reserved is None:
        return minted
    component = {m: c for c, ms in members.items() for m in ms}
    votes: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))  # prev -> c -> n
    sizes: dict[str, Any] = {}
    if previous is not None:
        for h in previous.select("household_id", "size", "member_ids").collect():
            sizes[h["household_id"]] = h["size"]
            for m in h["member_ids"] or []:
                if m in component:
                    votes[h["household_id"]][component[m]] += 1
    # each previous id to the component holding most of its members (ties: the smaller
    # component); each component keeps the best of the ids that came to it
    offers: dict[str, list[tuple[Any, ...]]] = defaultdict(list)
    for prev, by_component in votes.items():
        most, c = min((-n, comp) for comp, n in by_component.items())
        size = sizes[prev]
        offers[c].append((most, size is None, -(size or 0), prev))
    kept = {c: min(o)[3] for c, o in offers.items()}
    taken = set(kept.values())
    if reserved is not None:
        wanted = spark.createDataFrame([(m,) for m in sorted(set(minted.values()))],
                                       "household_id string")
        taken |= {r[0] for r in reserved.join(wanted, "household_id", "left_semi").collect()}
    return {c: kept.get(c) or (_sha_id(f"{minted[c]}|{c}") if minted[c] in taken
                                else minted[c]) for c in members}


def with_household_ids(assignment: DataFrame) -> Transform:
    """Profiles -> the same with ``household_id`` from ``assignment`` (``customer_id,
    household_id``; absent: null) and ``_row_hash`` over the content again."""

    def transform(profiles: DataFrame) -> DataFrame:
        rest = [c for c in profiles.columns if c not in CONTENT_COLUMNS and c != "_row_hash"]
        return (profiles.drop("household_id")
                .join(assignment.select("customer_id", "household_id"), "customer_id", "left")
                .select(*CONTENT_COLUMNS, *rest)
                .withColumn("_row_hash", content_hash(CONTENT_COLUMNS))
                .select(*CONTENT_COLUMNS, "_row_hash", *rest))

    return transform
