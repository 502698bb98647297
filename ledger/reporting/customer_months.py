"""MRR per customer per month, kept from the ledger: the `customer_months` rows of the whole
customer (`dimension` 'all'), a projection beside `mrr_month_totals`.

`catch_up` follows the projector (`projector.py`): it reads the hash chain after its own
checkpoint, and for each customer with new rows recomputes that customer's months from its
whole ledger up to the chain's horizon (as the projector corrects its customer counts), all in
one transaction with the checkpoint. A first call, and `replay`, rebuild every customer with one
aggregate statement (one row per customer, currency and month reaches Python). The month-end
balances are running sums of the same rows the report sums, so for every month the customers'
active and delinquent MRR add up to the report's closing and delinquent MRR, to the cent.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from decimal import Decimal
from itertools import groupby, islice
from typing import Any, TypeVar

from sqlalchemy import Connection, Select, and_, case, func, select, tuple_

from ledger.reporting import projector
from ledger.reporting.customers import in_force
from ledger.rules.entries import Category
from ledger.rules.month_rows import month_rows
from ledger.rules.months import Month
from ledger.rules.sources import Unit
from ledger.storage import customer_months as table
from ledger.storage.schema import ALL, customer_months, ledger_entries

__all__ = ["CHECKPOINT", "CustomerMonth", "Top", "catch_up", "monthly", "replay", "top"]

CHECKPOINT = "customer_months"
CUSTOMER_CHUNK = 500
_T = TypeVar("_T")


def catch_up(conn: Connection) -> int:
    """Bring the customers with ledger rows since the checkpoint up to date; returns how many
    customers were recomputed."""
    done = projector.lock_checkpoint(conn, CHECKPOINT)
    horizon = projector.safe_horizon(conn)
    if horizon <= done:
        return 0
    if done == 0:
        return _rebuild(conn, horizon)
    e = ledger_entries.c
    query = select(e.customer_id, projector.SOURCE_ACCOUNT, projector.SOURCE_LIVEMODE).distinct()
    touched = sorted(
        Unit(str(customer_id), str(account), bool(livemode))
        for customer_id, account, livemode in conn.execute(
            projector.with_source(projector.in_chain(query)).where(
                done < projector.SEQ, horizon >= projector.SEQ
            )
        )
    )
    for chunk in _chunks(touched, CUSTOMER_CHUNK):
        wanted: dict[table.Key, table.Values] = {}
        for unit, currency, sums in _customer_sums(conn, horizon, chunk):
            wanted.update(table.rows_of(unit, ALL, ALL, currency, month_rows(sums)))
        table.replace(conn, chunk, wanted, segments=False)
    projector.save_checkpoint(conn, horizon, CHECKPOINT)
    return len(touched)


def replay(conn: Connection) -> int:
    """Rebuild every customer's months from the whole ledger; returns customers."""
    projector.lock_checkpoint(conn, CHECKPOINT)
    return _rebuild(conn, projector.safe_horizon(conn))


def _rebuild(conn: Connection, horizon: int) -> int:
    table.clear(conn, segments=False)
    customers = 0
    batch: dict[table.Key, table.Values] = {}
    for unit, currency, sums in _customer_sums(conn, horizon, None):
        batch.update(table.rows_of(unit, ALL, ALL, currency, month_rows(sums)))
        customers += 1
        if len(batch) >= 5_000:
            _insert(conn, batch)
            batch = {}
    _insert(conn, batch)
    projector.save_checkpoint(conn, horizon, CHECKPOINT)
    return customers


def _insert(conn: Connection, rows: dict[table.Key, table.Values]) -> None:
    if rows:
        table.replace(conn, [], rows, segments=False)


def _month_sql(conn: Connection) -> Any:
    at = ledger_entries.c.effective_at
    if conn.dialect.name == "postgresql":
        return func.date_trunc("month", at)
    return func.substr(at, 1, 7)


def _customer_sums(
    conn: Connection, horizon: int, units: Sequence[Unit] | None
) -> Iterator[tuple[Unit, str, dict[int, tuple[int, ...]]]]:
    """Per customer (of one source) and currency, the movement sums of each month (chain
    positions up to `horizon`), customers in id order."""
    e = ledger_entries.c
    month = _month_sql(conn).label("month")
    sums = [
        func.sum(case((e.category == c.value, e.amount), else_=0)).label(c.value) for c in Category
    ]
    account, livemode = projector.SOURCE_ACCOUNT.element, projector.SOURCE_LIVEMODE.element
    keys = (e.customer_id, account, livemode, e.currency)
    query: Select[Any] = projector.with_source(
        projector.in_chain(select(*keys, month, *sums))
    ).where(horizon >= projector.SEQ)
    if units is not None:
        query = query.where(tuple_(e.customer_id, account, livemode).in_([tuple(u) for u in units]))
    query = query.group_by(*keys, month).order_by(*keys, month)
    rows = conn.execute(query, execution_options={"yield_per": 5_000})
    for (customer_id, source, live, currency), group in groupby(rows, key=lambda r: r[:4]):
        found = {projector.month_of(r[4]): tuple(int(v or 0) for v in r[5:]) for r in group}
        yield Unit(str(customer_id), str(source), bool(live)), str(currency), found


def _chunks(items: list[_T], size: int) -> Iterator[list[_T]]:
    iterator = iter(items)
    while batch := list(islice(iterator, size)):
        yield batch


# --- reading ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class CustomerMonth:
    """One customer in one month: month-end MRR, what moved it, its plans."""

    customer_id: str
    currency: str
    month: Month
    active: int
    delinquent: int
    movements: tuple[int, ...]  # this month's, in `Category` order
    plans: tuple[str, ...]  # prices the customer holds MRR in at the month end

    @property
    def category(self) -> str | None:
        """The month's largest movement by amount (the first in report order on a tie)."""
        largest = max(range(len(self.movements)), key=lambda i: (abs(self.movements[i]), -i))
        return _CATEGORIES[largest].value if self.movements[largest] else None


_CATEGORIES = tuple(Category)
_VALUES = (*(c.value for c in Category), "active_mrr", "delinquent_mrr")


def monthly(
    conn: Connection,
    first: Month,
    last: Month,
    currency: str,
    *,
    livemode: bool,
    account: str | None = None,
) -> Iterator[CustomerMonth]:
    """Every customer of one mode with MRR, or a movement, in each month `first`..`last` (bring the
    projection up to date first): customers in id order, then months. For each month, the
    customers' active and delinquent MRR add up to the report's closing and delinquent MRR."""
    c = customer_months.c
    own = and_(c.livemode == livemode, c.currency == currency, c.month <= str(last))
    if account is not None:
        own = and_(own, c.account == account)
    ids_query = (
        select(c.customer_id)
        .where(c.dimension == ALL, c.segment == ALL, own)
        .distinct()
        .order_by(c.customer_id)
    )
    ids = [str(i) for i in conn.execute(ids_query).scalars()]
    for chunk in _chunks(ids, CUSTOMER_CHUNK):
        # A customer id in two accounts is two customers: each expanded on its own.
        rows = conn.execute(
            select(c.customer_id, c.account, c.month, *(c[n] for n in _VALUES))
            .where(c.dimension == ALL, c.segment == ALL, own, c.customer_id.in_(chunk))
            .order_by(c.customer_id, c.account, c.month)
        ).all()
        plan_rows = conn.execute(
            select(c.customer_id, c.account, c.segment, c.month, c.active_mrr, c.delinquent_mrr)
            .where(c.dimension == "plan", own, c.customer_id.in_(chunk))
            .order_by(c.customer_id, c.account, c.segment, c.month)
        ).all()
        plans: dict[tuple[str, str], dict[str, list[tuple[int, bool]]]] = {}
        for customer_id, source, plan, month, active, delinquent in plan_rows:
            held = int(active) > 0 or int(delinquent) > 0
            per = plans.setdefault((str(customer_id), str(source)), {}).setdefault(str(plan), [])
            per.append((Month.parse(month).index, held))
        for (customer_id, source), group in groupby(rows, key=lambda r: (str(r[0]), str(r[1]))):
            yield from _expand(
                customer_id,
                currency,
                [(r[0], *r[2:]) for r in group],
                plans.get((customer_id, source), {}),
                first,
                last,
            )


def _expand(
    customer_id: str,
    currency: str,
    rows: Sequence[Any],
    plans: dict[str, list[tuple[int, bool]]],
    first: Month,
    last: Month,
) -> Iterator[CustomerMonth]:
    by_month = {Month.parse(r[1]).index: r for r in rows}
    none = (0,) * len(_CATEGORIES)
    active = delinquent = 0
    for index in range(min(by_month), last.index + 1):
        row = by_month.get(index)
        if row is not None:
            active, delinquent = int(row[-2]), int(row[-1])
        if index < first.index:
            continue
        moved = tuple(int(v) for v in row[2:-2]) if row is not None else none
        if not (active or delinquent or any(moved)):
            continue
        held = tuple(sorted(p for p, history in plans.items() if _held(history, index)))
        yield CustomerMonth(customer_id, currency, Month(index), active, delinquent, moved, held)


def _held(history: list[tuple[int, bool]], index: int) -> bool:
    found = False
    for month, held in history:
        if month > index:
            break
        found = held
    return found


@dataclass(frozen=True, slots=True)
class Top:
    """The customers with the most active MRR at a month end, and their share of it."""

    month: Month
    currency: str
    customers: list[tuple[str, int]]  # (customer, active MRR), largest first
    total_mrr: int
    total_customers: int
    top10_mrr: int

    @property
    def top10_share(self) -> Decimal | None:
        if self.total_mrr == 0:
            return None
        return (Decimal(self.top10_mrr) / Decimal(self.total_mrr)).quantize(Decimal("0.0001"))


def top(
    conn: Connection,
    month: Month,
    currency: str,
    limit: int = 10,
    *,
    livemode: bool,
    account: str | None = None,
) -> Top:
    """The `limit` largest customers of one mode by active MRR at the end of `month`, and the
    share of the month's MRR the ten largest hold (concentration)."""
    c = customer_months.c
    where = and_(
        in_force(month, livemode=livemode, account=account),
        c.currency == currency,
        c.active_mrr > 0,
    )
    ids = c.customer_id.collate("C" if conn.dialect.name == "postgresql" else "BINARY")
    found = conn.execute(
        select(c.customer_id, c.active_mrr, func.sum(c.active_mrr).over(), func.count().over())
        .where(where)
        .order_by(c.active_mrr.desc(), ids)
        .limit(max(limit, 10))
    ).all()
    total, count = (int(found[0][2]), int(found[0][3])) if found else (0, 0)
    largest = [(str(cid), int(mrr)) for cid, mrr, _, _ in found]
    return Top(
        month,
        currency,
        largest[:limit],
        total,
        count,
        sum(mrr for _, mrr in largest[:10]),
    )
