"""Customers as the workspace lists them: balances at a month end, and one customer's history.

The list reads the `customer_months` projection (`ledger.reporting.customer_months`), whose
month-end balances are running sums of the customer's ledger rows; one customer's history sums
its own rows (a reversal and what it reverses cancel, so every row is summed).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, Connection, and_, case, func, or_, select, true

from ledger.reporting.balances import effects
from ledger.rules.months import Month, span
from ledger.storage.schema import ALL, customer_months, inbox, ledger_entries

SORTS = ("customer", "active", "delinquent", "status", "first_paid")


@dataclass(frozen=True, slots=True)
class CustomerLine:
    customer_id: str
    currency: str
    active: int
    delinquent: int
    first_paid: Month | None

    @property
    def status(self) -> str:
        if self.active > 0:
            return "active, partly delinquent" if self.delinquent > 0 else "active"
        return "delinquent" if self.delinquent > 0 else "churned"


@dataclass(frozen=True, slots=True)
class Listing:
    """One page of the customers at a month end, and how many match in all."""

    lines: list[CustomerLine]
    total: int


def in_force(
    month: Month,
    dimension: str = ALL,
    segment: str | None = ALL,
    *,
    livemode: bool,
    account: str | None = None,
) -> Any:
    """The condition for the `customer_months` rows of one mode (and every account, or one) in
    force at the end of `month`: the latest row of each customer (and currency) up to it.
    `segment` None: every segment."""
    c = customer_months.c
    at = str(month)
    found = and_(
        c.livemode == livemode,
        true() if account is None else c.account == account,
        c.dimension == dimension,
        c.month <= at,
        or_(c.next_month.is_(None), c.next_month > at),
    )
    return found if segment is None else and_(found, c.segment == segment)


def listing(
    conn: Connection,
    month: Month,
    *,
    livemode: bool,
    account: str | None = None,
    currency: str | None = None,
    search: str | None = None,
    named: Iterable[str] = (),
    sort: str = "active",
    descending: bool = True,
    offset: int = 0,
    limit: int = 100,
) -> Listing:
    """Customers with ledger rows (of one mode) effective up to the end of `month`, one line
    per currency:
    those whose id contains `search` (case-insensitive) or who are in `named`, sorted by `sort`
    then by id, `limit` lines from `offset`. Read from the `customer_months` projection (bring
    it up to date first: `customer_months.catch_up`); sorting, counting and paging are the
    database's, so only the page reaches Python."""
    if sort not in SORTS:
        raise ValueError(f"sort must be one of {', '.join(SORTS)}")
    c = customer_months.c
    postgresql = conn.dialect.name == "postgresql"
    # Ids compare as Python strings do (by code point), whatever the database's collation.
    ids = c.customer_id.collate("C" if postgresql else "BINARY")
    first_paid = case((c.first_paid <= str(month), c.first_paid), else_=None)
    keys = {
        "customer": [ids, c.currency],
        "active": [c.active_mrr, ids, c.currency],
        "delinquent": [c.delinquent_mrr, ids, c.currency],
        "status": [_status(c.active_mrr, c.delinquent_mrr), ids, c.currency],
        "first_paid": [first_paid.is_not(None), first_paid, ids, c.currency],
    }[sort]
    query = select(
        c.customer_id,
        c.currency,
        c.active_mrr,
        c.delinquent_mrr,
        first_paid.label("first_paid"),
        func.count().over().label("total"),
    ).where(in_force(month, livemode=livemode, account=account))
    if currency is not None:
        query = query.where(c.currency == currency)
    if search is not None:
        needle = func.lower(c.customer_id).contains(search.lower(), autoescape=True)
        query = query.where(or_(needle, c.customer_id.in_(list(named))))
    ordered = query.order_by(*(k.desc() if descending else k.asc() for k in keys))
    found = conn.execute(ordered.offset(offset).limit(limit)).all()
    if not found and offset > 0:
        total = conn.execute(select(func.count()).select_from(query.subquery())).scalar_one()
    else:
        total = int(found[0].total) if found else 0
    lines = [
        CustomerLine(
            str(cid),
            str(cur),
            int(active),
            int(delinquent),
            None if first is None else Month.parse(first),
        )
        for cid, cur, active, delinquent, first, _ in found
    ]
    return Listing(lines, int(total))


def _status(active: ColumnElement[Any], delinquent: ColumnElement[Any]) -> ColumnElement[Any]:
    """`CustomerLine.status` in SQL, to sort by."""
    return case(
        (active > 0, case((delinquent > 0, "active, partly delinquent"), else_="active")),
        (delinquent > 0, "delinquent"),
        else_="churned",
    )


def plans_at(
    conn: Connection,
    month: Month,
    customer_ids: Sequence[str],
    *,
    livemode: bool,
    account: str | None = None,
) -> dict[tuple[str, str], list[str]]:
    """The plans (prices) each customer holds MRR in at the end of `month`, per currency."""
    c = customer_months.c
    found: dict[tuple[str, str], list[str]] = {}
    query = (
        select(c.customer_id, c.currency, c.segment)
        .where(
            in_force(month, "plan", None, livemode=livemode, account=account),
            c.customer_id.in_(list(customer_ids)),
            (c.active_mrr > 0) | (c.delinquent_mrr > 0),
        )
        .order_by(c.customer_id, c.currency, c.segment)
    )
    for customer_id, currency, plan in conn.execute(query):
        found.setdefault((str(customer_id), str(currency)), []).append(str(plan))
    return found


# --- one customer ----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Row:
    """What the history of one customer folds: one ledger row, reduced."""

    subscription_id: str
    currency: str
    category: str
    amount: int
    effective_at: datetime


@dataclass(frozen=True, slots=True)
class MonthPoint:
    month: Month
    active: int
    delinquent: int


@dataclass(frozen=True, slots=True)
class SubscriptionLine:
    subscription_id: str
    currency: str
    active: int
    delinquent: int
    since: datetime
    last_change: datetime

    @property
    def standing(self) -> str:
        if self.active > 0:
            return "active"
        return "delinquent" if self.delinquent > 0 else "ended"


def rows_of(conn: Connection, customer_id: str) -> list[Row]:
    e = ledger_entries.c
    query = (
        select(e.subscription_id, e.currency, e.category, e.amount, e.effective_at)
        .where(e.customer_id == customer_id)
        .order_by(e.effective_at, e.id)
    )
    return [Row(str(s), str(c), str(k), int(a), at) for s, c, k, a, at in conn.execute(query)]


def history(rows: Iterable[Row], currency: str, last: Month) -> list[MonthPoint]:
    """Active and delinquent MRR at each month end, from the first row's month to `last`."""
    by_month: dict[Month, tuple[int, int]] = {}
    for row in rows:
        if row.currency != currency:
            continue
        month = Month.of(row.effective_at)
        active, delinquent = effects(row.category, row.amount)
        before = by_month.get(month, (0, 0))
        by_month[month] = (before[0] + active, before[1] + delinquent)
    if not by_month:
        return []
    points: list[MonthPoint] = []
    active = delinquent = 0
    for month in span(min(by_month), max(last, max(by_month))):
        moved = by_month.get(month, (0, 0))
        active, delinquent = active + moved[0], delinquent + moved[1]
        points.append(MonthPoint(month, active, delinquent))
    return points


def subscriptions(rows: Iterable[Row], now: datetime) -> list[SubscriptionLine]:
    """Each subscription's MRR in effect now (rows effective later are not counted yet)."""
    found: dict[tuple[str, str], list[Row]] = {}
    for row in rows:
        found.setdefault((row.subscription_id, row.currency), []).append(row)
    lines = []
    for (sub, currency), own in sorted(found.items()):
        active = delinquent = 0
        for row in own:
            if row.effective_at <= now:
                a, d = effects(row.category, row.amount)
                active, delinquent = active + a, delinquent + d
        times = [row.effective_at for row in own]
        lines.append(SubscriptionLine(sub, currency, active, delinquent, min(times), max(times)))
    return lines


@dataclass(frozen=True, slots=True)
class StoredEvent:
    inbox_id: int
    event_id: str
    event_type: str
    created: int
    status: str
    error: str | None


def events_of(conn: Connection, customer_id: str, limit: int = 500) -> list[StoredEvent]:
    query = (
        select(
            inbox.c.id,
            inbox.c.event_id,
            inbox.c.event_type,
            inbox.c.created,
            inbox.c.status,
            inbox.c.error,
        )
        .where(inbox.c.customer_id == customer_id)
        .order_by(inbox.c.created.desc(), inbox.c.id.desc())
        .limit(limit)
    )
    return [
        StoredEvent(int(i), str(ev), str(t), int(c), str(s), err)
        for i, ev, t, c, s, err in conn.execute(query)
    ]


def known(conn: Connection, customer_id: str) -> bool:
    """Whether the ledger or the inbox has anything for this customer."""
    in_ledger = select(ledger_entries.c.id).where(ledger_entries.c.customer_id == customer_id)
    in_inbox = select(inbox.c.id).where(inbox.c.customer_id == customer_id)
    return (
        conn.execute(in_ledger.limit(1)).first() is not None
        or conn.execute(in_inbox.limit(1)).first() is not None
    )
