"""Survivorship: each rule and each tie-breaker picks the value it promises, with lineage.

Every scenario is built so that any other rule (or no tie-breaker) would pick a different
record, so a wrong rule fails the test.
"""

from __future__ import annotations

from datetime import date, datetime

import pytest
from _profile_data import day, interpreted, rec, records  # noqa: F401 (fixture)
from chispa import assert_df_equality
from pydantic import ValidationError
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from udp_spark.config import AttributeRule, SurvivorshipSettings
from udp_spark.profile.survivorship import (
    SurvivorshipError,
    golden_records,
    population_counts,
)

pytestmark = pytest.mark.usefixtures("interpreted")


def _golden(spark: SparkSession, rows: list[dict], others: list[dict] | None = None,
            **rules: AttributeRule) -> DataFrame:
    """The golden rows of ``rows``' customers; with ``others``, ranked as in a run over
    ``rows`` and ``others`` (``population_counts`` of both), as a partial publish does."""
    population = None if others is None else population_counts(records(spark, rows + others))
    # Computed once per scenario; the checks below only read the result.
    return records(spark, rows).transform(
        golden_records(SurvivorshipSettings(**rules), population)).localCheckpoint()


def _chosen(golden: DataFrame, field: str) -> DataFrame:
    return golden.select("customer_id", F.col(field).cast("string").alias("value"),
                         F.col(f"lineage.{field}.record_id").alias("record_id"),
                         F.col(f"lineage.{field}.rule").alias("rule"))


def _expect(spark: SparkSession, rows: list[tuple[str, str | None, str | None, str | None]]
            ) -> DataFrame:
    return spark.createDataFrame(rows, "customer_id string, value string, record_id string, "
                                       "rule string")


def _check(spark: SparkSession, golden: DataFrame, field: str,
           expected: list[tuple[str, str | None, str | None, str | None]]) -> None:
    assert_df_equality(_chosen(golden, field), _expect(spark, expected), ignore_row_order=True,
                       ignore_nullable=True)


# --------------------------------------------------------------------------- rules


def test_source_priority_takes_the_most_trusted_source(spark: SparkSession) -> None:
    # crm (rank 1) is older, less complete and outvoted, and has the larger record id.
    rows = [
        rec("crm:9", given_name="Katherine", family_name="Smith", completeness=0.2,
            updated_at=day(2020, 1, 1)),
        rec("webshop_customers:1", given_name="Kate", family_name="Smith",
            completeness=0.9, updated_at=day(2025, 1, 1)),
        rec("app_users:1", given_name="Kate", family_name="Smith", completeness=0.9,
            updated_at=day(2025, 6, 1)),
    ]
    golden = _golden(spark, rows, name=AttributeRule(rule="source_priority"))
    _check(spark, golden, "given_name", [("C1", "Katherine", "crm:9", "source_priority")])
    # The whole name group comes from the same record.
    _check(spark, golden, "family_name", [("C1", "Smith", "crm:9", "source_priority")])


def test_most_recent_takes_the_latest_observed_record(spark: SparkSession) -> None:
    rows = [
        # Newest by updated_at, least trusted source, asserted once.
        rec("pos_transactions:9", email="new@x.com", updated_at=day(2026, 3, 1)),
        rec("crm:1", email="old@x.com", updated_at=day(2024, 1, 1)),
        rec("webshop_customers:1", email="old@x.com", updated_at=day(2024, 2, 1)),
        # A record without any source time (only its 2026-01-01 ingestion) comes last.
        rec("app_users:2", customer_id="C2", email="created@x.com",
            created_at=day(2025, 12, 1)),
        rec("app_users:1", customer_id="C2", email="ingested@x.com"),
        # Without updated_at, created_at counts.
        rec("app_users:4", customer_id="C3", email="updated@x.com", updated_at=day(2025, 11, 1)),
        rec("app_users:5", customer_id="C3", email="created@x.com", created_at=day(2025, 12, 1)),
    ]
    golden = _golden(spark, rows, email=AttributeRule(rule="most_recent"))
    _check(spark, golden, "email", [("C1", "new@x.com", "pos_transactions:9", "most_recent"),
                                    ("C2", "created@x.com", "app_users:2", "most_recent"),
                                    ("C3", "created@x.com", "app_users:5", "most_recent")])
    observed = golden.filter("customer_id = 'C1'").select("lineage.email.observed_at").first()
    assert observed is not None and observed[0] == datetime(2026, 3, 1)


def test_most_frequent_takes_the_value_most_records_assert(spark: SparkSession) -> None:
    rows = [
        # The typo is in the most trusted, most recent record with the smallest id.
        rec("crm:1", date_of_birth=date(1980, 5, 2), birth_year=1980,
            updated_at=day(2026, 1, 5)),
        rec("webshop_customers:7", date_of_birth=date(1980, 2, 5), birth_year=1980,
            updated_at=day(2024, 1, 1)),
        rec("support_tickets:7", date_of_birth=date(1980, 2, 5), birth_year=1980,
            updated_at=day(2023, 1, 1)),
    ]
    golden = _golden(spark, rows, birth=AttributeRule(rule="most_frequent"))
    _check(spark, golden, "date_of_birth",
           [("C1", "1980-02-05", "support_tickets:7", "most_frequent")])


def test_most_complete_takes_the_fullest_candidate(spark: SparkSession) -> None:
    rows = [
        rec("crm:1", street="1 Main St", updated_at=day(2026, 1, 1), completeness=1.0),
        rec("support_tickets:9", street="1 Main St", city="Springfield", postcode="12345",
            country="US", updated_at=day(2020, 1, 1), completeness=0.3),
        # Same fill as the winner but a less complete record overall.
        rec("webshop_customers:2", street="2 Side St", city="Shelbyville",
            postcode="54321", country="US", updated_at=day(2020, 1, 1), completeness=0.2),
    ]
    golden = _golden(spark, rows, address=AttributeRule(rule="most_complete"))
    _check(spark, golden, "postcode", [("C1", "12345", "support_tickets:9", "most_complete")])
    _check(spark, golden, "street", [("C1", "1 Main St", "support_tickets:9",
                                      "most_complete")])


def test_most_complete_names_count_written_out_words(spark: SparkSession) -> None:
    """An initial, a word with a digit and a short form of a given name count for nothing,
    so the full name wins even from a less trusted, less complete record."""
    rows = [
        rec("crm:1", given_name="Sarah", family_name="R.", family_name_norm="r",
            completeness=1.0),
        rec("email_subscribers:1", given_name="Sarah", family_name="Roberts",
            completeness=0.2),
        rec("crm:2", customer_id="C2", given_name="Jim", family_name="Graves",
            completeness=1.0),
        rec("webshop_customers:2", customer_id="C2", given_name="James", family_name="Graves",
            completeness=0.2),
        rec("crm:3", customer_id="C3", given_name="R6an", family_name="Russell",
            completeness=1.0),
        rec("pos_transactions:3", customer_id="C3", given_name="Ryan", family_name="Russell",
            completeness=0.2),
    ]
    golden = _golden(spark, rows, name=AttributeRule(rule="most_complete"))
    _check(spark, golden, "family_name",
           [("C1", "Roberts", "email_subscribers:1", "most_complete"),
            ("C2", "Graves", "webshop_customers:2", "most_complete"),
            ("C3", "Russell", "pos_transactions:3", "most_complete")])
    # with a trust-first rule the CRM's short forms win: the words are what decide above
    trusted = _golden(spark, rows, name=AttributeRule(rule="source_priority"))
    _check(spark, trusted, "given_name", [("C1", "Sarah", "crm:1", "source_priority"),
                                          ("C2", "Jim", "crm:2", "source_priority"),
                                          ("C3", "R6an", "crm:3", "source_priority")])


def test_valid_only_ignores_invalid_candidates(spark: SparkSession) -> None:
    rows = [
        rec("crm:1", email="bad@x.com", email_valid=False, updated_at=day(2026, 1, 1)),
        rec("webshop_customers:1", email="good@x.com", updated_at=day(2020, 1, 1)),
        # Only an invalid candidate: no golden value rather than an invalid one.
        rec("crm:2", customer_id="C2", email="bad@y.com", email_valid=False),
        rec("crm:3", customer_id="C2", given_name="Ann"),
    ]
    golden = _golden(spark, rows, email=AttributeRule(rule="most_recent", valid_only=True))
    _check(spark, golden, "email", [("C1", "good@x.com", "webshop_customers:1", "most_recent"),
                                    ("C2", None, None, None)])
    # Without valid_only the invalid, more recent value wins: the flag is what decides.
    plain = _golden(spark, rows, email=AttributeRule(rule="most_recent"))
    assert plain.filter("customer_id = 'C1'").select("email").first()[0] == "bad@x.com"


def test_valid_only_phone_checks_phone_and_mobile_flags(spark: SparkSession) -> None:
    rows = [
        rec("crm:1", phone_e164="+15550001", phone_valid=False, mobile_e164="+15550002",
            updated_at=day(2026, 1, 1)),
        rec("webshop_customers:1", phone_e164="+15550003", updated_at=day(2020, 1, 1)),
    ]
    golden = _golden(spark, rows, phone=AttributeRule(rule="most_recent", valid_only=True))
    _check(spark, golden, "phone", [("C1", "+15550002", "crm:1", "most_recent")])


def test_where_keeps_only_matching_records(spark: SparkSession) -> None:
    rows = [
        rec("crm:1", email="unverified@x.com", updated_at=day(2026, 1, 1)),
        rec("webshop_customers:1", email="verified@x.com", updated_at=day(2020, 1, 1),
            attributes={"email_verified": "true"}),
    ]
    golden = _golden(spark, rows, email=AttributeRule(
        rule="most_recent", where="attributes['email_verified'] = 'true'"))
    _check(spark, golden, "email", [("C1", "verified@x.com", "webshop_customers:1",
                                     "most_recent")])


# --------------------------------------------------------------------------- tie-breakers


def test_tie_breaker_most_recent_decides_equal_trust(spark: SparkSession) -> None:
    rows = [rec("crm:1", gender="F", updated_at=day(2020, 1, 1)),
            rec("crm:2", gender="M", updated_at=day(2025, 1, 1)),
            rec("webshop_customers:0", gender="X", updated_at=day(2026, 1, 1))]
    with_tb = _golden(spark, rows, gender=AttributeRule(rule="source_priority",
                                                        tie_breakers=("most_recent",)))
    _check(spark, with_tb, "gender", [("C1", "M", "crm:2", "source_priority")])
    # Without the tie-breaker the smallest record id decides.
    without = _golden(spark, rows, gender=AttributeRule(rule="source_priority"))
    _check(spark, without, "gender", [("C1", "F", "crm:1", "source_priority")])


def test_tie_breaker_source_priority_decides_equal_times(spark: SparkSession) -> None:
    t = day(2025, 1, 1)
    rows = [rec("app_users:1", loyalty_id="L1", updated_at=t),
            rec("crm:5", loyalty_id="L2", updated_at=t),
            rec("pos_transactions:0", loyalty_id="L3", updated_at=day(2024, 1, 1))]
    golden = _golden(spark, rows, loyalty_id=AttributeRule(rule="most_recent",
                                                           tie_breakers=("source_priority",)))
    _check(spark, golden, "loyalty_id", [("C1", "L2", "crm:5", "most_recent")])


def test_tie_breaker_most_frequent_decides_equal_trust(spark: SparkSession) -> None:
    rows = [rec("crm:1", gender="F", updated_at=day(2026, 1, 1)),
            rec("crm:2", gender="M"), rec("crm:3", gender="M")]
    golden = _golden(spark, rows, gender=AttributeRule(rule="source_priority",
                                                       tie_breakers=("most_frequent",)))
    _check(spark, golden, "gender", [("C1", "M", "crm:2", "source_priority")])


def test_tie_breaker_most_complete_decides_equal_times(spark: SparkSession) -> None:
    t = day(2025, 1, 1)
    rows = [rec("crm:1", street="1 Main St", updated_at=t),
            rec("crm:2", street="1 Main St", city="Springfield", postcode="12345",
                updated_at=t)]
    golden = _golden(spark, rows, address=AttributeRule(rule="most_recent",
                                                        tie_breakers=("most_complete",)))
    _check(spark, golden, "city", [("C1", "Springfield", "crm:2", "most_recent")])


def test_tie_breakers_apply_in_order(spark: SparkSession) -> None:
    # Equal frequency; crm:2 is more trusted, webshop:1 more recent.
    rows = [rec("webshop_customers:1", gender="F", updated_at=day(2026, 1, 1)),
            rec("crm:2", gender="M", updated_at=day(2020, 1, 1))]
    recent_first = _golden(spark, rows, gender=AttributeRule(
        rule="most_frequent", tie_breakers=("most_recent", "source_priority")))
    trust_first = _golden(spark, rows, gender=AttributeRule(
        rule="most_frequent", tie_breakers=("source_priority", "most_recent")))
    _check(spark, recent_first, "gender", [("C1", "F", "webshop_customers:1",
                                            "most_frequent")])
    _check(spark, trust_first, "gender", [("C1", "M", "crm:2", "most_frequent")])


def test_full_tie_falls_back_to_smallest_record_id(spark: SparkSession) -> None:
    t = day(2025, 1, 1)
    rows = [rec("crm:b", gender="M", updated_at=t), rec("crm:a", gender="F", updated_at=t)]
    golden = _golden(spark, rows, gender=AttributeRule(
        rule="most_frequent", tie_breakers=("source_priority", "most_recent",
                                            "most_complete")))
    _check(spark, golden, "gender", [("C1", "F", "crm:a", "most_frequent")])


# --------------------------------------------------------------------------- name agreement


def test_most_frequent_names_count_the_records_that_agree(spark: SparkSession) -> None:
    """A short form, an initial and a missing family name agree with the full name; a typo
    agrees with nothing but itself; 'Schroeder' is 'Schröder' and the accented spelling is
    the one kept."""
    rows = [
        # C1: two newer 'Tim Scott' outvote 'Timothy Scott' by exact value, not by agreement
        rec("support_tickets:1", given_name="Timothy", family_name="Scott",
            updated_at=day(2021, 1, 1)),
        rec("app_users:1", given_name="Tim", family_name="Scott", updated_at=day(2026, 1, 1)),
        rec("email_subscribers:1", given_name="Tim", family_name="Scott",
            updated_at=day(2026, 2, 1)),
        # C2: 'Francis' twice (newer) and 'Francis Verville' once
        rec("app_users:2", customer_id="C2", given_name="Francis", updated_at=day(2026, 1, 1)),
        rec("email_subscribers:2", customer_id="C2", given_name="Francis",
            updated_at=day(2026, 3, 1)),
        rec("pos_transactions:2", customer_id="C2", given_name="Francis",
            family_name="Verville", updated_at=day(2024, 1, 1)),
        # C3: the typo is newest and most trusted; 'J. Estes' and 'Jacob Estes' agree
        rec("crm:3", customer_id="C3", given_name="Jacon", family_name="Estes",
            updated_at=day(2026, 1, 1)),
        rec("webshop_customers:3", customer_id="C3", given_name="Jacob", middle_name="Paul",
            family_name="Estes", updated_at=day(2019, 1, 1)),
        rec("app_users:3", customer_id="C3", given_name="Jacob", family_name="Estes",
            updated_at=day(2020, 1, 1)),
        # C4: transliterated twice (newer), accented once
        rec("pos_transactions:4", customer_id="C4", given_name="Frieda",
            family_name="Schroeder", updated_at=day(2026, 4, 1)),
        rec("email_subscribers:4", customer_id="C4", given_name="Frieda",
            family_name="Schroeder", updated_at=day(2026, 5, 1)),
        rec("webshop_customers:4", customer_id="C4", given_name="Frieda",
            family_name="Schröder", family_name_norm="schroder", updated_at=day(2023, 1, 1)),
    ]
    name = AttributeRule(rule="most_frequent",
                         tie_breakers=("most_complete", "most_recent", "source_priority"))
    golden = _golden(spark, rows, name=name)
    _check(spark, golden, "given_name",
           [("C1", "Timothy", "support_tickets:1", "most_frequent"),
            ("C2", "Francis", "pos_transactions:2", "most_frequent"),
            ("C3", "Jacob", "webshop_customers:3", "most_frequent"),
            ("C4", "Frieda", "webshop_customers:4", "most_frequent")])
    _check(spark, golden, "family_name",
           [("C1", "Scott", "support_tickets:1", "most_frequent"),
            ("C2", "Verville", "pos_transactions:2", "most_frequent"),
            ("C3", "Estes", "webshop_customers:3", "most_frequent"),
            ("C4", "Schröder", "webshop_customers:4", "most_frequent")])
    # recency alone picks the short form, the bare given name, the typo, the ASCII spelling
    # (a value is as recent as its newest record: the smallest record id of it decides)
    recent = _golden(spark, rows, name=AttributeRule(rule="most_recent"))
    _check(spark, recent, "given_name", [("C1", "Tim", "app_users:1", "most_recent"),
                                         ("C2", "Francis", "app_users:2", "most_recent"),
                                         ("C3", "Jacon", "crm:3", "most_recent"),
                                         ("C4", "Frieda", "email_subscribers:4",
                                          "most_recent")])


def test_most_common_prefers_names_whose_words_other_customers_have(
        spark: SparkSession) -> None:
    """A typo and a swapped name make rare words: counted over every customer's records
    (``population_counts``), not just the customers transformed."""
    people = [("Thomas", "Weber"), ("Thomas", "Klein"), ("Anna", "Weber"),
              ("Jacob", "Miller"), ("Jacob", "Stone")]
    others = [rec(f"crm:p{i}", customer_id=f"P{i}", given_name=g, family_name=f)
              for i, (g, f) in enumerate(people)]
    rows = [
        rec("crm:1", given_name="Weber", family_name="Thomas", updated_at=day(2026, 1, 1)),
        rec("webshop_customers:1", given_name="Thomas", family_name="Weber",
            updated_at=day(2018, 1, 1)),
        rec("crm:2", customer_id="C2", given_name="Jacon", family_name="Estes",
            updated_at=day(2026, 1, 1)),
        rec("app_users:2", customer_id="C2", given_name="Jacob", family_name="Estes",
            updated_at=day(2020, 1, 1)),
    ]
    name = AttributeRule(rule="most_frequent", tie_breakers=(
        "most_complete", "most_common", "most_recent", "source_priority"))
    golden = _golden(spark, rows, others, name=name)
    _check(spark, golden, "given_name",
           [("C1", "Thomas", "webshop_customers:1", "most_frequent"),
            ("C2", "Jacob", "app_users:2", "most_frequent")])
    # Without the other customers every word is as rare as any other: recency decides.
    alone = _golden(spark, rows, name=name)
    _check(spark, alone, "given_name", [("C1", "Weber", "crm:1", "most_frequent"),
                                        ("C2", "Jacon", "crm:2", "most_frequent")])


def test_most_common_prefers_e_mails_at_domains_other_customers_use(
        spark: SparkSession) -> None:
    """Between e-mails the records assert equally often, a misspelt provider and a company's
    domain rank after the provider most customers use (domains counted over everyone)."""
    others = [rec(f"crm:p{i}", customer_id=f"P{i}", email=f"someone{i}@gmail.com")
              for i in range(4)] + [rec("crm:p9", customer_id="P9", email="x@initech.com")]
    rows = [
        # C1: the newer record has the typo'd domain
        rec("support_tickets:1", email="lola762@gmail.con", updated_at=day(2026, 5, 1)),
        rec("email_subscribers:1", email="lola762@gmail.com", updated_at=day(2025, 3, 1)),
        # C2: the newer record has the work address
        rec("app_users:2", customer_id="C2", email="carol@initech.com",
            updated_at=day(2026, 5, 1)),
        rec("webshop_customers:2", customer_id="C2", email="carol.h@gmail.com",
            updated_at=day(2018, 4, 1)),
    ]
    email = AttributeRule(rule="most_frequent", valid_only=True, tie_breakers=(
        "least_shared", "most_common", "spells_name", "most_recent", "source_priority"))
    golden = _golden(spark, rows, others, email=email)
    _check(spark, golden, "email",
           [("C1", "lola762@gmail.com", "email_subscribers:1", "most_frequent"),
            ("C2", "carol.h@gmail.com", "webshop_customers:2", "most_frequent")])
    # Without most_common, recency picks the typo and the work address.
    recent = _golden(spark, rows, email=AttributeRule(
        rule="most_frequent", valid_only=True,
        tie_breakers=("least_shared", "most_recent", "source_priority")))
    _check(spark, recent, "email",
           [("C1", "lola762@gmail.con", "support_tickets:1", "most_frequent"),
            ("C2", "carol@initech.com", "app_users:2", "most_frequent")])
    assert SurvivorshipSettings().email == email  # the shipped rule


def test_spells_name_prefers_the_e_mail_that_spells_more_of_the_name(
        spark: SparkSession) -> None:
    """Between e-mails that tie on everything before it, a typo in the local part breaks a
    word of the name the address spells, and a relay address (Apple's Hide My Email) spells
    none and counts as a rare domain however many customers have one."""
    others = [rec(f"app_users:p{i}", customer_id=f"P{i}",
                  email=f"x{i}q7@privaterelay.appleid.com") for i in range(4)]
    rows = [
        # C1: the newer record drops a letter of the family name
        rec("crm:1", given_name="Rachel", family_name="McCarthy",
            email="rachel.mccarth82@gmail.com", updated_at=day(2026, 5, 1)),
        rec("email_subscribers:1", given_name="Rachel", family_name=None,
            email="rachel.mccarthy82@gmail.com", updated_at=day(2025, 3, 1)),
        # C2: the newer record is the app's relay address
        rec("app_users:2", customer_id="C2", given_name="Jon", family_name="Farnwell",
            email="4khbec7qno@privaterelay.appleid.com", updated_at=day(2026, 5, 1)),
        rec("webshop_customers:2", customer_id="C2", given_name="J", family_name="Farnwell",
            email="jfarnwell@live.com", updated_at=day(2021, 4, 1)),
        # C3: the newer record drops a letter ('mueller' spells 'Müller', which standardize
        # writes 'muller')
        rec("crm:3", customer_id="C3", given_name="Jörg", family_name="Müller",
            given_name_norm="jorg", family_name_norm="muller", email="joerg.mueller@web.de",
            updated_at=day(2024, 1, 1)),
        rec("app_users:3", customer_id="C3", given_name="Jorg", family_name="Muller",
            email="joerg.muler@web.de", updated_at=day(2026, 1, 1)),
    ]
    email = AttributeRule(rule="most_frequent", valid_only=True, tie_breakers=(
        "least_shared", "most_common", "spells_name", "most_recent", "source_priority"))
    _check(spark, _golden(spark, rows, others, email=email), "email",
           [("C1", "rachel.mccarthy82@gmail.com", "email_subscribers:1", "most_frequent"),
            ("C2", "jfarnwell@live.com", "webshop_customers:2", "most_frequent"),
            ("C3", "joerg.mueller@web.de", "crm:3", "most_frequent")])
    # Without spells_name, recency picks the typos; the relay still loses on its domain.
    recent = _golden(spark, rows, others, email=AttributeRule(
        rule="most_frequent", valid_only=True,
        tie_breakers=("least_shared", "most_common", "most_recent", "source_priority")))
    _check(spark, recent, "email",
           [("C1", "rachel.mccarth82@gmail.com", "crm:1", "most_frequent"),
            ("C2", "jfarnwell@live.com", "webshop_customers:2", "most_frequent"),
            ("C3", "joerg.muler@web.de", "app_users:3", "most_frequent")])
    # Without most_common, spells_name alone puts the relay address last as well.
    by_name = _golden(spark, rows, others, email=AttributeRule(
        rule="most_frequent", valid_only=True,
        tie_breakers=("least_shared", "spells_name", "most_recent", "source_priority")))
    _check(spark, by_name.filter("customer_id = 'C2'"), "email",
           [("C2", "jfarnwell@live.com", "webshop_customers:2", "most_frequent")])


# --------------------------------------------------------------------------- contacts, places


def test_contacts_rank_by_mailbox_sharing_and_mobile(spark: SparkSession) -> None:
    """E-mails count per mailbox (a +tag aside); a number many customers give (a shop's
    own) ranks after the customer's own; a mobile before a landline."""
    shop = "+15550999"
    rows = [
        # C1: the newest address is a one-off; the +tag alias agrees with the plain one
        rec("crm:1", email="adam.simpson94@x.com", updated_at=day(2026, 1, 1)),
        rec("webshop_customers:1", email="adam.simpson@x.com", updated_at=day(2023, 1, 1)),
        rec("webshop_customers:2", email="adam.simpson+shop@x.com",
            email_canonical="adam.simpson@x.com", updated_at=day(2022, 1, 1)),
        # C2: the till keyed in the shop's number, which two other customers also carry
        rec("pos_transactions:2", customer_id="C2", phone_e164=shop, phone_kind="fixed_line",
            updated_at=day(2026, 1, 1)),
        rec("crm:2", customer_id="C2", phone_e164="+15550002", phone_kind="fixed_line",
            updated_at=day(2020, 1, 1)),
        rec("pos_transactions:3", customer_id="C3", phone_e164=shop),
        rec("pos_transactions:4", customer_id="C4", phone_e164=shop),
        # C5: one CRM record with an old landline and a mobile
        rec("crm:5", customer_id="C5", phone_e164="+15550005", phone_kind="fixed_line",
            mobile_e164="+15550006", updated_at=day(2021, 1, 1)),
    ]
    settings = SurvivorshipSettings()
    golden = records(spark, rows).transform(golden_records(settings)).localCheckpoint()
    _check(spark, golden.filter("customer_id = 'C1'"), "email",
           [("C1", "adam.simpson@x.com", "webshop_customers:1", "most_frequent")])
    _check(spark, golden.filter("customer_id IN ('C2', 'C5')"), "phone",
           [("C2", "+15550002", "crm:2", "most_frequent"),
            ("C5", "+15550006", "crm:5", "most_frequent")])
    # The rules are what decide: recency alone picks the one-off and the shop's number.
    recent = _golden(spark, rows, email=AttributeRule(rule="most_recent"),
                     phone=AttributeRule(rule="most_recent"))
    assert {r["customer_id"]: (r["email"], r["phone"]) for r in recent.collect()
            if r["customer_id"] in ("C1", "C2")} == {
        "C1": ("adam.simpson94@x.com", None), "C2": (None, shop)}


def test_most_recent_address_is_the_latest_place_written_most_fully(
        spark: SparkSession) -> None:
    """The newest record writes the same place without its postcode: the place is what is
    recent, and the full writing of it is kept; a real move still wins."""
    rows = [
        rec("crm:1", street="1083 Pacific Avenue Apt. 23B",
            street_norm="1083 pacific ave apt 23b", city="Seattle", state="WA",
            updated_at=day(2026, 6, 1)),
        rec("webshop_customers:1", street="1083 Pacific Avenue #23B",
            street_norm="1083 pacific ave # 23b", city="Seattle", postcode="98126",
            updated_at=day(2016, 2, 1)),
        rec("crm:2", customer_id="C2", street="9 New Rd", street_norm="9 new rd",
            city="Springfield", updated_at=day(2026, 6, 1)),
        rec("webshop_customers:2", customer_id="C2", street="1 Old St", street_norm="1 old st",
            city="Springfield", postcode="12345", updated_at=day(2016, 2, 1)),
    ]
    golden = _golden(spark, rows)
    _check(spark, golden, "street", [
        ("C1", "1083 Pacific Avenue #23B", "webshop_customers:1", "most_recent"),
        ("C2", "9 New Rd", "crm:2", "most_recent")])
    _check(spark, golden.filter("customer_id = 'C1'"), "postcode",
           [("C1", "98126", "webshop_customers:1", "most_recent")])


# --------------------------------------------------------------------------- multi-valued


def test_multi_valued_contacts_keep_every_value_with_first_last_seen_and_sources(
        spark: SparkSession) -> None:
    rows = [
        rec("crm:1", email="a@x.com", phone_e164="+15550001", mobile_e164="+15550002",
            street="1 Main St", city="Springfield", postcode="12345", country="US",
            updated_at=day(2024, 1, 1)),
        rec("webshop_customers:1", email="a@x.com", phone_e164="+15550002",
            street="9 New Rd", city="Springfield", postcode="12345", country="US",
            updated_at=day(2026, 1, 1)),
        rec("webshop_customers:2", email="b@x.com", updated_at=day(2025, 1, 1)),
    ]
    golden = _golden(spark, rows).select(
        "customer_id", F.col("emails"), F.col("phones"),
        F.col("addresses.street").alias("streets"), "record_count", "sources")
    row = golden.first()
    assert row is not None
    emails = [(e["value"], e["first_seen_at"], e["last_seen_at"], e["source_count"],
               e["sources"], e["record_ids"]) for e in row["emails"]]
    # Most recently seen first.
    assert emails == [
        ("a@x.com", day(2024, 1, 1), day(2026, 1, 1), 2, ["crm", "webshop_customers"],
         ["crm:1", "webshop_customers:1"]),
        ("b@x.com", day(2025, 1, 1), day(2025, 1, 1), 1, ["webshop_customers"],
         ["webshop_customers:2"]),
    ]
    phones = {p["value"]: (p["source_count"], p["record_ids"]) for p in row["phones"]}
    assert phones == {"+15550002": (2, ["crm:1", "webshop_customers:1"]),
                      "+15550001": (1, ["crm:1"])}
    assert row["streets"] == ["9 New Rd", "1 Main St"]
    assert (row["record_count"], row["sources"]) == (3, ["crm", "webshop_customers"])


def test_lineage_is_null_where_the_value_is_null(spark: SparkSession) -> None:
    golden = _golden(spark, [rec("crm:1", given_name="Ann", family_name="Lee")])
    row = golden.select("middle_name", "lineage.middle_name", "lineage.family_name.source",
                        "email", "lineage.email", "emails").first()
    assert row is not None
    assert list(row) == [None, None, "crm", None, None, []]


# --------------------------------------------------------------------------- settings


def test_bad_where_fails_naming_the_attribute(spark: SparkSession) -> None:
    rows = [rec("crm:1", email="a@x.com")]
    with pytest.raises(SurvivorshipError, match=r"survivorship\.email\.where.*no_such_col"):
        _golden(spark, rows, email=AttributeRule(rule="most_recent", where="no_such_col = 1"))
    with pytest.raises(SurvivorshipError, match=r"survivorship\.email\.where.*not a condition"):
        _golden(spark, rows, email=AttributeRule(rule="most_recent", where="source_rank + 1"))


def test_rule_settings_are_checked_at_load() -> None:
    with pytest.raises(ValidationError, match=r"gender\.valid_only"):
        SurvivorshipSettings(gender=AttributeRule(rule="most_frequent", valid_only=True))
    with pytest.raises(ValidationError, match="repeat a rule"):
        AttributeRule(rule="most_recent", tie_breakers=("most_recent",))
    with pytest.raises(ValidationError):
        AttributeRule(rule="newest")  # type: ignore[arg-type]
    with pytest.raises(ValidationError, match=r"phone: 'most_common' ranks name and email"):
        SurvivorshipSettings(phone=AttributeRule(rule="most_common"))
    with pytest.raises(ValidationError, match=r"'least_shared' ranks email and phone"):
        SurvivorshipSettings(name=AttributeRule(rule="least_shared"))
    with pytest.raises(ValidationError, match=r"phone: 'spells_name' ranks email values"):
        SurvivorshipSettings(phone=AttributeRule(rule="spells_name"))
