"""The ledger summed by (currency, effective month, recorded month, category), kept in
`forecast_cells`: what the forecast's backtest reads (`backtest.Cell`), a projection beside
`mrr_month_totals`.

`catch_up` follows the projector (`projector.py`): it reads the hash chain after its own
checkpoint and adds the new rows' amounts to their cells, in one transaction with the
checkpoint. A first call, and `replay`, sum the whole ledger in one aggregate statement (one row
per cell reaches Python). Cells are only ever added to, since the ledger is only appended to:
a forecast reads a few hundred rows, whatever the size of the ledger.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, Connection, String, delete, false, func, select, true

from ledger.reporting import projector
from ledger.reporting.backtest import Cell
from ledger.reporting.modes import choose_mode
from ledger.rules.months import Month, month_index
from ledger.storage.db import dialect_insert
from ledger.storage.schema import forecast_cells, ledger_entries

__all__ = ["CHECKPOINT", "catch_up", "cells", "from_ledger", "replay"]

CHECKPOINT = "forecast_cells"
STREAM_BATCH = 5_000
_Key = tuple[bool, str, int, int, str]  # livemode, currency, effective, recorded, category


def catch_up(conn: Connection) -> int:
    """Add the ledger rows appended since the checkpoint; returns how many were read."""
    done = projector.lock_checkpoint(conn, CHECKPOINT)
    horizon = projector.safe_horizon(conn)
    if horizon <= done:
        return 0
    if done == 0:
        return _rebuild(conn, horizon)
    e = ledger_entries.c
    query = projector.in_chain(
        projector.with_source(
            select(
                projector.SOURCE_LIVEMODE, e.currency, e.category, e.amount, e.effective_at,
                e.recorded_at,
            )
        )
    ).where(done < projector.SEQ, horizon >= projector.SEQ)  # fmt: skip
    sums: dict[_Key, int] = {}
    read = 0
    for livemode, currency, category, amount, effective, recorded in conn.execute(
        query, execution_options={"yield_per": STREAM_BATCH}
    ):
        key = (
            bool(livemode), str(currency), month_index(effective), month_index(recorded),
            str(category),
        )  # fmt: skip
        sums[key] = sums.get(key, 0) + int(amount)
        read += 1
    _add(conn, sums)
    projector.save_checkpoint(conn, horizon, CHECKPOINT)
    return read


def replay(conn: Connection) -> int:
    """Rebuild every cell from the whole ledger; returns how many ledger rows were summed."""
    projector.lock_checkpoint(conn, CHECKPOINT)
    return _rebuild(conn, projector.safe_horizon(conn))


def cells(
    conn: Connection, currency: str, before: Month, livemode: bool | None = None
) -> list[Cell]:
    """The kept cells of `currency` that took effect before `before` (call `catch_up` first),
    of one mode (None: the default one, `modes.choose_mode`)."""
    c = forecast_cells.c
    chosen = choose_mode(conn, None).livemode if livemode is None else livemode
    query = select(c.effective_month, c.recorded_month, c.category, c.amount).where(
        c.livemode.is_(true() if chosen else false()),
        c.currency == currency,
        c.effective_month < str(before),
    )
    return [
        Cell(Month.parse(eff).index, Month.parse(rec).index, str(category), int(amount))
        for eff, rec, category, amount in conn.execute(query)
    ]


def from_ledger(
    conn: Connection, currency: str, before: Month, livemode: bool | None = None
) -> list[Cell]:
    """The same cells summed from the ledger itself, by the database (what the kept ones
    must equal)."""
    e = ledger_entries.c
    chosen = choose_mode(conn, None).livemode if livemode is None else livemode
    effective, recorded, total = _summed(conn)
    query = (
        projector.with_source(select(effective, recorded, e.category, total))
        .where(
            e.currency == currency,
            e.effective_at < before.start(),
            projector.SOURCE_LIVEMODE.is_(true() if chosen else false()),
        )
        .group_by(effective, recorded, e.category)
    )
    return [
        Cell(_index(eff), _index(rec), str(category), int(amount))
        for eff, rec, category, amount in conn.execute(query)
    ]


def _summed(conn: Connection) -> tuple[ColumnElement[Any], ColumnElement[Any], ColumnElement[Any]]:
    """The effective month, the recorded month and the sum of the amounts, in SQL."""
    e = ledger_entries.c
    if conn.dialect.name == "postgresql":
        return (
            func.date_trunc("month", e.effective_at),
            func.date_trunc("month", e.recorded_at),
            func.ledger_bigint_sum(e.amount),
        )
    # stored as 'YYYY-MM-DD HH:MM:SS.ffffff' in UTC (ledger.db.UTCDateTime)
    return (
        func.substr(e.effective_at, 1, 7, type_=String),
        func.substr(e.recorded_at, 1, 7, type_=String),
        func.sum(e.amount),
    )


def _rebuild(conn: Connection, horizon: int) -> int:
    conn.execute(delete(forecast_cells))
    e = ledger_entries.c
    effective, recorded, total = _summed(conn)
    livemode = projector.SOURCE_LIVEMODE
    query = (
        projector.in_chain(
            projector.with_source(
                select(livemode, e.currency, effective, recorded, e.category, total, func.count())
            )
        )
        .where(horizon >= projector.SEQ)
        .group_by(livemode, e.currency, effective, recorded, e.category)
    )
    sums: dict[_Key, int] = {}
    read = 0
    for live, currency, eff, rec, category, amount, count in conn.execute(query):
        key = (bool(live), str(currency), _index(eff), _index(rec), str(category))
        sums[key] = int(amount or 0)
        read += int(count)
    _add(conn, sums)
    projector.save_checkpoint(conn, horizon, CHECKPOINT)
    return read


def _index(value: datetime | str) -> int:
    if isinstance(value, str):
        return Month.parse(value[:7]).index
    return value.year * 12 + value.month - 1


def _add(conn: Connection, sums: dict[_Key, int]) -> None:
    """Add `sums` to the stored cells (inserting the missing ones), in key order."""
    rows = [
        {
            "livemode": livemode,
            "currency": currency,
            "effective_month": str(Month(effective)),
            "recorded_month": str(Month(recorded)),
            "category": category,
            "amount": amount,
        }
        for (livemode, currency, effective, recorded, category), amount in sorted(sums.items())
    ]
    for batch in _batches(rows, 1_000):
        statement = dialect_insert(conn, forecast_cells)
        statement = statement.on_conflict_do_update(
            index_elements=[
                "livemode",
                "currency",
                "effective_month",
                "recorded_month",
                "category",
            ],
            set_={"amount": forecast_cells.c.amount + statement.excluded.amount},
        )
        conn.execute(statement, batch)


def _batches(rows: list[dict[str, object]], size: int) -> Iterable[list[dict[str, object]]]:
    for start in range(0, len(rows), size):
        yield rows[start : start + size]
