"""Kept backtest forecasts (`forecast_backtests`): each model's forecast from each closed cut-off.

A forecast from cut-off c reads only the entries recorded by the end of c (`backtest`), and the
ledger is only appended to, with each entry recorded when it is written: once c has closed,
nothing can change what was known at its end, so the forecast from c is the same whenever it is
made. It is kept only when c ended at least `SETTLE` before the moment of keeping (a writer's
transaction that took its clock just before the month's end has committed by then), made once
and read back by every later backtest. Rows are keyed by the models' version and the history's
first month too: a change to either makes new rows, and the old ones are never read again.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta

from sqlalchemy import Connection, select

from ledger.reporting.backtest import Projections
from ledger.reporting.forecast_models import MODELS, MODELS_VERSION
from ledger.rules.months import Month
from ledger.storage.db import dialect_insert
from ledger.storage.schema import forecast_backtests

__all__ = ["SETTLE", "closed", "keep", "kept"]

SETTLE = timedelta(hours=1)


def closed(cutoff: Month, now: datetime) -> bool:
    """Whether `cutoff` ended long enough before `now` for its forecasts to be kept."""
    return cutoff.next().start() + SETTLE <= now


def kept(conn: Connection, currency: str, since: Month) -> dict[Month, Projections]:
    """The kept forecasts of every cut-off all of whose models are kept."""
    b = forecast_backtests.c
    query = select(b.cutoff, b.model, b.forecast).where(
        b.currency == currency, b.version == MODELS_VERSION, b.since == str(since)
    )
    found: dict[Month, Projections] = {}
    for cutoff, model, forecast in conn.execute(query):
        if model in MODELS:
            values = None if forecast is None else [int(v) for v in json.loads(forecast)]
            found.setdefault(Month.parse(cutoff), {})[str(model)] = values
    return {c: by_model for c, by_model in found.items() if set(by_model) == set(MODELS)}


def keep(
    conn: Connection,
    currency: str,
    since: Month,
    projected: Mapping[Month, Projections],
    now: datetime,
) -> list[Month]:
    """Keep the forecasts of the cut-offs `closed` at `now` (a row kept already stays as it
    is); returns the cut-offs kept."""
    chosen = sorted(c for c, by in projected.items() if closed(c, now) and set(by) >= set(MODELS))
    rows = [
        {
            "currency": currency,
            "version": MODELS_VERSION,
            "since": str(since),
            "cutoff": str(cutoff),
            "model": model,
            "forecast": None if values is None else json.dumps(values),
            "made_at": now.astimezone(UTC),
        }
        for cutoff in chosen
        for model, values in sorted(projected[cutoff].items())
        if model in MODELS
    ]
    if rows:
        statement = dialect_insert(conn, forecast_backtests).on_conflict_do_nothing(
            index_elements=["currency", "version", "since", "cutoff", "model"]
        )
        conn.execute(statement, rows)
    return chosen
