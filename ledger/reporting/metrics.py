"""Companion metrics of a month's balances (docs/mrr-rules.md §7). Pure, exact Decimal.

Ratios are Decimals rounded half-even to 4 places; `None` where a denominator is zero.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import ROUND_HALF_EVEN, Decimal

from ledger.reporting.balances import MonthBalance
from ledger.rules.money import round_major

RATIO_PLACES = Decimal("0.0001")


@dataclass(frozen=True, slots=True)
class Metrics:
    customer_churn_rate: Decimal | None
    gross_mrr_churn_rate: Decimal | None
    net_mrr_churn_rate: Decimal | None
    net_revenue_retention: Decimal | None
    quick_ratio: Decimal | None
    ltv: Decimal | None  # major units of the balance's currency


def _ratio(numerator: int | Decimal, denominator: int | Decimal) -> Decimal | None:
    if denominator == 0:
        return None
    return (Decimal(numerator) / Decimal(denominator)).quantize(
        RATIO_PLACES, rounding=ROUND_HALF_EVEN
    )


def metrics(b: MonthBalance) -> Metrics:
    lost_mrr = -(b.churn + b.contraction)  # churn and contraction are negative movements
    customer_churn = (
        None
        if b.opening_customers == 0
        else Decimal(b.churned_customers) / Decimal(b.opening_customers)
    )
    ltv = None
    if customer_churn and b.arpu is not None:
        ltv = round_major(b.arpu / customer_churn, b.currency)
    return Metrics(
        customer_churn_rate=_ratio(b.churned_customers, b.opening_customers),
        gross_mrr_churn_rate=_ratio(lost_mrr, b.opening_mrr),
        net_mrr_churn_rate=_ratio(lost_mrr - b.expansion, b.opening_mrr),
        net_revenue_retention=_ratio(
            b.opening_mrr + b.expansion + b.contraction + b.churn, b.opening_mrr
        ),
        quick_ratio=_ratio(b.new + b.expansion + b.reactivation, abs(b.churn + b.contraction)),
        ltv=ltv,
    )
