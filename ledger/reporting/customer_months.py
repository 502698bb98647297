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
from itertools import groupby, islice
from typing import Any, TypeVar

from sqlalchemy import Connection, Select, case, func, select

from ledger.reporting import projector
from ledger.rules.entries import Category
from ledger.rules.month_rows import month_rows
from ledger.storage import customer_months as table
from ledger.storage.schema import ALL, ledger_entries

__all__ = ["CHECKPOINT", "catch_up", "replay"]

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
    touched = sorted(
        str(c)
        for c in conn.execute(
            projector.in_chain(select(e.customer_id).distinct()).where(
                done < projector.SEQ, horizon >= projector.SEQ
            )
        ).scalars()
    )
    for chunk in _chunks(touched, CUSTOMER_CHUNK):
        wanted: dict[table.Key, table.Values] = {}
        for customer_id, currency, sums in _customer_sums(conn, horizon, chunk):
            wanted.update(table.rows_of(ALL, ALL, customer_id, currency, month_rows(sums)))
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
    for customer_id, currency, sums in _customer_sums(conn, horizon, None):
        batch.update(table.rows_of(ALL, ALL, customer_id, currency, month_rows(sums)))
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
    conn: Connection, horizon: int, customer_ids: Sequence[str] | None
) -> Iterator[tuple[str, str, dict[int, tuple[int, ...]]]]:
    """Per customer and currency, the movement sums of each month (chain positions up to
    `horizon`), customers in id order."""
    e = ledger_entries.c
    month = _month_sql(conn).label("month")
    sums = [
        func.sum(case((e.category == c.value, e.amount), else_=0)).label(c.value) for c in Category
    ]
    query: Select[Any] = projector.in_chain(select(e.customer_id, e.currency, month, *sums)).where(
        horizon >= projector.SEQ
    )
    if customer_ids is not None:
        query = query.where(e.customer_id.in_(customer_ids))
    query = query.group_by(e.customer_id, e.currency, month).order_by(
        e.customer_id, e.currency, month
    )
    rows = conn.execute(query, execution_options={"yield_per": 5_000})
    for (customer_id, currency), group in groupby(rows, key=lambda r: (r[0], r[1])):
        found = {projector.month_of(r[2]): tuple(int(v or 0) for v in r[3:]) for r in group}
        yield str(customer_id), str(currency), found


def _chunks(items: list[_T], size: int) -> Iterator[list[_T]]:
    iterator = iter(items)
    while batch := list(islice(iterator, size)):
        yield batch
