"""Monthly MRR balances per currency, folded from ledger rows (docs/mrr-rules.md §6). Pure.

Two inputs, one result:
- `Projection` folds postings that arrive in month order (the ledger read by effective time):
  movement sums per (currency, month), plus the month-end customer count changes, keeping one
  small record per customer (never the entries).
- `customer_changes` gives one customer's month-end count changes from its own history; the
  incremental projector diffs it before and after new rows to correct stored counts.
`balances` then turns the sparse per-month totals of one currency into consecutive months with
carried balances. The identities of §6.1 hold by construction: every figure is a running
sum of the same integer movements.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import NamedTuple

from ledger.rules.entries import Category, active_effect, delinquent_effect
from ledger.rules.money import exponent, round_major
from ledger.rules.months import Month, span

__all__ = [
    "ACTIVE_WEIGHTS",
    "DELINQUENT_WEIGHTS",
    "MOVEMENTS",
    "CustomerAtMonthEnd",
    "MonthBalance",
    "MonthTotals",
    "Posting",
    "Projection",
    "balances",
    "count_changes",
    "customer_changes",
]

# Movement columns, in the order the report lists them.
MOVEMENTS: tuple[Category, ...] = tuple(Category)
_SLOT = {category.value: slot for slot, category in enumerate(MOVEMENTS)}
_ACTIVE = {c.value: active_effect(c, 1) for c in Category}
_DELINQUENT = {c.value: delinquent_effect(c, 1) for c in Category}
# How one unit of each category moves the active and the delinquent balances (for SQL too).
ACTIVE_WEIGHTS: dict[str, int] = dict(_ACTIVE)
DELINQUENT_WEIGHTS: dict[str, int] = dict(_DELINQUENT)
_CHANGE, _LOST = len(MOVEMENTS), len(MOVEMENTS) + 1
_WIDTH = len(MOVEMENTS) + 2


class Posting(NamedTuple):
    """One ledger row as the projection reads it.

    `amount` is in the customer's own currency (it decides whether the customer is active);
    `report_amount` in `report_currency` is what the sums add (the same unless converted).
    `month` is a `Month.index`.
    """

    customer_id: str
    currency: str
    category: str
    amount: int
    month: int
    report_currency: str
    report_amount: int


@dataclass(frozen=True, slots=True)
class MonthTotals:
    """What one month adds to one currency's balances: movements and customer count changes.

    `customers_change`: customers counted at this month's end minus at the previous one's.
    `customers_lost`: customers counted at the previous month end that have neither active nor
    delinquent MRR at this one's (the customer churn rate's numerator).
    """

    currency: str
    month: Month
    movements: tuple[int, ...]
    customers_change: int
    customers_lost: int

    def amount(self, category: Category) -> int:
        return self.movements[_SLOT[category.value]]


class CustomerAtMonthEnd(NamedTuple):
    """A customer at a month end: counted (active MRR > 0), delinquent MRR > 0, and where."""

    active: bool
    delinquent: bool
    bucket: str


def count_changes(
    before: CustomerAtMonthEnd, after: CustomerAtMonthEnd
) -> list[tuple[str, int, int]]:
    """How a customer's move between two month ends changes (bucket, count, lost) figures."""
    moved = before.bucket != after.bucket
    changes: list[tuple[str, int, int]] = []
    if before.active and (moved or not after.active):
        gone = not after.active and not after.delinquent
        changes.append((before.bucket, -1, 1 if gone else 0))
    if after.active and (moved or not before.active):
        changes.append((after.bucket, 1, 0))
    return changes


class _Customer:
    __slots__ = ("active", "before", "bucket", "delinquent", "month")

    def __init__(self, bucket: str, month: int) -> None:
        self.month = month
        self.active = 0
        self.delinquent = 0
        self.bucket = bucket
        self.before = CustomerAtMonthEnd(False, False, bucket)

    def at_month_end(self) -> CustomerAtMonthEnd:
        return CustomerAtMonthEnd(self.active > 0, self.delinquent > 0, self.bucket)


class Projection:
    """Fold postings given in non-decreasing month order into per-month totals.

    Memory: the sums (currencies by months) and one record per customer with MRR; customers
    whose balances return to zero are dropped at the month end.
    """

    def __init__(self) -> None:
        self._sums: dict[tuple[str, int], list[int]] = {}
        self._customers: dict[tuple[str, str], _Customer] = {}
        self._touched: list[tuple[str, str]] = []
        self._month: int | None = None

    def add(self, p: Posting) -> None:
        if p.month != self._month:
            if self._month is not None and p.month < self._month:
                raise ValueError("postings must arrive in month order")
            self._close_month()
            self._month = p.month
        key = (p.report_currency, p.month)
        row = self._sums.get(key)
        if row is None:
            row = self._sums[key] = [0] * _WIDTH
        row[_SLOT[p.category]] += p.report_amount
        key_c = (p.customer_id, p.currency)
        customer = self._customers.get(key_c)
        if customer is None:
            customer = self._customers[key_c] = _Customer(p.report_currency, p.month)
            self._touched.append(key_c)
        elif customer.month != p.month:
            customer.month = p.month
            self._touched.append(key_c)
        customer.active += _ACTIVE[p.category] * p.amount
        customer.delinquent += _DELINQUENT[p.category] * p.amount
        customer.bucket = p.report_currency

    def add_all(self, postings: Iterable[Posting]) -> Projection:
        for p in postings:
            self.add(p)
        return self

    def _close_month(self) -> None:
        if self._month is None:
            return
        for key in self._touched:
            customer = self._customers[key]
            after = customer.at_month_end()
            for bucket, change, lost in count_changes(customer.before, after):
                row = self._sums.setdefault((bucket, self._month), [0] * _WIDTH)
                row[_CHANGE] += change
                row[_LOST] += lost
            customer.before = after
            if not (customer.active or customer.delinquent):
                del self._customers[key]
        self._touched = []

    def totals(self) -> list[MonthTotals]:
        """The month totals so far, per currency and month (closes the current month)."""
        self._close_month()
        self._month = None
        return [
            MonthTotals(currency, Month(month), tuple(row[:_CHANGE]), row[_CHANGE], row[_LOST])
            for (currency, month), row in sorted(self._sums.items())
        ]


def customer_changes(
    history: Mapping[int, tuple[int, int]], currency: str
) -> dict[int, tuple[int, int]]:
    """One customer's (count change, lost) per month, from its active and delinquent movements
    per month index (as `_ACTIVE`/`_DELINQUENT` weigh them)."""
    active = delinquent = 0
    before = CustomerAtMonthEnd(False, False, currency)
    changes: dict[int, tuple[int, int]] = {}
    for month in sorted(history):
        active_delta, delinquent_delta = history[month]
        active += active_delta
        delinquent += delinquent_delta
        after = CustomerAtMonthEnd(active > 0, delinquent > 0, currency)
        for _bucket, change, lost in count_changes(before, after):
            count, gone = changes.get(month, (0, 0))
            changes[month] = (count + change, gone + lost)
        before = after
    return changes


def effects(category: str, amount: int) -> tuple[int, int]:
    """(active, delinquent) balance effects of one row."""
    return _ACTIVE[category] * amount, _DELINQUENT[category] * amount


@dataclass(frozen=True, slots=True)
class MonthBalance:
    """One month of one currency (docs/mrr-rules.md §6), amounts in integer minor units."""

    month: Month
    currency: str
    opening_mrr: int
    new: int
    reactivation: int
    expansion: int
    contraction: int
    churn: int
    delinquent: int
    recovered: int
    closing_mrr: int
    opening_delinquent_mrr: int
    delinquent_churn: int
    delinquent_change: int
    delinquent_mrr: int
    opening_customers: int
    customers: int
    churned_customers: int

    @property
    def net_new_mrr(self) -> int:
        return self.closing_mrr - self.opening_mrr

    @property
    def arpu(self) -> Decimal | None:
        """closing_mrr ÷ customers in major units, half-even to the currency's decimals."""
        if self.customers == 0:
            return None
        exact = Decimal(self.closing_mrr).scaleb(-exponent(self.currency)) / self.customers
        return round_major(exact, self.currency)


def balances(
    totals: Iterable[MonthTotals], currency: str, first: Month, last: Month
) -> list[MonthBalance]:
    """Consecutive months first..last of one currency; totals before `first` set the openings."""
    by_month: dict[int, MonthTotals] = {}
    opening = opening_delinquent = customers = 0
    for t in totals:
        if t.currency != currency or t.month > last:
            continue
        if t.month < first:
            opening += _weighted(_ACTIVE_WEIGHTS, t.movements)
            opening_delinquent += _weighted(_DELINQUENT_WEIGHTS, t.movements)
            customers += t.customers_change
        else:
            by_month[t.month.index] = t
    result: list[MonthBalance] = []
    empty = MonthTotals(currency, first, (0,) * len(MOVEMENTS), 0, 0)
    for month in span(first, last):
        t = by_month.get(month.index, empty)
        moved = t.movements
        closing = opening + _weighted(_ACTIVE_WEIGHTS, moved)
        closing_delinquent = opening_delinquent + _weighted(_DELINQUENT_WEIGHTS, moved)
        result.append(
            MonthBalance(
                month=month,
                currency=currency,
                opening_mrr=opening,
                new=moved[_NEW],
                reactivation=moved[_REACTIVATION],
                expansion=moved[_EXPANSION],
                contraction=moved[_CONTRACTION],
                churn=moved[_CHURN],
                delinquent=moved[_DELINQUENT_SLOT],
                recovered=moved[_RECOVERED],
                closing_mrr=closing,
                opening_delinquent_mrr=opening_delinquent,
                delinquent_churn=moved[_DELINQUENT_CHURN],
                delinquent_change=moved[_DELINQUENT_CHANGE],
                delinquent_mrr=closing_delinquent,
                opening_customers=customers,
                customers=customers + t.customers_change,
                churned_customers=t.customers_lost,
            )
        )
        opening, opening_delinquent = closing, closing_delinquent
        customers += t.customers_change
    return result


# Each movement's weight on the two balances, and its slot, in `MOVEMENTS` order.
_ACTIVE_WEIGHTS = tuple(_ACTIVE[c.value] for c in MOVEMENTS)
_DELINQUENT_WEIGHTS = tuple(_DELINQUENT[c.value] for c in MOVEMENTS)
(
    _NEW,
    _REACTIVATION,
    _EXPANSION,
    _CONTRACTION,
    _CHURN,
    _DELINQUENT_SLOT,
    _RECOVERED,
    _DELINQUENT_CHURN,
    _DELINQUENT_CHANGE,
) = (_SLOT[c.value] for c in (
    Category.NEW, Category.REACTIVATION, Category.EXPANSION, Category.CONTRACTION,
    Category.CHURN, Category.DELINQUENT, Category.RECOVERED, Category.DELINQUENT_CHURN,
    Category.DELINQUENT_CHANGE,
))  # fmt: skip


def _weighted(weights: tuple[int, ...], movements: tuple[int, ...]) -> int:
    return sum(w * a for w, a in zip(weights, movements, strict=True) if w)
