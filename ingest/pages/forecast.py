"""Forecast: closing MRR ahead with its interval, committed MRR, the backtest and past forecasts
against what happened; and the traces the overview's MRR chart draws past the last month."""

from __future__ import annotations

from dataclasses import dataclass

from flask import Blueprint, abort, render_template

from ingest import charts
from ingest.formatting import money_short, money_text
from ingest.pages.common import (
    currencies,
    currency_arg,
    now,
    reporting_arg,
    reporting_currencies,
)
from ingest.services import services
from ledger.reporting.backtest import HORIZONS
from ledger.reporting.balances import MonthBalance
from ledger.reporting.committed import build_committed
from ledger.reporting.forecast import Forecast, ForecastMonth, build_forecast, kept_forecast
from ledger.reporting.forecast_exports import MODEL_NAMES
from ledger.reporting.forecast_models import MODELS
from ledger.reporting.reports import BadInput
from ledger.rules.commitments import CommittedMonth, CommittedMrr
from ledger.rules.months import Month

forecast = Blueprint("forecast", __name__)

AHEAD = 12


@dataclass(frozen=True, slots=True)
class Ahead:
    """What the MRR chart draws past the last complete month."""

    forecast: Forecast
    committed: CommittedMrr


@dataclass(frozen=True, slots=True)
class Kept:
    """What the overview draws past the last complete month: the forecast kept this month."""

    made_month: Month
    months: list[ForecastMonth]


def kept(currency: str) -> Kept | None:
    """The month's kept forecast of `currency`; None until one is made (the overview never
    makes one: that backtests the whole ledger)."""
    moment = now()
    found = kept_forecast(services().engine, moment, currency)
    return Kept(Month.of(moment), found) if found else None


def ahead(currency: str, months: int = AHEAD, reporting: str | None = None) -> Ahead | None:
    """The forecast and committed MRR of `currency`, or of every currency converted into
    `reporting`; None when there is nothing to project."""
    engine = services().engine
    chosen = currency if reporting is None else None
    try:
        return Ahead(
            build_forecast(engine, now(), months, chosen, reporting_currency=reporting),
            build_committed(engine, now(), months, chosen, reporting_currency=reporting),
        )
    except BadInput:
        return None


def extended(
    months: list[MonthBalance],
    made_month: Month,
    ahead_months: list[ForecastMonth],
    committed_months: list[CommittedMonth],
) -> tuple[list[str], list[charts.Trace]]:
    """Columns of the shown months and the forecast's, and the traces over them: the forecast
    and its interval from the last complete month's closing MRR on, committed MRR."""
    shown = [b.month for b in months]
    future = [m.month for m in ahead_months if not shown or m.month > shown[-1]]
    columns = [*shown, *future]
    index = {m: i for i, m in enumerate(columns)}
    line: list[int | None] = [None] * len(columns)
    high: list[int | None] = [None] * len(columns)
    low: list[int | None] = [None] * len(columns)
    committed: list[int | None] = [None] * len(columns)
    anchor = Month(made_month.index - 1)
    for b in months:
        if b.month == anchor:
            line[index[anchor]] = high[index[anchor]] = low[index[anchor]] = b.closing_mrr
    for m in ahead_months:
        if m.month in index:
            line[index[m.month]] = m.closing_mrr
            high[index[m.month]] = m.high
            low[index[m.month]] = m.low
    for c in committed_months:
        if c.month in index:
            committed[index[c.month]] = c.committed_mrr
    traces = [charts.Trace("Forecast", "c-forecast", line)]
    if committed_months:
        traces.append(charts.Trace("Committed MRR", "c-committed", committed))
    if any(v is not None for v in high[index.get(anchor, 0) + 1 :]):
        traces.insert(0, charts.Trace("80% interval", "c-interval", high, low))
    return [str(c) for c in columns], traces


@forecast.get("/forecast")
def forecast_page() -> str:
    engine = services().engine
    held = currencies(engine)
    currency = currency_arg(held)
    if currency is None:
        return render_template("workspace/forecast.html", empty=True, currencies=held)
    with engine.connect() as conn:
        reporting_options = reporting_currencies(conn, held)
    reporting = reporting_arg(reporting_options)
    found = ahead(currency, reporting=reporting)
    if found is None:
        abort(404, f"no {currency.upper()} history to forecast from")
    shown = reporting or currency
    history = [
        b for b in found.forecast.history if b.month.index >= found.forecast.made_month.index - 12
    ]
    columns, traces = extended(
        history, found.forecast.made_month, found.forecast.months, found.committed.months
    )
    padded = [*[b.closing_mrr for b in history], *[0] * (len(columns) - len(history))]
    owed = [*[b.delinquent_mrr for b in history], *[0] * (len(columns) - len(history))]
    chart = charts.stacked(
        "MRR at each month end, the forecast with its 80% interval, and committed MRR",
        columns,
        [
            charts.Series("Active MRR", "c-active", padded),
            charts.Series("Delinquent MRR", "c-delinquent", owed),
        ],
        lambda amount: money_text(amount, shown),
        lambda amount: money_short(amount, shown),
        traces,
    )
    return render_template(
        "workspace/forecast.html",
        empty=False,
        currencies=held,
        currency=currency,
        reporting_options=reporting_options,
        reporting=reporting,
        shown=shown,
        f=found.forecast,
        c=found.committed,
        chart=chart,
        models=MODELS,
        model_names=MODEL_NAMES,
        horizons=HORIZONS,
    )
