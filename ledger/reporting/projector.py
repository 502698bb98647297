"""The incremental projector: ledger rows → stored monthly totals (`mrr_month_totals`).

`catch_up` applies only rows the projector has not read yet and moves its checkpoint in the
same transaction as the totals: it streams them (a server-side cursor on PostgreSQL). `replay`
(and a first `catch_up`) rebuilds from scratch with aggregate SQL computed by the database
(`_rebuild_sql`, the `Projection` fold in SQL; on PostgreSQL over two ranges of customers at
once, reading one exported snapshot): one row per currency and month reaches Python, so memory
does not grow with the ledger, and it runs about 2x the time of a plain GROUP BY of the same
rows (bench/projection.py).

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

import re
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from itertools import islice
from typing import Any, TypeVar

from sqlalchemy import (
    ColumnElement,
    Connection,
    Engine,
    Select,
    TextClause,
    delete,
    func,
    literal_column,
    select,
    text,
    update,
)

from ledger.reporting.balances import (
    ACTIVE_WEIGHTS,
    DELINQUENT_WEIGHTS,
    MOVEMENTS,
    MonthTotals,
    customer_changes,
    effects,
)
from ledger.rules.entries import Category
from ledger.rules.months import Month, month_index
from ledger.storage.db import dialect_insert
from ledger.storage.schema import (
    ENTRY_COUNT_COLUMNS,
    MONTH_TOTAL_COLUMNS,
    inbox,
    ledger_chain,
    ledger_entries,
    mrr_month_totals,
)
from ledger.storage.schema import projector_checkpoints as checkpoints

__all__ = [
    "CHECKPOINT",
    "SOURCE_ACCOUNT",
    "SOURCE_LIVEMODE",
    "STREAM_BATCH",
    "catch_up",
    "checkpoint",
    "entry_columns",
    "entry_totals",
    "in_chain",
    "in_effective_order",
    "lag",
    "lock_checkpoint",
    "replay",
    "safe_horizon",
    "save_checkpoint",
    "stored_currencies",
    "stored_modes",
    "stored_totals",
    "with_source",
]

CHECKPOINT = "mrr_balances"
STREAM_BATCH = 5_000
CUSTOMER_CHUNK = 500
# For the rebuild statements, each in its own read-only transaction. The planner, left alone,
# hashes the whole ledger by customer and month and then sorts the result; reading the
# customer-month index in order (migration 0005) streams instead and took about half as long at
# 1M rows (bench/projection.py). Hash tables stay in memory, and no JIT: compiling this
# statement took about a third of its time.
REBUILD_SETTINGS = {
    "work_mem": "64MB",
    "jit": "off",
    "enable_seqscan": "off",
    "max_parallel_workers_per_gather": "0",
}
# Customer ranges rebuilt at once, each on its own connection (about the server's cores).
REBUILD_PARTS = 2
_SNAPSHOT_ID = re.compile(r"[0-9A-F]+-[0-9A-F]+(-[0-9]+)?")
_SLOT = {category.value: slot for slot, category in enumerate(MOVEMENTS)}
_CHANGE, _LOST = len(MOVEMENTS), len(MOVEMENTS) + 1
_COUNTED = len(MOVEMENTS) + 2  # the slot of the first entry count (MONTH_TOTAL_COLUMNS' order)
_COUNT_COLUMN = dict(zip(MOVEMENTS, ENTRY_COUNT_COLUMNS, strict=True))
_T = TypeVar("_T")
EntryRow = tuple[str, str, str, int, datetime]
_Cell = tuple[bool, str, int]  # (livemode, currency, month index): a row of mrr_month_totals


def catch_up(conn: Connection) -> int:
    """Apply ledger rows appended since the checkpoint; returns how many were read."""
    done = _lock_checkpoint(conn)
    horizon = _safe_horizon(conn)
    if horizon <= done:
        return 0
    if done == 0:
        return _rebuild(conn)
    sums: dict[_Cell, list[int]] = {}
    touched: set[str] = set()
    read = 0
    e = ledger_entries.c
    query = _in_chain(
        with_source(
            select(e.customer_id, _LIVEMODE, e.currency, e.category, e.amount, e.effective_at)
        )
    ).where(done < _SEQ, horizon >= _SEQ)
    result = conn.execute(query, execution_options={"yield_per": STREAM_BATCH})
    for customer_id, livemode, currency, category, amount, effective_at in result:
        month_sums = _row(sums, (bool(livemode), currency), month_index(effective_at))
        month_sums[_SLOT[category]] += int(amount)
        month_sums[_COUNTED + _SLOT[category]] += 1
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


def checkpoint(conn: Connection, name: str = CHECKPOINT) -> int:
    query = select(checkpoints.c.last_entry_id).where(checkpoints.c.name == name)
    return int(conn.execute(query).scalar_one_or_none() or 0)


def lag(conn: Connection) -> int:
    """Ledger rows appended but not yet in the stored monthly totals."""
    return max(0, _safe_horizon(conn) - checkpoint(conn))


def stored_currencies(conn: Connection, livemode: bool) -> list[str]:
    t = mrr_month_totals.c
    query = select(t.currency).where(t.livemode == livemode).distinct().order_by(t.currency)
    return [str(c) for c in conn.execute(query).scalars()]


def stored_modes(conn: Connection) -> list[bool]:
    """The modes the stored totals hold figures of (live first)."""
    query = select(mrr_month_totals.c.livemode).distinct()
    return sorted((bool(m) for m in conn.execute(query).scalars()), reverse=True)


def stored_totals(
    conn: Connection, currency: str, last: Month, livemode: bool
) -> list[MonthTotals]:
    query = (
        select(mrr_month_totals)
        .where(
            mrr_month_totals.c.livemode == livemode,
            mrr_month_totals.c.currency == currency,
            mrr_month_totals.c.month <= str(last),
        )
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


def entry_totals(
    conn: Connection,
    *,
    month: Month | None = None,
    category: Category | None = None,
    currency: str | None = None,
    livemode: bool | None = None,
) -> tuple[int, dict[str, int]]:
    """How many ledger entries a month, category and currency filter (each optional) holds,
    and their amounts summed per currency (minor units), from the stored totals: what counting
    the ledger's rows gives, as of the last `catch_up`, in one row per currency and month read."""
    t = mrr_month_totals.c
    chosen = [category] if category is not None else list(MOVEMENTS)
    count: ColumnElement[Any] = sum((t[_COUNT_COLUMN[c]] for c in chosen), literal_column("0"))
    amount: ColumnElement[Any] = sum((t[c.value] for c in chosen), literal_column("0"))
    query = select(t.currency, func.sum(count), func.sum(amount)).group_by(t.currency)
    if month is not None:
        query = query.where(t.month == str(month))
    if currency is not None:
        query = query.where(t.currency == currency)
    if livemode is not None:
        query = query.where(t.livemode == livemode)
    found = {
        str(code): (int(n), int(total))
        for code, n, total in conn.execute(query.order_by(t.currency))
        if n
    }
    return sum(n for n, _ in found.values()), {c: total for c, (_, total) in found.items()}


# --- reading the ledger ----------------------------------------------------------------------


def entry_columns() -> Select[EntryRow]:
    """The columns a projection reads; callers add their own conditions."""
    e = ledger_entries.c
    return select(e.customer_id, e.currency, e.category, e.amount, e.effective_at)


# An entry's mode is its source event's inbox row's (migration 0015).
_LIVEMODE: ColumnElement[Any] = func.coalesce(inbox.c.livemode, False).label("livemode")
_ACCOUNT: ColumnElement[Any] = func.coalesce(inbox.c.account, "").label("account")
SOURCE_LIVEMODE, SOURCE_ACCOUNT = _LIVEMODE, _ACCOUNT


def with_source(query: Select[Any]) -> Select[Any]:
    """`query` over ledger_entries, joined to each row's source event in the inbox (whose
    `livemode` and `account` are the entry's source)."""
    return query.join_from(
        ledger_entries, inbox, inbox.c.event_id == ledger_entries.c.source_event_id, isouter=True
    )


def _stream(conn: Connection, query: Select[EntryRow]) -> Iterator[EntryRow]:
    """Rows in batches through a server-side cursor (PostgreSQL); SQLite's cursor is lazy."""
    result = conn.execute(query, execution_options={"yield_per": STREAM_BATCH})
    for row in result:
        yield row.customer_id, row.currency, row.category, int(row.amount), row.effective_at


def in_effective_order(conn: Connection, query: Select[EntryRow]) -> Iterator[EntryRow]:
    """Rows of `query` (built on `entry_columns`), streamed in effective order."""
    return _stream(conn, query.order_by(ledger_entries.c.effective_at, ledger_entries.c.id))


# --- checkpoint and horizon ------------------------------------------------------------------


def _lock_checkpoint(conn: Connection, name: str = CHECKPOINT) -> int:
    query = select(checkpoints.c.last_entry_id).where(checkpoints.c.name == name)
    if conn.dialect.name == "postgresql":
        query = query.with_for_update()
    found = conn.execute(query).scalar_one_or_none()
    if found is None:
        conn.execute(
            dialect_insert(conn, checkpoints)
            .values(name=name, last_entry_id=0, updated_at=datetime.now(UTC))
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


def _save_checkpoint(conn: Connection, horizon: int, name: str = CHECKPOINT) -> None:
    conn.execute(
        update(checkpoints)
        .where(checkpoints.c.name == name)
        .values(last_entry_id=horizon, updated_at=datetime.now(UTC))
    )


# --- writing totals --------------------------------------------------------------------------


def _rebuild(conn: Connection) -> int:
    """All totals recomputed inside the database (`_rebuild_sql`): one row per currency and
    month comes back, whatever the size of the ledger. Returns rows read."""
    conn.execute(delete(mrr_month_totals))
    if conn.dialect.name == "postgresql":
        found, horizon = _rebuild_postgresql(conn)
    else:
        found = [tuple(row) for row in conn.execute(_rebuild_sql("sqlite", None, None))]
        horizon = _safe_horizon(conn)
    sums: dict[_Cell, list[int]] = {}
    read = 0
    for livemode, currency, month, count, *values in found:
        row = _row(sums, (bool(livemode), currency), _month_of(month))
        for slot, value in enumerate(values):
            row[slot] += int(value or 0)
        read += int(count)
    for batch in _chunks(_stored_rows(sums, keep_empty=True), 1_000):
        conn.execute(mrr_month_totals.insert(), batch)
    _save_checkpoint(conn, horizon)
    return read


def _rebuild_postgresql(conn: Connection) -> tuple[list[tuple[Any, ...]], int]:
    """`_rebuild_sql` over disjoint ranges of customers at once, one connection each, all
    reading the snapshot this transaction exports: the parts add up to what one statement over
    the whole ledger would give, in about the time of the largest part (a window function
    keeps PostgreSQL's own parallel query out of the statement). Also returns the horizon of
    that snapshot."""
    snapshot = str(conn.execute(text("SELECT pg_export_snapshot()")).scalar_one())
    if not _SNAPSHOT_ID.fullmatch(snapshot):
        raise RuntimeError(f"unexpected snapshot id {snapshot!r}")
    splits = _customer_splits(conn, REBUILD_PARTS)
    bounds = list(zip([None, *splits], [*splits, None], strict=True))
    engine = conn.engine
    with ThreadPoolExecutor(len(bounds)) as pool:
        parts = list(pool.map(lambda b: _rebuild_part(engine, snapshot, b[0], b[1]), bounds))
    return [row for rows, _ in parts for row in rows], max(horizon for _, horizon in parts)


def _rebuild_part(
    engine: Engine, snapshot: str, low: str | None, high: str | None
) -> tuple[list[tuple[Any, ...]], int]:
    reading = engine.connect().execution_options(isolation_level="REPEATABLE READ")
    with reading as part, part.begin():
        part.execute(text(f"SET TRANSACTION SNAPSHOT '{snapshot}'"))
        _set_local(part, REBUILD_SETTINGS)
        rows = [tuple(row) for row in part.execute(_rebuild_sql("postgresql", low, high))]
        return rows, _safe_horizon(part)


def _customer_splits(conn: Connection, parts: int) -> list[str]:
    """Customer ids cutting the ledger into about equal parts, from the planner's statistics
    (ANALYZE's histogram, or its most common values when every customer is one of them); none
    without statistics. Any cut is correct: a customer's
    rows all fall on one side of it."""
    found = conn.execute(
        text(
            "SELECT histogram_bounds::text::text[], most_common_vals::text::text[] FROM pg_stats "
            "WHERE schemaname = current_schema() AND tablename = 'ledger_entries' "
            "AND attname = 'customer_id'"
        )
    ).first()
    if found is None or parts < 2:
        return []
    bounds = sorted(found[0] or found[1] or [])
    if not bounds:
        return []
    cuts = {bounds[len(bounds) * k // parts] for k in range(1, parts)}
    return sorted(cuts)


def _set_local(conn: Connection, settings: dict[str, str]) -> None:
    """Sets `settings` for the rest of the transaction."""
    for name, value in settings.items():
        conn.execute(text("SELECT set_config(:name, :value, true)"), {"name": name, "value": value})


def _month_of(value: datetime | str) -> int:
    """A month as the rebuild query gives it: PostgreSQL's date_trunc, SQLite's 'YYYY-MM'."""
    if isinstance(value, str):
        return Month.parse(value).index
    return value.year * 12 + value.month - 1


def _rebuild_sql(dialect: str, low: str | None, high: str | None) -> TextClause:
    """The `Projection` fold (ledger/reporting/balances.py) as one SQL statement over the
    ledger's rows for customers from `low` (included) to `high` (excluded), each bound optional.

    Rows: livemode, currency, month, rows read, the sum of each category (in `MOVEMENTS`
    order, NULL for none), the change in customers counted, the customers lost, and the entries
    of each category (the columns of `mrr_month_totals` in order). An entry's source (account
    and mode) is its source event's inbox row's. Per customer (and source, and currency) and
    month, read in that order from the index of migration 0005: the count and sum of each
    category, and the net active and delinquent changes; running sums over the customer's
    months give its month-end standing, and the running sum minus the month's change its
    standing a month earlier. It counts at a month end when its active balance is positive,
    and is lost when it counted before the month and now has neither balance. Months without
    rows change nothing for it, as in the fold (where a customer's bucket is its currency).

    One statement sees one snapshot: the rows it sees are exactly those whose chain links it
    sees (a row and its link commit together), and those links are the chain's committed
    prefix, which `_safe_horizon` reads in the same snapshot. (A row inserted with the triggers
    disabled has no link: a rebuild counts it, `catch_up` never reads it; `mrr verify`
    reports it.)
    """
    if dialect == "postgresql":
        month, total = "date_trunc('month', e.effective_at)", "ledger_bigint_sum"
        false = "false"
    else:  # stored as 'YYYY-MM-DD HH:MM:SS.ffffff' in UTC (ledger.db.UTCDateTime)
        month, total = "substr(e.effective_at, 1, 7)", "sum"
        false = "0"
    limits = [
        f"e.customer_id {op} :{name}"
        for op, name, v in ((">=", "low", low), ("<", "high", high))
        if v is not None
    ]
    where = f"WHERE {' AND '.join(limits)}" if limits else ""
    names = [f"m_{c.value}" for c in MOVEMENTS]
    counted = [f"n_{c.value}" for c in MOVEMENTS]
    per_category = ",\n    ".join(
        [
            f"{total}(e.amount) FILTER (WHERE e.category = '{c.value}') AS {name}"
            for c, name in zip(MOVEMENTS, names, strict=True)
        ]
        + [
            f"count(*) FILTER (WHERE e.category = '{c.value}') AS {name}"
            for c, name in zip(MOVEMENTS, counted, strict=True)
        ]
    )

    def weighted(weights: dict[str, int]) -> str:
        return " + ".join(
            f"{w} * coalesce({name}, 0)"
            for c, name in zip(MOVEMENTS, names, strict=True)
            if (w := weights[c.value])
        )

    return text(
        f"""
WITH customer_months AS (
  SELECT e.customer_id, coalesce(i.account, '') AS account,
    coalesce(i.livemode, {false}) AS livemode, e.currency, {month} AS month, count(*) AS n,
    {per_category}
  FROM ledger_entries e LEFT JOIN inbox i ON i.event_id = e.source_event_id {where}
  GROUP BY 1, 2, 3, 4, 5
), standings AS (
  SELECT *, {weighted(ACTIVE_WEIGHTS)} AS active_change,
    {total}({weighted(ACTIVE_WEIGHTS)}) OVER w AS active,
    {total}({weighted(DELINQUENT_WEIGHTS)}) OVER w AS owing
  FROM customer_months
  WINDOW w AS (
    PARTITION BY customer_id, account, livemode, currency ORDER BY month
    ROWS UNBOUNDED PRECEDING
  )
)
SELECT livemode, currency, month, sum(n), {", ".join(f"{total}({name})" for name in names)},
  sum(CASE WHEN (active > 0) = (active - active_change > 0) THEN 0
           WHEN active > 0 THEN 1 ELSE -1 END),
  sum(CASE WHEN active - active_change > 0 AND active <= 0 AND owing <= 0 THEN 1 ELSE 0 END),
  {", ".join(f"{total}({name})" for name in counted)}
FROM standings
GROUP BY livemode, currency, month
"""
    ).bindparams(
        **{name: value for name, value in (("low", low), ("high", high)) if value is not None}
    )


def _count_changes(
    conn: Connection,
    customer_ids: list[str],
    done: int,
    horizon: int,
    sums: dict[_Cell, list[int]],
) -> None:
    """Correct month-end customer counts for customers with new rows: their counts computed
    from their whole history up to the horizon, minus the same up to the old checkpoint (a
    customer is one per source)."""
    e = ledger_entries.c
    query = _in_chain(
        with_source(
            select(
                e.customer_id, _ACCOUNT, _LIVEMODE, e.currency, e.category, e.amount,
                e.effective_at, _SEQ,
            )
        )
    ).where(e.customer_id.in_(customer_ids), horizon >= _SEQ)  # fmt: skip
    before: dict[tuple[str, str, bool, str], dict[int, tuple[int, int]]] = {}
    after: dict[tuple[str, str, bool, str], dict[int, tuple[int, int]]] = {}
    for row in conn.execute(query):
        key = (row.customer_id, row.account, bool(row.livemode), row.currency)
        month = month_index(row.effective_at)
        active, delinquent = effects(row.category, int(row.amount))
        histories = (after, before) if row.seq <= done else (after,)
        for found in histories:
            per_month = found.setdefault(key, {})
            old_active, old_delinquent = per_month.get(month, (0, 0))
            per_month[month] = (old_active + active, old_delinquent + delinquent)
    for key, history in after.items():
        livemode, currency = key[2], key[3]
        new = customer_changes(history, currency)
        old = customer_changes(before.get(key, {}), currency)
        for month in new.keys() | old.keys():
            change_new, lost_new = new.get(month, (0, 0))
            change_old, lost_old = old.get(month, (0, 0))
            if (change_new, lost_new) != (change_old, lost_old):
                row_sums = _row(sums, (livemode, currency), month)
                row_sums[_CHANGE] += change_new - change_old
                row_sums[_LOST] += lost_new - lost_old


def _row(sums: dict[_Cell, list[int]], cell: tuple[bool, str], month: int) -> list[int]:
    key = (*cell, month)
    found = sums.get(key)
    if found is None:
        found = sums[key] = [0] * len(MONTH_TOTAL_COLUMNS)
    return found


def _stored_rows(sums: dict[_Cell, list[int]], *, keep_empty: bool) -> list[dict[str, object]]:
    """`mrr_month_totals` rows for `sums`, in mode, currency and month order."""
    return [
        {
            "livemode": livemode,
            "currency": currency,
            "month": str(Month(month)),
            **dict(zip(MONTH_TOTAL_COLUMNS, values, strict=True)),
        }
        for (livemode, currency, month), values in sorted(sums.items())
        if keep_empty or any(values)
    ]


def _add_totals(conn: Connection, sums: dict[_Cell, list[int]]) -> None:
    rows = _stored_rows(sums, keep_empty=False)
    if not rows:
        return
    statement = dialect_insert(conn, mrr_month_totals)
    statement = statement.on_conflict_do_update(
        index_elements=["livemode", "currency", "month"],
        set_={
            name: mrr_month_totals.c[name] + statement.excluded[name]
            for name in MONTH_TOTAL_COLUMNS
        },
    )
    for batch in _chunks(rows, 1_000):
        conn.execute(statement, batch)


def _chunks(items: list[_T], size: int) -> Iterator[list[_T]]:
    iterator = iter(items)
    while batch := list(islice(iterator, size)):
        yield batch


# Other projections that read the ledger in chain order, each with its own checkpoint.
lock_checkpoint = _lock_checkpoint
save_checkpoint = _save_checkpoint
safe_horizon = _safe_horizon
in_chain = _in_chain
SEQ = _SEQ
month_of = _month_of
