"""Derived metrics: purchases, spend, RFM bands, the predicted-LTV heuristic, engagement."""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal

import pytest
from _profile_data import act, day, interactions, interpreted  # noqa: F401 (fixture)
from chispa import assert_column_equality
from pyspark.sql import DataFrame, Row, SparkSession
from pyspark.sql import functions as F

from udp_spark.config import MetricsSettings
from udp_spark.profile.functions import score_band
from udp_spark.profile.metrics import customer_metrics

AS_OF = date(2026, 6, 30)

pytestmark = pytest.mark.usefixtures("interpreted")


@pytest.fixture(scope="module")
def metrics(spark: SparkSession) -> dict[str, Row]:
    web = "webshop_customers:1"
    rows = [
        act("webshop_orders:1", web, "order", day(2026, 6, 20), amount="100.00",
            channel="web", status="completed"),
        act("webshop_orders:2", web, "order", day(2026, 1, 10), amount="50.00",
            currency="EUR", channel="web", status="completed"),
        act("webshop_orders:3", web, "order", day(2026, 3, 1), amount="999.00",
            channel="web", status="Cancelled"),
        act("pos_transactions:1", "pos_transactions:L1", "pos_purchase", day(2025, 7, 1),
            amount="20.00", currency="GBP", channel="store"),
        # After as_of: ignored by every metric.
        act("webshop_orders:4", web, "order", day(2026, 7, 5), amount="500.00",
            channel="web", status="completed"),
        *[act(f"app_events:{i}", "app_users:1", "app_open", day(2026, 6, 1 + i),
              channel="app") for i in range(3)],
        act("support_tickets:1", "support_tickets:1", "support_ticket", day(2026, 6, 25),
            channel="email", status="open"),
        act("support_tickets:2", "support_tickets:1", "support_ticket", day(2026, 1, 2),
            channel="email", status="closed"),
        act("email_subscribers:1", "email_subscribers:1", "email_engagement",
            day(2026, 5, 1), channel="email", status="subscribed",
            attributes={"emails_sent": "10", "emails_opened": "4", "emails_clicked": "1"}),
        # C2: engagement only, nothing sent.
        act("email_subscribers:2", "email_subscribers:2", "email_engagement",
            day(2026, 2, 1), channel="email", status="pending",
            attributes={"emails_sent": "0"}),
        # C3: a purchase in a currency without a rate.
        act("pos_transactions:3", "pos_transactions:L3", "pos_purchase", day(2026, 6, 1),
            amount="1000", currency="JPY", channel="store"),
        # C4: a new customer, one order five days ago.
        act("webshop_orders:5", "webshop_customers:4", "order", day(2026, 6, 25),
            amount="100.00", channel="web", status="completed"),
    ]
    owners = {"webshop_customers:1": "C1", "pos_transactions:L1": "C1", "app_users:1": "C1",
              "support_tickets:1": "C1", "email_subscribers:1": "C1",
              "email_subscribers:2": "C2", "pos_transactions:L3": "C3",
              "webshop_customers:4": "C4"}
    xref = spark.createDataFrame(list(owners.items()), "record_id string, customer_id string")
    out = (interactions(spark, rows).join(xref, "record_id")
           .transform(customer_metrics(MetricsSettings(), AS_OF)))
    return {r["customer_id"]: r for r in out.collect()}


def test_orders_and_spend_count_completed_purchases_in_base_currency(
        metrics: dict[str, Row]) -> None:
    c1 = metrics["C1"]
    # 100 USD + 50 EUR * 1.08 + 20 GBP * 1.27; the cancelled and the future order are out.
    assert (c1["orders"], c1["total_spend"], c1["ltv"], c1["avg_order_value"]) == (
        3, Decimal("179.40"), Decimal("179.40"), Decimal("59.80"))
    assert (c1["first_purchase_at"], c1["last_purchase_at"]) == (day(2025, 7, 1),
                                                                 day(2026, 6, 20))
    assert c1["recency_days"] == 10
    # A currency without a rate: the order counts, its amount does not.
    assert (metrics["C3"]["orders"], metrics["C3"]["total_spend"]) == (1, Decimal("0.00"))


def test_predicted_ltv_follows_the_documented_heuristic(metrics: dict[str, Row]) -> None:
    # avg order value x orders per day of tenure x horizon x 0.5 ** (recency / half-life)
    c1_expected = 59.80 * (3 / 364) * 365 * 0.5 ** (10 / 180)
    assert float(metrics["C1"]["predicted_ltv"]) == pytest.approx(c1_expected, abs=0.01)
    # Five days of history count as the 30-day minimum tenure.
    c4_expected = 100.00 * (1 / 30) * 365 * 0.5 ** (5 / 180)
    assert float(metrics["C4"]["predicted_ltv"]) == pytest.approx(c4_expected, abs=0.01)
    assert metrics["C2"]["predicted_ltv"] == Decimal("0.00")


def test_rfm_scores_use_fixed_bands(metrics: dict[str, Row]) -> None:
    c1 = metrics["C1"]
    # recency 10 <= 30 -> 5; 3 orders reach 2 and 3 -> 3; 179.40 reaches 100 -> 2.
    assert (c1["r_score"], c1["f_score"], c1["m_score"], c1["rfm_score"]) == (5, 3, 2, "532")
    c2 = metrics["C2"]
    assert (c2["orders"], c2["r_score"], c2["f_score"], c2["m_score"], c2["rfm_score"]) == (
        0, None, None, None, None)


def test_score_band_edges(spark: SparkSession) -> None:
    df = spark.createDataFrame(
        [(10, 5, 1, 1), (30, 5, 2, 2), (31, 4, 3, 3), (90, 4, 4, 3), (365, 2, 5, 4),
         (366, 1, 10, 5), (None, None, None, None)],
        "recency int, expected_r int, orders int, expected_f int")
    out = df.select(
        score_band(F.col("recency"), (30, 90, 180, 365), lower_is_better=True).alias("r"),
        score_band(F.col("orders"), (2, 3, 5, 10)).alias("f"), "expected_r", "expected_f")
    assert_column_equality(out, "r", "expected_r")
    assert_column_equality(out, "f", "expected_f")


def test_engagement_tickets_channel_and_last_interaction(metrics: dict[str, Row]) -> None:
    c1 = metrics["C1"]
    assert (c1["open_tickets"], c1["email_sent"], c1["email_opened"], c1["email_clicked"],
            c1["email_open_rate"], c1["email_click_rate"], c1["email_status"]) == (
        1, 10, 4, 1, 0.4, 0.1, "subscribed")
    # Purchases decide the preferred channel (web 2, store 1), not the many app opens.
    assert c1["preferred_channel"] == "web"
    assert c1["last_interaction_at"] == datetime(2026, 6, 25)
    c2 = metrics["C2"]
    # No purchases: the channel of most interactions; nothing sent: no rates.
    assert (c2["preferred_channel"], c2["email_sent"], c2["email_open_rate"],
            c2["open_tickets"]) == ("email", 0, None, 0)


def _metrics_frame(spark: SparkSession, as_of: date) -> DataFrame:
    rows = [act("webshop_orders:9", "w:9", "order", day(2026, 6, 20), amount="10.00",
                status="completed")]
    xref = spark.createDataFrame([("w:9", "C9")], "record_id string, customer_id string")
    return interactions(spark, rows).join(xref, "record_id").transform(
        customer_metrics(MetricsSettings(), as_of))


def test_as_of_moves_recency_and_excludes_later_interactions(spark: SparkSession) -> None:
    later = _metrics_frame(spark, date(2026, 7, 20)).first()
    earlier = _metrics_frame(spark, date(2026, 6, 19)).first()
    assert later is not None and (later["orders"], later["recency_days"]) == (1, 30)
    assert earlier is None  # nothing had happened yet
