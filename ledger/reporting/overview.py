"""The workspace's headline figures and the bridge's lines, from monthly balances. Pure."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from ledger.reporting.balances import MonthBalance
from ledger.reporting.metrics import metrics
from ledger.rules.entries import Category

Value = int | Decimal | None


@dataclass(frozen=True, slots=True)
class Figure:
    label: str
    kind: str  # "money" (minor units), "arpu" (major units), "count" or "ratio"
    value: Value
    previous: Value
    higher_is_better: bool = True

    @property
    def change(self) -> Value:
        if self.value is None or self.previous is None:
            return None
        return self.value - self.previous

    @property
    def tone(self) -> str | None:
        """Whether the change on the month before is "better" or "worse" news (None when
        unchanged or not comparable): a rise of delinquent MRR is bad, so the sign cannot say."""
        change = self.change
        if change is None or change == 0:
            return None
        return "better" if (change > 0) == self.higher_is_better else "worse"


def headline(month: MonthBalance, previous: MonthBalance) -> list[Figure]:
    """MRR, delinquent MRR, net new MRR, customers, ARPU and NRR, each with the month before."""
    return [
        Figure("MRR", "money", month.closing_mrr, previous.closing_mrr),
        Figure(
            "Delinquent MRR",
            "money",
            month.delinquent_mrr,
            previous.delinquent_mrr,
            higher_is_better=False,
        ),
        Figure("Net new MRR", "money", month.net_new_mrr, previous.net_new_mrr),
        Figure("Customers", "count", month.customers, previous.customers),
        Figure("ARPU", "arpu", month.arpu, previous.arpu),
        Figure(
            "Net revenue retention",
            "ratio",
            metrics(month).net_revenue_retention,
            metrics(previous).net_revenue_retention,
        ),
    ]


@dataclass(frozen=True, slots=True)
class Line:
    """One line of the bridge: a field of `MonthBalance`, with what a person reads."""

    field: str
    label: str
    definition: str
    anchor: str  # section of docs/mrr-rules.md
    category: Category | None = None  # the entries that sum to it, when there is one
    total: bool = False


ACTIVE_LINES = (
    Line(
        "opening_mrr",
        "Opening MRR",
        "Active MRR at the end of the previous month.",
        "balances",
        total=True,
    ),
    Line("new", "New", "MRR from customers paying for the first time.", "categories", Category.NEW),
    Line(
        "reactivation",
        "Reactivation",
        "MRR from customers who had churned and pay again.",
        "categories",
        Category.REACTIVATION,
    ),
    Line(
        "expansion",
        "Expansion",
        "More MRR from existing customers: upgrades, more seats, discounts ending.",
        "categories",
        Category.EXPANSION,
    ),
    Line(
        "contraction",
        "Contraction",
        "Less MRR from customers who stay: downgrades, fewer seats, new discounts.",
        "categories",
        Category.CONTRACTION,
    ),
    Line("churn", "Churn", "MRR of customers who stopped paying.", "categories", Category.CHURN),
    Line(
        "delinquent",
        "Moved to delinquent",
        "MRR of customers whose payment failed, moved out of active MRR while Stripe retries.",
        "delinquency",
        Category.DELINQUENT,
    ),
    Line(
        "recovered",
        "Recovered",
        "Delinquent MRR back in active MRR once the overdue invoice is paid.",
        "delinquency",
        Category.RECOVERED,
    ),
    Line(
        "closing_mrr", "Closing MRR", "Active MRR at the end of this month.", "balances", total=True
    ),
)

DELINQUENT_LINES = (
    Line(
        "opening_delinquent_mrr",
        "Opening delinquent MRR",
        "MRR waiting on failed payments at the end of the previous month.",
        "delinquency",
        total=True,
    ),
    Line(
        "delinquent_churn",
        "Delinquent churn",
        "Delinquent MRR lost: the subscription ended without the invoice being paid.",
        "delinquency",
        Category.DELINQUENT_CHURN,
    ),
    Line(
        "delinquent_change",
        "Delinquent change",
        "Price or quantity changes of subscriptions while delinquent.",
        "delinquency",
        Category.DELINQUENT_CHANGE,
    ),
    Line(
        "delinquent_mrr",
        "Delinquent MRR",
        "MRR waiting on failed payments at the end of this month (moved to delinquent and "
        "recovered change it too, with the opposite sign of their lines above).",
        "delinquency",
        total=True,
    ),
)


def value(balance: MonthBalance, line: Line) -> int:
    found: int = getattr(balance, line.field)
    return found
