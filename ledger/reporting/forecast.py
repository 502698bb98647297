"""The MRR forecast and its backtest; the forecast kept each month.

A forecast reads the ledger summed by (effective month, recorded month, category) for one
currency, kept up to date in `forecast_cells`: a few hundred rows, whatever the size of the
ledger. It is made "at the start of the month": from the months before the current one, as
recorded before it began (the `--as-of` cut-off of the backtest). So it is the same whenever it
is computed during the month, and it is kept in `mrr_forecasts`, made by the worker's schedule
(`make_due`) or else by the first report asking in the month. Later requests read the kept one,
with the months so far from the stored monthly totals; once a month has closed, its kept
forecast is shown against what happened. Each model's forecast from each closed cut-off is
kept as well (`backtest_store`), so making a month's forecast fits the models from one new
cut-off. The models are in `forecast_models`, the backtest and the interval in `backtest`
(docs/forecast.md).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, fields, replace
from datetime import UTC, datetime
from fractions import Fraction
from typing import Any

from sqlalchemy import Connection, Engine, select

from ledger.reporting import backtest_store, forecast_cells, projector
from ledger.reporting.backtest import (
    AHEAD,
    FALLBACK,
    HORIZONS,
    Backtest,
    Cell,
    Projections,
    actual_closing,
    as_known,
    cutoffs_of,
    history_as_of,
    interval,
    project_from,
    scored,
)
from ledger.reporting.balances import MonthBalance, balances
from ledger.reporting.constant_rates import converted, factors
from ledger.reporting.forecast_models import MODELS, MOVES, ProjectedMonth, rate_projection
from ledger.reporting.modes import choose_mode
from ledger.reporting.reports import BadInput, choose_currency
from ledger.rules.months import Month
from ledger.storage.db import dialect_insert
from ledger.storage.schema import mrr_forecasts, mrr_month_totals

__all__ = [
    "KEPT_MONTHS",
    "MAX_MONTHS",
    "Forecast",
    "ForecastMonth",
    "KeptAgainstActual",
    "build_backtest",
    "build_forecast",
    "in_reporting_currency",
    "kept_forecast",
    "make_due",
    "make_forecast",
    "unmade",
]

MAX_MONTHS = 24
KEPT_MONTHS = AHEAD
_COUNTS = {"month", "currency", "opening_customers", "customers", "churned_customers"}
_BALANCE_AMOUNTS = tuple(f.name for f in fields(MonthBalance) if f.name not in _COUNTS)


@dataclass(frozen=True, slots=True)
class ForecastMonth:
    month: Month
    closing_mrr: int  # the chosen model's
    low: int | None  # the 80% interval; None without enough backtest errors
    high: int | None
    models: dict[str, int | None]  # every model's closing MRR
    movements: ProjectedMonth | None  # the rate model's movements


@dataclass(frozen=True, slots=True)
class KeptAgainstActual:
    month: Month
    model: str
    forecast: int
    low: int | None
    high: int | None
    actual: int

    @property
    def error(self) -> float | None:
        """(forecast - actual) / actual, None when nothing was there."""
        return (self.forecast - self.actual) / abs(self.actual) if self.actual else None


@dataclass(frozen=True, slots=True)
class Forecast:
    currency: str
    made_month: Month  # made at this month's start, from the months before it
    made_at: datetime
    model: str
    mape: dict[str, dict[int, float | None]]  # the backtest's scores when it was made
    cutoffs: int
    history: list[MonthBalance]  # as known now, up to the last complete month
    months: list[ForecastMonth]
    kept: list[KeptAgainstActual]
    converted_from: str | None = None  # made in this currency, shown in `currency`


# --- reading the ledger ----------------------------------------------------------------------


def _cells(engine: Engine, currency: str, before: Month) -> tuple[list[Cell], Month]:
    """The kept cells of `currency` effective before `before`, brought up to date first, as
    known (`as_known`), and the first month they hold."""
    with engine.begin() as conn:
        forecast_cells.catch_up(conn)
    with engine.connect() as conn:
        found = as_known(forecast_cells.cells(conn, currency, before))
    if not found:
        raise BadInput("currency", f"no {currency} entries before {before}")
    return found, Month(min(c.effective for c in found))


def _actual(engine: Engine, currency: str, last: Month) -> list[MonthBalance]:
    """Months up to `last` as the ledger knows them now, from the stored monthly totals."""
    with engine.connect() as conn:
        totals = projector.stored_totals(conn, currency, last, choose_mode(conn, None).livemode)
    if not totals:
        raise BadInput("currency", f"no {currency} entries before {last.next()}")
    return balances(totals, currency, totals[0].month, last)


def _currency(engine: Engine, asked: str | None) -> str:
    with engine.begin() as conn:
        projector.catch_up(conn)
    with engine.connect() as conn:
        livemode = choose_mode(conn, None).livemode
        return choose_currency(asked, projector.stored_currencies(conn, livemode))


def _months_asked(months: int) -> None:
    if not 1 <= months <= MAX_MONTHS:
        raise BadInput("months", f"months must be within 1..{MAX_MONTHS}")


# --- the backtest ----------------------------------------------------------------------------


def build_backtest(
    engine: Engine, today: datetime, currency: str | None = None, *, now: datetime | None = None
) -> Backtest:
    """Every model from every past month, up to the last complete month before `today`.
    `now` is the clock that says which cut-offs have closed (the real one by default)."""
    chosen = _currency(engine, currency)
    last = Month(Month.of(today).index - 1)
    found, first = _cells(engine, chosen, last.next())
    with engine.begin() as conn:
        projected = _projections(conn, found, chosen, first, cutoffs_of(first, last), now)
    return scored(actual_closing(found, chosen, first, last), projected, chosen, last)


def _projections(
    conn: Connection,
    found: list[Cell],
    currency: str,
    first: Month,
    cutoffs: list[Month],
    now: datetime | None,
) -> dict[Month, Projections]:
    """The forecasts from each cut-off: kept ones read back, the others made (and kept once
    their month has closed, `backtest_store`)."""
    have = backtest_store.kept(conn, currency, first)
    made = {c: project_from(found, currency, first, c) for c in cutoffs if c not in have}
    backtest_store.keep(conn, currency, first, made, now or datetime.now(UTC))
    return {c: have[c] if c in have else made[c] for c in cutoffs}


# --- the forecast ----------------------------------------------------------------------------


def build_forecast(
    engine: Engine,
    today: datetime,
    months: int = 12,
    currency: str | None = None,
    *,
    now: datetime | None = None,
    reporting_currency: str | None = None,
) -> Forecast:
    """The forecast made at the start of `today`'s month (kept on first use), and the kept
    forecasts of closed months against what happened. `now`: as for `build_backtest`. With
    `reporting_currency`, every amount is converted at the rate of the month's first day
    (`constant_rates`)."""
    _months_asked(months)
    chosen = _currency(engine, currency)
    made = Month.of(today)
    last = Month(made.index - 1)
    actual = _actual(engine, chosen, last)
    rows = make_forecast(engine, chosen, today, now=now)
    with engine.connect() as conn:
        kept = _kept_against_actual(conn, chosen, actual)
    detail = json.loads(rows[0]["detail"])
    found = Forecast(
        currency=chosen,
        made_month=made,
        made_at=rows[0]["made_at"],
        model=str(rows[0]["model"]),
        mape={m: {int(h): v for h, v in by.items()} for m, by in detail["mape"].items()},
        cutoffs=int(detail["cutoffs"]),
        history=actual,
        months=[_forecast_month(row) for row in rows[:months]],
        kept=kept,
    )
    if reporting_currency is None or reporting_currency == chosen:
        return found
    with engine.connect() as conn:
        rate = factors(conn, [chosen], reporting_currency, made.start().date())[chosen]
    return in_reporting_currency(found, rate, reporting_currency)


def _balance_in(b: MonthBalance, c: Callable[[int], int], reporting: str) -> MonthBalance:
    amounts: dict[str, Any] = {n: c(getattr(b, n)) for n in _BALANCE_AMOUNTS}
    return replace(b, currency=reporting, **amounts)


def in_reporting_currency(f: Forecast, rate: Fraction, reporting: str) -> Forecast:
    """`f` with every amount converted at `rate` and rounded once (movements: their closing
    is the sum of the converted ones, so each month still adds up)."""

    def c(amount: int) -> int:
        return converted(amount, rate)

    def maybe(amount: int | None) -> int | None:
        return None if amount is None else c(amount)

    def moved(p: ProjectedMonth) -> ProjectedMonth:
        moves = {name: c(getattr(p, name)) for name in MOVES}
        opening = c(p.opening_mrr)
        return ProjectedMonth(
            opening_mrr=opening,
            **moves,
            closing_mrr=opening + sum(moves.values()),
            delinquent_mrr=c(p.delinquent_mrr),
        )

    return replace(
        f,
        currency=reporting,
        converted_from=f.currency,
        history=[_balance_in(b, c, reporting) for b in f.history],
        months=[
            replace(
                m,
                closing_mrr=c(m.closing_mrr),
                low=maybe(m.low),
                high=maybe(m.high),
                models={name: maybe(v) for name, v in m.models.items()},
                movements=None if m.movements is None else moved(m.movements),
            )
            for m in f.months
        ],
        kept=[
            replace(
                k,
                forecast=c(k.forecast),
                low=maybe(k.low),
                high=maybe(k.high),
                actual=c(k.actual),
            )
            for k in f.kept
        ],
    )


def make_forecast(
    engine: Engine, currency: str, today: datetime, *, now: datetime | None = None
) -> list[Any]:
    """The kept rows of the forecast made at the start of `today`'s month, made and kept first
    if no one has (the worker's schedule, or the first report asked for in the month)."""
    made = Month.of(today)
    with engine.connect() as conn:
        rows = _kept(conn, currency, made)
    if rows:
        return rows
    found, first = _cells(engine, currency, made)
    with engine.begin() as conn:
        rows = _kept(conn, currency, made)
        if not rows:
            made_now = _make(conn, found, currency, first, Month(made.index - 1), now)
            _keep(conn, made_now, currency, made, today)
            rows = _kept(conn, currency, made)
    return rows


def unmade(conn: Connection, today: datetime) -> list[str]:
    """Currencies with months before `today`'s in the stored totals and no forecast kept for
    `today`'s month (what the worker's schedule makes)."""
    made = str(Month.of(today))
    t, f = mrr_month_totals.c, mrr_forecasts.c
    held = conn.execute(select(t.currency).where(t.month < made).distinct()).scalars()
    kept = conn.execute(select(f.currency).where(f.made_month == made).distinct()).scalars()
    return sorted(set(map(str, held)) - set(map(str, kept)))


def make_due(engine: Engine, today: datetime) -> list[str]:
    """Make the month's forecast of every currency that has none yet; returns those made."""
    with engine.begin() as conn:
        projector.catch_up(conn)
    with engine.connect() as conn:
        due = unmade(conn, today)
    made = []
    for currency in due:
        try:
            make_forecast(engine, currency, today)
        except BadInput:
            continue  # nothing before this month to forecast from
        made.append(currency)
    return made


def kept_forecast(engine: Engine, today: datetime, currency: str) -> list[ForecastMonth]:
    """The forecast kept at the start of `today`'s month, if one was made (by the forecast page,
    the API or the CLI): read back, never made here, so it costs one indexed query."""
    with engine.connect() as conn:
        return [_forecast_month(row) for row in _kept(conn, currency, Month.of(today))]


@dataclass(frozen=True, slots=True)
class _Made:
    model: str
    test: Backtest
    months: list[ForecastMonth]


def _make(
    conn: Connection,
    found: list[Cell],
    currency: str,
    first: Month,
    last: Month,
    now: datetime | None,
) -> _Made:
    """The forecast from the months up to `last`, as recorded by its end: the projections from
    cut-off `last`, the model chosen and the interval read from the earlier cut-offs'."""
    cutoffs = cutoffs_of(first, last)
    projected = _projections(conn, found, currency, first, [*cutoffs, last], now)
    final = projected.pop(last)
    test = scored(actual_closing(found, currency, first, last), projected, currency, last)
    model = test.chosen if final[test.chosen] is not None else FALLBACK
    history = history_as_of(found, currency, last, first, last)
    rates = rate_projection(history, KEPT_MONTHS)
    errors = test.errors.get(model, {})
    result = []
    for step in range(1, KEPT_MONTHS + 1):
        closing = (final[model] or [0] * KEPT_MONTHS)[step - 1]
        band = interval(errors, step, closing)
        result.append(
            ForecastMonth(
                Month(last.index + step),
                closing,
                band.low if band else None,
                band.high if band else None,
                {m: (p[step - 1] if p is not None else None) for m, p in final.items()},
                rates[step - 1] if rates else None,
            )
        )
    return _Made(model, test, result)


def _keep(conn: Connection, made: _Made, currency: str, month: Month, now: datetime) -> None:
    summary = {
        "mape": {
            m: {str(h): s.mape if (s := made.test.score(m, h)) else None for h in HORIZONS}
            for m in MODELS
        },
        "cutoffs": len(made.test.cutoffs),
    }
    rows = [
        {
            "currency": currency,
            "made_month": str(month),
            "month": str(f.month),
            "model": made.model,
            "closing_mrr": f.closing_mrr,
            "low_mrr": f.low,
            "high_mrr": f.high,
            "detail": json.dumps(
                {
                    **summary,
                    "models": f.models,
                    "movements": None if f.movements is None else _movements(f.movements),
                },
                sort_keys=True,
            ),
            "made_at": now.astimezone(UTC),
        }
        for f in made.months
    ]
    statement = dialect_insert(conn, mrr_forecasts).on_conflict_do_nothing(
        index_elements=["currency", "made_month", "month"]
    )
    conn.execute(statement, rows)


def _movements(p: ProjectedMonth) -> dict[str, int]:
    return {name: getattr(p, name) for name in ProjectedMonth.__slots__}


def _kept(conn: Connection, currency: str, made: Month) -> list[Any]:
    f = mrr_forecasts.c
    query = (
        select(mrr_forecasts)
        .where(f.currency == currency, f.made_month == str(made))
        .order_by(f.month)
    )
    return list(conn.execute(query).mappings())


def _forecast_month(row: Any) -> ForecastMonth:
    detail = json.loads(row["detail"])
    moved = detail.get("movements")
    return ForecastMonth(
        month=Month.parse(row["month"]),
        closing_mrr=int(row["closing_mrr"]),
        low=row["low_mrr"],
        high=row["high_mrr"],
        models={str(m): v for m, v in detail["models"].items()},
        movements=None if moved is None else ProjectedMonth(**moved),
    )


def _kept_against_actual(
    conn: Connection, currency: str, actual: list[MonthBalance]
) -> list[KeptAgainstActual]:
    """Each closed month's forecast made at its own start, beside its closing MRR."""
    closed = {b.month: b.closing_mrr for b in actual}
    f = mrr_forecasts.c
    query = (
        select(mrr_forecasts)
        .where(f.currency == currency, f.made_month == f.month)
        .order_by(f.month)
    )
    return [
        KeptAgainstActual(
            month,
            str(row.model),
            int(row.closing_mrr),
            row.low_mrr,
            row.high_mrr,
            closed[month],
        )
        for row in conn.execute(query)
        if (month := Month.parse(row.month)) in closed
    ]
