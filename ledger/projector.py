"""The incremental projector: ledger rows → stored monthly totals (`mrr_month_totals`).

`catch_up` applies only rows the projector has not read yet and moves its checkpoint in the
same transaction as the totals: it streams them (a server-side cursor on PostgreSQL). `replay`
(and a first `catch_up`) rebuilds from scratch with one aggregate statement computed by the
database (`_rebuild_sql`, the `Projection` fold in SQL): only a few rows per currency and month
reach Python, so memory does not grow with the ledger, and it runs several times faster than
folding each row in Python (bench/projection.py).

Which rows are safe to read. Ledger ids come from a sequence, so on PostgreSQL a transaction
can commit id 10 after another committed id 11: a reader that moved its checkpoint to 11 would
skip 10 for ever. The projector therefore reads in the order of the hash chain (`ledger_chain`,
migration 0003), not of ids: a link's `seq` is assigned by the insert trigger while it holds
the chain's transaction-level lock, so a transaction holding `seq` N commits before any other
can take N + 1, and the committed links are always a prefix of the chain. The checkpoint
(`last_entry_id`, named before the chain existed) is that chain position, and the horizon is
simply the highest committed `seq`: no table lock, so the restricted application role (which
may not lock the ledger) can run the projector. Two projectors serialize on the checkpoint row
(`FOR UPDATE`).

Call `catch_up` in a transaction of its own, never inside one that writes ledger rows (a writer
holding its own insert lock would wait for the other writers while they wait for it). Keep the
default READ COMMITTED isolation: each statement must see what committed before it.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from itertools import islice
from typing import Any, TypeVar

from sqlalchemy import Connection, Select, TextClause, delete, func, select, text, update

from ledger.balances import (
    ACTIVE_WEIGHTS,
    DELINQUENT_WEIGHTS,
    MOVEMENTS,
    MonthTotals,
    Posting,
    customer_changes,
    effects,
)
from ledger.db import dialect_insert
from ledger.months import Month, month_index
from ledger.schema import MONTH_TOTAL_COLUMNS, ledger_chain, ledger_entries, mrr_month_totals
from ledger.schema import projector_checkpoints as checkpoints

__all__ = [
    "CHECKPOINT",
    "catch_up",
    "checkpoint",
    "entry_columns",
    "in_effective_order",
    "postings",
    "replay",
    "stored_currencies",
    "stored_totals",
]

CHECKPOINT = "mrr_balances"
STREAM_BATCH = 5_000
CUSTOMER_CHUNK = 500
REBUILD_WORK_MEM = "64MB"
_SLOT = {category.value: slot for slot, category in enumerate(MOVEMENTS)}
_CHANGE, _LOST = len(MOVEMENTS), len(MOVEMENTS) + 1
_T = TypeVar("_T")
EntryRow = tuple[str, str, str, int, datetime]


def catch_up(conn: Connection) -> int:
    """Apply ledger rows appended since the checkpoint; returns how many were read."""
    done = _lock_checkpoint(conn)
    horizon = _safe_horizon(conn)
    if horizon <= done:
        return 0
    if done == 0:
        return _rebuild(conn)
    sums: dict[tuple[str, int], list[int]] = {}
    touched: set[str] = set()
    read = 0
    rows = _stream(conn, _in_chain(entry_columns()).where(done < _SEQ, horizon >= _SEQ))
    for customer_id, currency, category, amount, effective_at in rows:
        _row(sums, currency, month_index(effective_at))[_SLOT[category]] += amount
        touched.add(customer_id)
        read += 1
    for chunk in _chunks(sorted(touched), CUSTOMER_CHUNK):
        _count_changes(conn, chunk, done, horizon, sums)
    _add_totals(conn, sums)
    _save_checkpoint(conn, horizon)
    return read


def replay(conn: Connection) -> int:
    """Rebuild every stored total from the whole ledger; returns how many rows were read."""
    _lock_checkpoint(conn)
    return _rebuild(conn)


def checkpoint(conn: Connection) -> int:
    query = select(checkpoints.c.last_entry_id).where(checkpoints.c.name == CHECKPOINT)
    return int(conn.execute(query).scalar_one_or_none() or 0)


def stored_currencies(conn: Connection) -> list[str]:
    query = select(mrr_month_totals.c.currency).distinct().order_by(mrr_month_totals.c.currency)
    return [str(c) for c in conn.execute(query).scalars()]


def stored_totals(conn: Connection, currency: str, last: Month) -> list[MonthTotals]:
    query = (
        select(mrr_month_totals)
        .where(mrr_month_totals.c.currency == currency, mrr_month_totals.c.month <= str(last))
        .order_by(mrr_month_totals.c.month)
    )
    return [
        MonthTotals(
            currency=row.currency,
            month=Month.parse(row.month),
            movements=tuple(int(row._mapping[c.value]) for c in MOVEMENTS),
            customers_change=int(row.customers_change),
            customers_lost=int(row.customers_lost),
        )
        for row in conn.execute(query)
    ]


# --- reading the ledger ----------------------------------------------------------------------


def entry_columns() -> Select[EntryRow]:
    """The columns a projection reads; callers add their own conditions."""
    e = ledger_entries.c
    return select(e.customer_id, e.currency, e.category, e.amount, e.effective_at)


def _stream(conn: Connection, query: Select[EntryRow]) -> Iterator[EntryRow]:
    """Rows in batches through a server-side cursor (PostgreSQL); SQLite's cursor is lazy."""
    result = conn.execute(query, execution_options={"yield_per": STREAM_BATCH})
    for row in result:
        yield row.customer_id, row.currency, row.category, int(row.amount), row.effective_at


def in_effective_order(conn: Connection, query: Select[EntryRow]) -> Iterator[EntryRow]:
    """Rows of `query` (built on `entry_columns`), streamed in effective order."""
    return _stream(conn, query.order_by(ledger_entries.c.effective_at, ledger_entries.c.id))


def postings(conn: Connection, query: Select[EntryRow]) -> Iterator[Posting]:
    """Rows of `query` (built on `entry_columns`) as postings, in effective order."""
    for customer_id, currency, category, amount, effective_at in in_effective_order(conn, query):
        yield Posting(
            customer_id, currency, category, amount, month_index(effective_at), currency, amount
        )


# --- checkpoint and horizon ------------------------------------------------------------------


def _lock_checkpoint(conn: Connection) -> int:
    query = select(checkpoints.c.last_entry_id).where(checkpoints.c.name == CHECKPOINT)
    if conn.dialect.name == "postgresql":
        query = query.with_for_update()
    found = conn.execute(query).scalar_one_or_none()
    if found is None:
        conn.execute(
            dialect_insert(conn, checkpoints)
            .values(name=CHECKPOINT, last_entry_id=0, updated_at=datetime.now(UTC))
            .on_conflict_do_nothing(index_elements=["name"])
        )
        found = conn.execute(query).scalar_one()
    return int(found)


_SEQ = ledger_chain.c.seq


def _in_chain(query: Select[Any]) -> Select[Any]:
    """`query` over ledger_entries, joined to each row's position in the hash chain."""
    return query.join_from(
        ledger_entries, ledger_chain, ledger_chain.c.entry_id == ledger_entries.c.id
    )


def _safe_horizon(conn: Connection) -> int:
    return int(conn.execute(select(func.coalesce(func.max(_SEQ), 0))).scalar_one())


def _save_checkpoint(conn: Connection, horizon: int) -> None:
    conn.execute(
        update(checkpoints)
        .where(checkpoints.c.name == CHECKPOINT)
        .values(last_entry_id=horizon, updated_at=datetime.now(UTC))
    )


# --- writing totals --------------------------------------------------------------------------


def _rebuild(conn: Connection) -> int:
    """All totals recomputed inside the database by one statement (`_rebuild_sql`): a few rows
    per currency and month come back, whatever the size of the ledger. Returns rows read."""
    conn.execute(delete(mrr_month_totals))
    sums: dict[tuple[str, int], list[int]] = {}
    read = horizon = 0
    postgresql = conn.dialect.name == "postgresql"
    if postgresql:
        # The customer-month sorts stay in memory, and no JIT: compiling this statement took
        # about a third of its time at 1M rows. Both restored after the statement.
        saved = conn.execute(
            text("SELECT current_setting('work_mem'), current_setting('jit')")
        ).one()
        _set_local(conn, REBUILD_WORK_MEM, "off")
    for kind, currency, month, category, first, second in conn.execute(
        _rebuild_sql(conn.dialect.name)
    ):
        if kind == "horizon":
            horizon = int(first)
            continue
        row = _row(sums, currency, _month_of(month))
        if kind == "movement":
            row[_SLOT[category]] += int(second)
            read += int(first)
        else:
            row[_CHANGE] += int(first)
            row[_LOST] += int(second)
    if postgresql:
        _set_local(conn, str(saved[0]), str(saved[1]))
    rows = [
        {
            "currency": currency,
            "month": str(Month(month)),
            **dict(zip(MONTH_TOTAL_COLUMNS, values, strict=True)),
        }
        for (currency, month), values in sorted(sums.items())
    ]
    for batch in _chunks(rows, 1_000):
        conn.execute(mrr_month_totals.insert(), batch)
    _save_checkpoint(conn, horizon)
    return read


def _set_local(conn: Connection, work_mem: str, jit: str) -> None:
    conn.execute(
        text("SELECT set_config('work_mem', :w, true), set_config('jit', :j, true)"),
        {"w": work_mem, "j": jit},
    )


def _month_of(value: datetime | str) -> int:
    """A month as the rebuild query gives it: PostgreSQL's date_trunc, SQLite's 'YYYY-MM'."""
    if isinstance(value, str):
        return Month.parse(value).index
    return value.year * 12 + value.month - 1


def _rebuild_sql(dialect: str) -> TextClause:
    """The `Projection` fold (ledger/balances.py) as one SQL statement over the whole ledger.

    One statement, so one snapshot: the rows it sees are exactly those whose chain links it
    sees (a row and its link commit together), and those links are the chain's committed
    prefix, up to the `horizon` it returns; no join to the chain is needed. (A row inserted
    with the triggers disabled has no link: a rebuild counts it, `catch_up` never reads it;
    `mrr verify` reports it.)

    Movements: sums per currency, month and category. Customer counts: per customer (and
    currency) and month, the net active and delinquent changes; running sums over the
    customer's months give its month-end standing; it counts at a month end when its active
    balance is positive, and is lost when it counted at its previous month end with rows and
    now has neither balance. Months without rows change nothing for it, as in the fold (where
    a customer's bucket is its currency).
    """
    if dialect == "postgresql":
        month, false, customer = "date_trunc('month', e.effective_at)", "false", 'COLLATE "C"'
    else:  # stored as 'YYYY-MM-DD HH:MM:SS.ffffff' in UTC (ledger.db.UTCDateTime)
        month, false, customer = "substr(e.effective_at, 1, 7)", "0", ""

    def weighted(weights: dict[str, int]) -> str:
        cases = " ".join(f"WHEN '{c}' THEN {w} * e.amount" for c, w in weights.items() if w)
        return f"sum(CASE e.category {cases} ELSE 0 END)"

    window = "PARTITION BY customer_id, currency ORDER BY month"
    return text(
        f"""
WITH customer_months AS (
  SELECT e.customer_id {customer} AS customer_id, e.currency, {month} AS month,
    {weighted(ACTIVE_WEIGHTS)} AS active_change,
    {weighted(DELINQUENT_WEIGHTS)} AS delinquent_change
  FROM ledger_entries e
  GROUP BY 1, 2, 3
), standings AS (
  SELECT currency, month, customer_id,
    sum(active_change) OVER ({window}) > 0 AS counted,
    sum(delinquent_change) OVER ({window}) > 0 AS owing
  FROM customer_months
), moves AS (
  SELECT currency, month, counted, owing, lag(counted, 1, {false}) OVER ({window}) AS was_counted
  FROM standings
)
SELECT 'movement' AS kind, e.currency, {month} AS month, e.category,
  count(*) AS first, sum(e.amount) AS second
FROM ledger_entries e
GROUP BY 2, 3, 4
UNION ALL
SELECT 'count', currency, month, NULL,
  sum(CASE WHEN counted THEN 1 ELSE -1 END),
  sum(CASE WHEN NOT counted AND NOT owing THEN 1 ELSE 0 END)
FROM moves
WHERE counted <> was_counted
GROUP BY currency, month
UNION ALL
SELECT 'horizon', NULL, NULL, NULL, coalesce(max(seq), 0), 0 FROM ledger_chain
"""
    )


def _count_changes(
    conn: Connection,
    customer_ids: list[str],
    done: int,
    horizon: int,
    sums: dict[tuple[str, int], list[int]],
) -> None:
    """Correct month-end customer counts for customers with new rows: their counts computed
    from their whole history up to the horizon, minus the same up to the old checkpoint."""
    e = ledger_entries.c
    query = _in_chain(
        select(e.customer_id, e.currency, e.category, e.amount, e.effective_at, _SEQ)
    ).where(e.customer_id.in_(customer_ids), horizon >= _SEQ)
    before: dict[tuple[str, str], dict[int, tuple[int, int]]] = {}
    after: dict[tuple[str, str], dict[int, tuple[int, int]]] = {}
    for row in conn.execute(query):
        key = (row.customer_id, row.currency)
        month = month_index(row.effective_at)
        active, delinquent = effects(row.category, int(row.amount))
        histories = (after, before) if row.seq <= done else (after,)
        for found in histories:
            per_month = found.setdefault(key, {})
            old_active, old_delinquent = per_month.get(month, (0, 0))
            per_month[month] = (old_active + active, old_delinquent + delinquent)
    for key, history in after.items():
        currency = key[1]
        new = customer_changes(history, currency)
        old = customer_changes(before.get(key, {}), currency)
        for month in new.keys() | old.keys():
            change_new, lost_new = new.get(month, (0, 0))
            change_old, lost_old = old.get(month, (0, 0))
            if (change_new, lost_new) != (change_old, lost_old):
                row_sums = _row(sums, currency, month)
                row_sums[_CHANGE] += change_new - change_old
                row_sums[_LOST] += lost_new - lost_old


def _row(sums: dict[tuple[str, int], list[int]], currency: str, month: int) -> list[int]:
    found = sums.get((currency, month))
    if found is None:
        found = sums[(currency, month)] = [0] * len(MONTH_TOTAL_COLUMNS)
    return found


def _add_totals(conn: Connection, sums: dict[tuple[str, int], list[int]]) -> None:
    rows = [
        {
            "currency": currency,
            "month": str(Month(month)),
            **dict(zip(MONTH_TOTAL_COLUMNS, values, strict=True)),
        }
        for (currency, month), values in sorted(sums.items())
        if any(values)
    ]
    if not rows:
        return
    statement = dialect_insert(conn, mrr_month_totals)
    statement = statement.on_conflict_do_update(
        index_elements=["currency", "month"],
        set_={
            name: mrr_month_totals.c[name] + statement.excluded[name]
            for name in MONTH_TOTAL_COLUMNS
        },
    )
    for batch in _chunks(rows, 1_000):
        conn.execute(statement, batch)


def _totals_row(t: MonthTotals) -> dict[str, object]:
    values = (*t.movements, t.customers_change, t.customers_lost)
    return {
        "currency": t.currency,
        "month": str(t.month),
        **dict(zip(MONTH_TOTAL_COLUMNS, values, strict=True)),
    }


def _chunks(items: list[_T], size: int) -> Iterator[list[_T]]:
    iterator = iter(items)
    while batch := list(islice(iterator, size)):
        yield batch
