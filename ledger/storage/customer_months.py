"""The `customer_months` and `segment_month_totals` tables (migration 0011): derived, rebuilt.

Keyed by source (migration 0018): a customer's rows, the segments' totals and the cohorts'
changes by account and mode. A customer's rows are replaced as a whole per kind:
its total rows (`dimension` 'all', from the ledger, by `ledger.reporting.customer_months`) or
its segment rows (from the rules' replay, by the processing). Only rows that differ are deleted
and inserted, and the segments' totals and the cohorts' changes are moved by the difference in
the same transaction, in key order so that concurrent writers take their row locks in one
order.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Iterator, Mapping, Sequence
from itertools import islice
from typing import Any, TypeVar, cast

import psycopg
from psycopg import sql
from sqlalchemy import Connection, and_, bindparam, delete, select
from sqlalchemy import tuple_ as row_of

from ledger.rules.month_rows import MonthRow, month_rows
from ledger.rules.months import Month
from ledger.rules.segments import SegmentMonths
from ledger.rules.sources import Unit
from ledger.storage.db import dialect_insert
from ledger.storage.schema import (
    ALL,
    BALANCE_COLUMNS,
    COHORT_COLUMNS,
    MOVEMENT_COLUMNS,
    cohort_month_changes,
    customer_months,
    segment_month_totals,
)

__all__ = [
    "Key",
    "Values",
    "clear",
    "cohort_changes",
    "replace",
    "rows_of",
    "segment_rows",
]

# (livemode, account, dimension, segment, customer, currency, month 'YYYY-MM')
Key = tuple[bool, str, str, str, str, str, str]
# next_month, the movements, active, delinquent, customers_change, customers_lost, first_paid
Values = tuple[Any, ...]
_VALUE_COLUMNS = (
    "next_month",
    *MOVEMENT_COLUMNS,
    "active_mrr",
    "delinquent_mrr",
    "customers_change",
    "customers_lost",
    "first_paid",
)
_KEY_COLUMNS = ("livemode", "account", "dimension", "segment", "customer_id", "currency", "month")
_UNIT_COLUMNS = ("customer_id", "account", "livemode")
# Where each of BALANCE_COLUMNS is in Values.
_TOTALS = tuple(_VALUE_COLUMNS.index(name) for name in BALANCE_COLUMNS)
CHUNK = 500
_T = TypeVar("_T")


@functools.cache
def _month_text(month: int) -> str:
    return str(Month(month))


def _text(month: int | None) -> str | None:
    return None if month is None else _month_text(month)


def rows_of(
    unit: Unit, dimension: str, segment: str, currency: str, rows: Iterable[MonthRow]
) -> dict[Key, Values]:
    customer_id, account, livemode = unit
    return {
        (livemode, account, dimension, segment, customer_id, currency, _month_text(r.month)): (
            _text(r.next_month),
            *r.movements,
            r.active,
            r.delinquent,
            r.customers_change,
            r.customers_lost,
            _text(r.first_paid),
        )
        for r in rows
    }


def segment_rows(unit: Unit, months: SegmentMonths) -> dict[Key, Values]:
    """A customer's segment rows from its replay's segment sums."""
    grouped: dict[tuple[str, str, str], dict[int, tuple[int, ...]]] = {}
    for (dimension, segment, currency, month), sums in months.items():
        grouped.setdefault((dimension, segment, currency), {})[month] = sums
    found: dict[Key, Values] = {}
    for (dimension, segment, currency), sums_by_month in grouped.items():
        found.update(rows_of(unit, dimension, segment, currency, month_rows(sums_by_month)))
    return found


def _stored(conn: Connection, units: Sequence[Unit], segments: bool) -> dict[Key, Values]:
    c = customer_months.c
    kind = c.dimension != ALL if segments else c.dimension == ALL
    found: dict[Key, Values] = {}
    width = len(_KEY_COLUMNS)
    for chunk in _chunks([tuple(u) for u in units], CHUNK):
        query = select(*(c[n] for n in _KEY_COLUMNS + _VALUE_COLUMNS)).where(
            row_of(*(c[n] for n in _UNIT_COLUMNS)).in_(chunk), kind
        )
        for row in conn.execute(query):
            values = (bool(row[0]), *tuple(row)[1:])
            found[cast(Key, values[:width])] = values[width:]
    return found


def replace(
    conn: Connection,
    units: Sequence[Unit],
    wanted: Mapping[Key, Values],
    *,
    segments: bool,
) -> int:
    """Make the customers' rows (each of its source) of one kind (segments, or the total) equal
    `wanted`; with `segments`, move `segment_month_totals` by the difference. Returns rows
    written."""
    have = _stored(conn, units, segments)
    gone = [k for k, v in have.items() if wanted.get(k) != v]
    new = [k for k, v in wanted.items() if have.get(k) != v]
    if gone:
        c = customer_months.c
        statement = delete(customer_months).where(
            and_(*(c[name] == bindparam(f"k_{name}") for name in _KEY_COLUMNS))
        )
        for batch in _chunks(gone, 1_000):
            conn.execute(
                statement,
                [{f"k_{n}": v for n, v in zip(_KEY_COLUMNS, k, strict=True)} for k in batch],
            )
    if new:
        _insert(conn, [(*k, *wanted[k]) for k in new])
    changes = [(k, have[k], -1) for k in gone] + [(k, wanted[k], 1) for k in new]
    if segments:
        _move_totals(conn, changes)
    _move_cohorts(conn, changes)
    return len(new)


def _insert(conn: Connection, rows: list[tuple[Any, ...]]) -> None:
    """Insert rows (key then values): on PostgreSQL by COPY, a tenth of the time of a
    statement per row for the tens of thousands of rows a batch of new customers writes."""
    columns = _KEY_COLUMNS + _VALUE_COLUMNS
    if conn.dialect.name == "postgresql":
        command = sql.SQL("COPY {} ({}) FROM STDIN").format(
            sql.Identifier(customer_months.name), sql.SQL(", ").join(map(sql.Identifier, columns))
        )
        driver = cast(psycopg.Connection[Any], conn.connection.driver_connection)
        with driver.cursor() as cursor, cursor.copy(command) as copy:
            for row in rows:
                copy.write_row(row)
        return
    for batch in _chunks(rows, 1_000):
        conn.execute(customer_months.insert(), [dict(zip(columns, r, strict=True)) for r in batch])


_FIRST_PAID = _VALUE_COLUMNS.index("first_paid")
_ACTIVE = _VALUE_COLUMNS.index("active_mrr")
_DELINQUENT = _VALUE_COLUMNS.index("delinquent_mrr")


def cohort_changes(key: Key, values: Values) -> list[tuple[tuple[Any, ...], tuple[int, ...]]]:
    """What one row adds to `cohort_month_changes`: ((livemode, account, dimension, segment,
    currency, cohort, month), (joined, retained, delinquent, mrr)) at its month, and the
    opposite at its next."""
    livemode, account, dimension, segment, _, currency, month = key
    cohort = values[_FIRST_PAID]
    if cohort is None:
        return []
    active, delinquent = int(values[_ACTIVE]), int(values[_DELINQUENT])
    figures = (int(active > 0), int(active <= 0 < delinquent), active)
    found: list[tuple[tuple[Any, ...], tuple[int, ...]]] = [
        (
            (livemode, account, dimension, segment, currency, cohort, month),
            (int(month == cohort), *figures),
        )
    ]
    following = values[0]
    if following is not None:
        found.append(
            (
                (livemode, account, dimension, segment, currency, cohort, following),
                (0, *(-f for f in figures)),
            )
        )
    return found


def _move_cohorts(conn: Connection, changes: Sequence[tuple[Key, Values, int]]) -> None:
    sums: dict[tuple[Any, ...], list[int]] = {}
    for key, values, sign in changes:
        for at, figures in cohort_changes(key, values):
            row = sums.setdefault(at, [0] * len(COHORT_COLUMNS))
            for slot, figure in enumerate(figures):
                row[slot] += sign * figure
    rows = [
        {
            "livemode": live,
            "account": a,
            "dimension": d,
            "segment": s,
            "currency": c,
            "cohort": cohort,
            "month": m,
            **dict(zip(COHORT_COLUMNS, values, strict=True)),
        }
        for (live, a, d, s, c, cohort, m), values in sorted(sums.items())
        if any(values)
    ]
    if not rows:
        return
    statement = dialect_insert(conn, cohort_month_changes)
    statement = statement.on_conflict_do_update(
        index_elements=[
            "livemode",
            "account",
            "dimension",
            "segment",
            "currency",
            "cohort",
            "month",
        ],
        set_={
            name: cohort_month_changes.c[name] + statement.excluded[name] for name in COHORT_COLUMNS
        },
    )
    for batch in _chunks(rows, 1_000):
        conn.execute(statement, batch)


def _move_totals(conn: Connection, changes: Sequence[tuple[Key, Values, int]]) -> None:
    sums: dict[tuple[bool, str, str, str, str, str], list[int]] = {}
    for (livemode, account, dimension, segment, _, currency, month), values, sign in changes:
        at = (livemode, account, dimension, segment, currency, month)
        row = sums.setdefault(at, [0] * len(BALANCE_COLUMNS))
        for slot, position in enumerate(_TOTALS):
            row[slot] += sign * int(values[position])
    rows = [
        {
            "livemode": live,
            "account": a,
            "dimension": d,
            "segment": s,
            "currency": c,
            "month": m,
            **dict(zip(BALANCE_COLUMNS, values, strict=True)),
        }
        for (live, a, d, s, c, m), values in sorted(sums.items())
        if any(values)
    ]
    if not rows:
        return
    statement = dialect_insert(conn, segment_month_totals)
    statement = statement.on_conflict_do_update(
        index_elements=["livemode", "account", "dimension", "segment", "currency", "month"],
        set_={
            name: segment_month_totals.c[name] + statement.excluded[name]
            for name in BALANCE_COLUMNS
        },
    )
    for batch in _chunks(rows, 1_000):
        conn.execute(statement, batch)


def clear(conn: Connection, *, segments: bool) -> None:
    """Empty one kind of rows (and, for segments, their totals) before a rebuild."""
    c = customer_months.c
    conn.execute(
        delete(customer_months).where(c.dimension != ALL if segments else c.dimension == ALL)
    )
    k = cohort_month_changes.c
    conn.execute(
        delete(cohort_month_changes).where(k.dimension != ALL if segments else k.dimension == ALL)
    )
    if segments:
        conn.execute(delete(segment_month_totals))


def _chunks(items: list[_T], size: int) -> Iterator[list[_T]]:
    iterator = iter(items)
    while batch := list(islice(iterator, size)):
        yield batch
