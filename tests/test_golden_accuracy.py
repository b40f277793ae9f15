"""Golden values scored against the true people: right, wrong, missing and unattainable."""

from __future__ import annotations

from datetime import date, datetime

import pytest
from _profile_data import rec, records
from pyspark.sql import DataFrame, SparkSession

from udp_spark.config import AttributeRule, SurvivorshipSettings
from udp_spark.profile.evaluation import golden_value_accuracy
from udp_spark.profile.survivorship import golden_records

PEOPLE = ("person_id string, given_name string, middle_name string, family_name string, "
          "email string, mobile string, landline string, street string, house_number string, "
          "postcode string, dob string")


def _people(spark: SparkSession) -> DataFrame:
    return spark.createDataFrame([
        ("P1", "Steven", None, "Wesstead", "steven.w@example.org", "+15550000001", None,
         "Main Street", "12", "02139", "1980-04-02"),
        ("P2", "Anne", "Marie", "Huet", "anne@example.fr", "+33600000002", "+33100000002",
         "rue de la République", "19", "75004", "1957-03-18"),
        ("P3", "Zoe", None, "Ng", None, None, None, "Elm Road", "3", "10115", None),
    ], PEOPLE)


def test_each_attribute_is_right_wrong_or_unattainable(spark: SparkSession) -> None:
    rows = [
        # C1 is P1: the CRM has a typo in the name and an old e-mail; the others agree.
        rec("crm:1", "C1", given_name="Stevem", family_name="Wesstead",
            email="old@example.org", street="12 Main St", postcode="02139",
            phone_e164="+15550000001", date_of_birth=date(1980, 4, 2),
            updated_at=datetime(2020, 1, 1)),
        rec("webshop_customers:1", "C1", given_name="Steven", family_name="Wesstead",
            email="Steven.W+shop@example.org", street="12 Main Street, Apt 4",
            postcode="02139", updated_at=datetime(2025, 1, 1)),
        rec("app_users:1", "C1", given_name="Steven", family_name="Wesstead",
            updated_at=datetime(2024, 1, 1)),
        # C2 is P2 (two of three records): the address is the old one everywhere.
        rec("crm:2", "C2", given_name="Anne Marie", family_name="Huet", email="ANNE@example.fr",
            street="16 rue de Rivoli", postcode="75008", mobile_e164="+33100000002",
            date_of_birth=date(1957, 3, 18)),
        rec("app_users:2", "C2", given_name="Anne", family_name="Huet"),
        rec("app_users:9", "C2", given_name="Paul", family_name="Huet"),  # another person
        # C3 is P3 with nothing but a name; P3 has no e-mail, phone or birth date.
        rec("crm:3", "C3", given_name="Zoé", family_name="NG"),
    ]
    truth = spark.createDataFrame(
        [("crm:1", "P1"), ("webshop_customers:1", "P1"), ("app_users:1", "P1"),
         ("crm:2", "P2"), ("app_users:2", "P2"), ("app_users:9", "P9"), ("crm:3", "P3")],
        "record_id string, entity_id string")
    recs = records(spark, rows)
    trusted = SurvivorshipSettings(name=AttributeRule(rule="source_priority"),
                                   email=AttributeRule(rule="source_priority"))
    m = golden_value_accuracy(recs.transform(golden_records(trusted)), recs, truth,
                              _people(spark))
    # names: C1 wrong (the CRM's typo won), C2 right (the middle name in the given name
    # field) and C3 right (accents and case fold)
    assert m["golden_name_customers"] == 3
    assert m["golden_name_accuracy"] == pytest.approx(2 / 3)
    assert m["golden_name_attainable_accuracy"] == pytest.approx(2 / 3)
    # e-mails: C1 wrong (old one), C2 right whatever the case; C3's person has none (the
    # current one with a +tag alias would be right: the same mailbox)
    assert m["golden_email_customers"] == 2
    assert m["golden_email_accuracy"] == pytest.approx(1 / 2)
    assert m["golden_email_coverage"] == 1.0
    # phones: C1's mobile, C2's landline: both right
    assert m["golden_phone_accuracy"] == 1.0
    assert m["golden_phone_attainable_accuracy"] == 1.0  # C2: a mobile and no phone
    # addresses: C1 right (abbreviation and unit do not matter), C2 wrong and no record
    # has the current one, C3 has none (coverage 2 of 3)
    assert m["golden_address_accuracy"] == pytest.approx(1 / 2)
    assert m["golden_address_coverage"] == pytest.approx(2 / 3)
    assert m["golden_address_attainable_accuracy"] == 1.0
    assert m["golden_birth_accuracy"] == 1.0 and m["golden_birth_customers"] == 2

    # agreement among sources beats trust here: the typo loses, the current e-mail wins
    agreeing = SurvivorshipSettings(
        name=AttributeRule(rule="most_frequent", tie_breakers=("source_priority",)),
        email=AttributeRule(rule="most_recent"))
    m2 = golden_value_accuracy(recs.transform(golden_records(agreeing)), recs, truth,
                               _people(spark))
    assert m2["golden_name_accuracy"] == 1.0
    assert m2["golden_email_accuracy"] == 1.0
