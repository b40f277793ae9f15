"""Golden values against the truth: is a profile's value the person's true current one?

For generated data (``truth/people.parquet`` beside ``truth/records.csv``) or any truth
table of the same columns. Each customer is scored against the person most of its records
belong to (ties: the smallest person id), per attribute:

=========  ===============================================================================
attribute  the golden value is right when
=========  ===============================================================================
name       given and family name normalize (``normalize_name``) to the person's current ones
           (a middle name written into the given name field counts as the given name)
email      it is the person's current e-mail, compared as ``canonical_email`` (case, a
           ``+tag`` alias and gmail's dots aside: the same mailbox)
phone      it is the person's mobile or current landline (E.164)
address    its postcode is the current one (a US ZIP+4 of it too) and its street line holds
           the current street's words and house number (order, street-type spelling and unit
           may differ)
birth      the date of birth is the person's
=========  ===============================================================================

Three figures per attribute, over the customers whose person has the attribute at all:

- ``golden_<attr>_accuracy``: right golden values / customers with a golden value;
- ``golden_<attr>_coverage``: customers with a golden value / customers;
- ``golden_<attr>_attainable_accuracy``: right golden values / customers with at least one
  record that carries the true value (survivorship cannot pick what no source says).

Aggregations only: one small row reaches the driver.
"""

from __future__ import annotations

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

from udp_spark.io import one_row
from udp_spark.standardize import functions as sf

ATTRIBUTES = ("name", "email", "phone", "address", "birth")
# The truth columns used, renamed t_<name>.
PEOPLE_COLUMNS = ("person_id", "given_name", "middle_name", "family_name", "email", "mobile",
                  "landline", "street", "house_number", "postcode", "dob")


def _tokens(col: Column) -> Column:
    return F.split(F.coalesce(sf.normalize_street(col), F.lit("")), " ")


def _same_postcode(value: Column, truth: Column) -> Column:
    """Equal, or a US ZIP+4 of the true five-digit ZIP code."""
    return (value == truth) | ((F.length(value) == 9) & truth.rlike("^[0-9]{5}$")
                               & value.startswith(truth))


def _right(attribute: str, *, phones: tuple[str, ...]) -> Column:
    """Whether the row's value of ``attribute`` is the truth's (null: the row has none)."""
    c = F.col
    if attribute == "name":
        given = sf.normalize_name(c("given_name"))
        return F.when(c("given_name").isNotNull() | c("family_name").isNotNull(),
                      F.coalesce(given.isin(c("t_given"), c("t_given_middle")), F.lit(False))
                      & F.coalesce(sf.normalize_name(c("family_name")) == c("t_family"),
                                   F.lit(False)))
    if attribute == "email":
        return F.when(c("email").isNotNull(),
                      F.coalesce(sf.canonical_email(F.lower(c("email"))) == c("t_email"),
                                 F.lit(False)))
    if attribute == "phone":
        present, hit = F.lit(False), F.lit(False)
        for p in phones:
            present = present | c(p).isNotNull()
            hit = hit | F.coalesce(c(p).isin(c("t_mobile"), c("t_landline")), F.lit(False))
        return F.when(present, hit)
    if attribute == "address":
        words = _tokens(c("street"))
        return F.when(
            c("street").isNotNull() | c("postcode").isNotNull(),
            F.coalesce(_same_postcode(sf.normalize_postcode(c("postcode")), c("t_postcode")),
                       F.lit(False))
            & (F.size(F.array_except(c("t_street_words"), words)) == 0)
            & F.coalesce(F.array_contains(words, c("t_house")), F.lit(False)))
    if attribute == "birth":
        return F.when(c("date_of_birth").isNotNull(),
                      F.coalesce(c("date_of_birth") == c("t_dob"), F.lit(False)))
    raise ValueError(f"unknown attribute {attribute!r}")


def _has(attribute: str) -> Column:
    """Whether the true person has ``attribute`` at all."""
    c = F.col
    return {
        "name": c("t_given").isNotNull() | c("t_family").isNotNull(),
        "email": c("t_email").isNotNull(),
        "phone": c("t_mobile").isNotNull() | c("t_landline").isNotNull(),
        "address": c("t_postcode").isNotNull() & c("t_house").isNotNull(),
        "birth": c("t_dob").isNotNull(),
    }[attribute]


def truth_people(people: DataFrame) -> DataFrame:
    """The truth table in the compared forms: ``person_id`` and the ``t_*`` columns."""
    c = F.col
    return people.select(
        c("person_id").alias("entity_id"),
        sf.normalize_name(c("given_name")).alias("t_given"),
        sf.normalize_name(F.concat_ws(" ", c("given_name"), c("middle_name"))
                          ).alias("t_given_middle"),
        sf.normalize_name(c("family_name")).alias("t_family"),
        sf.canonical_email(F.lower(c("email"))).alias("t_email"),
        c("mobile").alias("t_mobile"), c("landline").alias("t_landline"),
        F.array_compact(_tokens(c("street"))).alias("t_street_words"),
        F.lower(F.trim(c("house_number"))).alias("t_house"),
        sf.normalize_postcode(c("postcode")).alias("t_postcode"),
        F.to_date(c("dob").cast("string")).alias("t_dob"),
    )


def golden_value_accuracy(golden: DataFrame, records: DataFrame, truth: DataFrame,
                          people: DataFrame) -> dict[str, float]:
    """Per attribute, accuracy, coverage and attainable accuracy of golden values.

    Args:
        golden: one row per customer with the golden columns (``golden_records``).
        records: party records with their ``customer_id``.
        truth: ``(record_id, entity_id)``.
        people: the true people (:data:`PEOPLE_COLUMNS`).
    """
    person = (records.select("record_id", "customer_id").join(truth, "record_id")
              .groupBy("customer_id", "entity_id").count()
              .groupBy("customer_id")
              .agg(F.min_by("entity_id", F.struct(-F.col("count"), F.col("entity_id")))
                   .alias("entity_id")))
    t = truth_people(people)
    g = golden.join(person, "customer_id").join(t, "entity_id")
    g = g.select("customer_id", *[_has(a).alias(f"has_{a}") for a in ATTRIBUTES],
                 *[_right(a, phones=("phone",)).alias(f"right_{a}") for a in ATTRIBUTES])
    r = (records.join(person, "customer_id").join(t, "entity_id")
         .groupBy("customer_id")
         .agg(*[F.max(F.coalesce(_right(a, phones=("phone_e164", "mobile_e164")),
                                 F.lit(False)).cast("int")).alias(f"any_{a}")
                for a in ATTRIBUTES]))
    both = g.join(r, "customer_id", "left")
    aggs = []
    for a in ATTRIBUTES:
        has = F.col(f"has_{a}")
        aggs += [F.sum(has.cast("long")).alias(f"{a}_n"),
                 F.sum((has & F.col(f"right_{a}").isNotNull()).cast("long")).alias(f"{a}_set"),
                 F.sum((has & F.coalesce(F.col(f"right_{a}"), F.lit(False))).cast("long"))
                 .alias(f"{a}_right"),
                 F.sum((has & (F.col(f"any_{a}") == 1)).cast("long")).alias(f"{a}_attainable")]
    row = one_row(both.agg(*aggs))
    out: dict[str, float] = {}
    for a in ATTRIBUTES:
        n, got, right, attainable = (float(row[f"{a}_{k}"] or 0)
                                     for k in ("n", "set", "right", "attainable"))
        out[f"golden_{a}_accuracy"] = right / got if got else 0.0
        out[f"golden_{a}_coverage"] = got / n if n else 0.0
        out[f"golden_{a}_attainable_accuracy"] = right / attainable if attainable else 0.0
        out[f"golden_{a}_customers"] = n
    return out
