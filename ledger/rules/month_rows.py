"""A customer's months, one row per month its figures moved: what `customer_months` stores.

From the movement sums per month (in `Category` order) of one customer in one currency, whole
or within a segment: each month's month-end active and delinquent MRR (running sums), its
count change and loss at that month end (counted: active MRR > 0; lost: counted a month
earlier and holding neither balance now, docs/mrr-rules.md §6.2), the month of its first `new`
MRR, and the next row's month. A month whose sums are all zero changes nothing and has no row.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from ledger.rules.entries import Category, active_effect, delinquent_effect

__all__ = ["MonthRow", "month_rows"]

_CATEGORIES = tuple(Category)
_NEW = _CATEGORIES.index(Category.NEW)
_ACTIVE = tuple((slot, w) for slot, c in enumerate(_CATEGORIES) if (w := active_effect(c, 1)))
_DELINQUENT = tuple(
    (slot, w) for slot, c in enumerate(_CATEGORIES) if (w := delinquent_effect(c, 1))
)


@dataclass(frozen=True, slots=True)
class MonthRow:
    month: int  # Month.index
    next_month: int | None
    movements: tuple[int, ...]  # in `Category` order
    active: int
    delinquent: int
    customers_change: int
    customers_lost: int
    first_paid: int | None


def month_rows(sums: Mapping[int, Sequence[int]]) -> list[MonthRow]:
    months = [m for m in sorted(sums) if any(sums[m])]
    first_paid = next((m for m in months if sums[m][_NEW] > 0), None)
    rows: list[MonthRow] = []
    active = delinquent = 0
    for position, month in enumerate(months):
        moved = tuple(sums[month])
        was_counted = active > 0
        for slot, weight in _ACTIVE:
            active += weight * moved[slot]
        for slot, weight in _DELINQUENT:
            delinquent += weight * moved[slot]
        counted = active > 0
        change = int(counted) - int(was_counted)
        lost = int(was_counted and not counted and delinquent <= 0)
        following = months[position + 1] if position + 1 < len(months) else None
        rows.append(MonthRow(month, following, moved, active, delinquent, change, lost, first_paid))
    return rows
