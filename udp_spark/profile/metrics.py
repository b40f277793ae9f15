"""Derived customer metrics from ``silver.interactions``.

All metrics are computed *as of* one day (``publish.metrics.as_of``): interactions after it
are ignored and day counts are measured to it, so a publish with a fixed ``as_of`` is
reproducible. Money is converted to ``base_currency`` with ``fx_rates``.

- ``orders``: purchases (``purchase_types``) whose status is not in ``excluded_statuses``.
- ``total_spend`` / ``ltv``: sum of their amounts (historical lifetime value; the two are
  the same number, ``ltv`` is the name segments use). ``avg_order_value`` = spend / orders.
- ``first_purchase_at``, ``last_purchase_at``; ``recency_days`` = days from the last
  purchase to ``as_of``.
- ``predicted_ltv``: **a heuristic, not a fitted model** (no BG/NBD or Gamma-Gamma)::

      tenure_days     = max(days from first purchase to as_of, min_tenure_days)
      expected_orders = orders / tenure_days * horizon_days
      p_active        = 0.5 ** (recency_days / half_life_days)
      predicted_ltv   = avg_order_value * expected_orders * p_active

  i.e. the customer keeps buying at their historical rate and order value over the next
  ``horizon_days``, discounted by how long they have been silent (a customer silent for one
  half-life counts half). It ranks customers sensibly; it is not a calibrated forecast.
- ``r_score``, ``f_score``, ``m_score`` (1-5) from fixed cut points (``rfm``): recency
  (fewer days is better), orders and spend (more is better); ``rfm_score`` is the three
  digits, e.g. ``"545"``. Null for customers who never purchased. Fixed cut points, not
  quantiles, so one customer's purchase never changes another customer's scores.
- ``last_interaction_at``: the latest interaction of any kind.
- ``preferred_channel``: the channel of most purchases, else of most interactions (ties:
  alphabetical).
- ``open_tickets``: tickets (``ticket_types``) in an ``open_ticket_statuses`` status.
- ``email_sent``/``email_opened``/``email_clicked``: summed engagement counts,
  ``email_open_rate``/``email_click_rate`` = opened/sent and clicked/sent,
  ``email_status``: the latest subscription status.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from datetime import date

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

from udp_spark.config import MetricsSettings
from udp_spark.profile.functions import score_band

Transform = Callable[[DataFrame], DataFrame]

__all__ = ["METRIC_COLUMNS", "METRIC_DEFAULTS", "customer_metrics", "with_metric_defaults"]

MONEY = "decimal(18,2)"

METRIC_COLUMNS: tuple[str, ...] = (
    "orders", "total_spend", "avg_order_value", "first_purchase_at", "last_purchase_at",
    "ltv", "predicted_ltv", "recency_days", "r_score", "f_score", "m_score", "rfm_score",
    "last_interaction_at", "preferred_channel", "open_tickets",
    "email_sent", "email_opened", "email_clicked", "email_open_rate", "email_click_rate",
    "email_status",
)

# Values for customers without any interaction (the rest stay null).
METRIC_DEFAULTS: dict[str, str] = {
    "orders": "0", "total_spend": "0.00", "ltv": "0.00", "predicted_ltv": "0.00",
    "open_tickets": "0",
}


def _rates(settings: MetricsSettings) -> Column:
    rates = {settings.base_currency: 1.0, **settings.fx_rates}
    return F.create_map(*[x for cur, rate in sorted(rates.items())
                          for x in (F.lit(cur), F.lit(rate).cast("decimal(18,6)"))])


def _count_attr(key: str) -> Column:
    return F.try_element_at(F.col("attributes"), F.lit(key)).try_cast("bigint")


def customer_metrics(settings: MetricsSettings, as_of: date) -> Transform:
    """Interactions with ``customer_id`` -> one row of :data:`METRIC_COLUMNS` per customer.

    Example::

        interactions.join(xref, "record_id").transform(
            customer_metrics(cfg.publish.metrics, date(2026, 6, 30)))
    """
    s = settings

    def transform(interactions: DataFrame) -> DataFrame:
        c = F.col
        status = F.lower(c("status"))
        purchase = (c("type").isin(*s.purchase_types)
                    & ~F.coalesce(status.isin(*s.excluded_statuses), F.lit(False)))
        currency = F.upper(F.coalesce(c("currency"), F.lit(s.base_currency)))
        money = F.round(c("amount").cast(MONEY) * F.try_element_at(_rates(s), currency), 2)
        open_ticket = c("type").isin(*s.ticket_types) & F.coalesce(
            status.isin(*s.open_ticket_statuses), F.lit(False))
        engagement = c("type").isin(*s.engagement_types)
        keys = s.engagement_counts
        rows = interactions.filter(c("customer_id").isNotNull()
                                   & (F.to_date(c("occurred_at")) <= F.lit(as_of)))
        agg = rows.groupBy("customer_id").agg(
            F.count(F.when(purchase, 1)).alias("orders"),
            F.sum(F.when(purchase, money)).alias("_spend"),
            F.min(F.when(purchase, c("occurred_at"))).alias("first_purchase_at"),
            F.max(F.when(purchase, c("occurred_at"))).alias("last_purchase_at"),
            F.max("occurred_at").alias("last_interaction_at"),
            F.coalesce(F.mode(F.when(purchase, c("channel")), deterministic=True),
                       F.mode(c("channel"), deterministic=True)).alias("preferred_channel"),
            F.count(F.when(open_ticket, 1)).alias("open_tickets"),
            F.sum(F.when(engagement, _count_attr(keys.sent))).alias("email_sent"),
            F.sum(F.when(engagement, _count_attr(keys.opened))).alias("email_opened"),
            F.sum(F.when(engagement, _count_attr(keys.clicked))).alias("email_clicked"),
            # the latest; of two at once, the greater status (never row order)
            F.max_by(F.when(engagement, status),
                     F.when(engagement, F.struct(c("occurred_at"), status)))
            .alias("email_status"),
        )
        return agg.transform(_derived(s, as_of)).select("customer_id", *METRIC_COLUMNS)

    return transform


def _derived(s: MetricsSettings, as_of: date) -> Transform:
    def transform(agg: DataFrame) -> DataFrame:
        c = F.col
        spend = F.coalesce(c("_spend"), F.lit(0)).cast(MONEY)
        bought = c("orders") > 0
        aov = F.when(bought, F.round(spend / c("orders"), 2)).cast(MONEY)
        recency = F.datediff(F.lit(as_of), F.to_date(c("last_purchase_at")))
        tenure = F.greatest(F.datediff(F.lit(as_of), F.to_date(c("first_purchase_at"))),
                            F.lit(s.min_tenure_days))
        expected_orders = c("orders") / tenure * F.lit(float(s.horizon_days))
        p_active = F.exp(F.lit(-math.log(2) / s.half_life_days) * c("recency_days"))
        predicted = F.when(bought, F.round(c("avg_order_value").cast("double")
                                           * expected_orders * p_active, 2)).cast(MONEY)

        def rate(part: str) -> Column:
            return F.when(c("email_sent") > 0, F.round(c(part) / c("email_sent"), 4))

        return (agg.withColumn("total_spend", spend)
                .withColumn("avg_order_value", aov)
                .withColumn("ltv", spend)
                .withColumn("recency_days", F.when(bought, recency))
                .withColumn("predicted_ltv", F.coalesce(predicted, F.lit(0).cast(MONEY)))
                .withColumn("r_score", score_band(c("recency_days"), s.rfm.recency_days,
                                                  lower_is_better=True))
                .withColumn("f_score", F.when(bought, score_band(c("orders"), s.rfm.frequency)))
                .withColumn("m_score", F.when(bought, score_band(spend, s.rfm.monetary)))
                .withColumn("rfm_score", F.concat(c("r_score").cast("string"),
                                                  c("f_score").cast("string"),
                                                  c("m_score").cast("string")))
                .withColumn("email_open_rate", rate("email_opened"))
                .withColumn("email_click_rate", rate("email_clicked")))

    return transform


def with_metric_defaults(df: DataFrame) -> DataFrame:
    """Fill :data:`METRIC_DEFAULTS` for customers without interactions (after a left join)."""
    return df.select(*[
        F.coalesce(F.col(c), F.lit(METRIC_DEFAULTS[c]).cast(df.schema[c].dataType)).alias(c)
        if c in METRIC_DEFAULTS else F.col(c) for c in df.columns])
