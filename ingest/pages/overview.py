"""Overview: headline figures, the MRR chart and the movements chart."""

from __future__ import annotations

from collections.abc import Callable

from flask import Blueprint, abort, redirect, render_template, url_for
from werkzeug.wrappers import Response as BaseResponse

from ingest import charts
from ingest.formatting import money_short, money_text
from ingest.pages.common import (
    currencies,
    currency_arg,
    mode_arg,
    month_arg,
    reporting_arg,
    reporting_currencies,
    source_arg,
    this_month,
)
from ingest.pages.forecast import Kept, extended, kept
from ingest.services import services
from ledger.reporting.balances import MonthBalance
from ledger.reporting.overview import headline
from ledger.reporting.reports import MAX_MONTHS, Report, ReportQuery, build_report
from ledger.rules.months import Month

overview = Blueprint("overview", __name__)

MOVEMENT_SERIES = (
    ("New", "c-new", "new"),
    ("Reactivation", "c-reactivation", "reactivation"),
    ("Expansion", "c-expansion", "expansion"),
    ("Recovered", "c-recovered", "recovered"),
    ("Contraction", "c-contraction", "contraction"),
    ("Churn", "c-churn", "churn"),
    ("Moved to delinquent", "c-delinquent", "delinquent"),
)


def report_for(first: Month, last: Month, currency: str, reporting: str | None) -> Report:
    if last.index - first.index >= MAX_MONTHS or first > last:
        abort(404, f"no such range: {first} to {last}")
    query = ReportQuery(
        first,
        last,
        currency=currency,
        reporting_currency=reporting,
        livemode=mode_arg(),
        account=source_arg(),
    )
    return build_report(services().engine, query)


def choices() -> tuple[list[str], list[str], str | None, str | None]:
    engine = services().engine
    held = currencies(engine)
    with engine.connect() as conn:
        reporting_options = reporting_currencies(conn, held)
    currency = currency_arg(held)
    return held, reporting_options, currency, reporting_arg(reporting_options)


def mrr_chart(
    months: list[MonthBalance], currency: str, projection: Kept | None = None
) -> charts.Chart:
    columns: list[str] = [str(b.month) for b in months]
    traces: list[charts.Trace] = []
    if projection is not None:
        columns, traces = extended(months, projection.made_month, projection.months, [])
    padding = [0] * (len(columns) - len(months))
    return charts.stacked(
        "MRR at each month end: active and delinquent"
        + (", and the forecast kept this month" if traces else ""),
        columns,
        [
            charts.Series("Active MRR", "c-active", [b.closing_mrr for b in months] + padding),
            charts.Series(
                "Delinquent MRR", "c-delinquent", [b.delinquent_mrr for b in months] + padding
            ),
        ],
        _fmt(currency, money_text),
        _fmt(currency, money_short),
        traces,
    )


def movements_chart(months: list[MonthBalance], currency: str) -> charts.Chart:
    return charts.stacked(
        "MRR movements per month",
        [str(b.month) for b in months],
        [
            charts.Series(name, css, [getattr(b, field) for b in months])
            for name, css, field in MOVEMENT_SERIES
        ],
        _fmt(currency, money_text),
        _fmt(currency, money_short),
    )


def _fmt(currency: str, how: Callable[..., str]) -> Callable[[int], str]:
    return lambda amount: how(amount, currency)


@overview.get("/")
@overview.get("/overview")
def overview_page() -> str:
    held, reporting_options, currency, reporting = choices()
    current = this_month()
    last = month_arg("to", current) or current
    first = month_arg("from", Month(last.index - 11)) or Month(last.index - 11)
    if currency is None:
        return render_template("workspace/overview.html", empty=True, currencies=held)
    # The headline needs the current month and the two before it, whatever the chart shows.
    start = min(first, Month(current.index - 2))
    found = report_for(start, max(last, current), currency, reporting)
    shown_currency = found.main.currency
    by_month = {b.month: b for b in found.main.months}
    shown = [by_month[m] for m in sorted(by_month) if first <= m <= last]
    # Past the current month the chart goes on with the month's forecast, once it is made.
    projection = kept(currency) if reporting is None and last == current else None
    complete, before, to_date = (
        by_month[Month(current.index - 1)],
        by_month[Month(current.index - 2)],
        by_month[current],
    )
    return render_template(
        "workspace/overview.html",
        empty=False,
        currencies=held,
        reporting_options=reporting_options,
        currency=currency,
        reporting=reporting,
        shown_currency=shown_currency,
        first=first,
        last=last,
        complete=complete,
        to_date=to_date,
        complete_figures=headline(complete, before),
        to_date_figures=headline(to_date, complete),
        months=shown,
        mrr_chart=mrr_chart(shown, shown_currency, projection),
        projection=projection,
        movements_chart=movements_chart(shown, shown_currency),
        movement_series=MOVEMENT_SERIES,
        warnings=found.warnings,
        unconverted=found.unconverted,
    )


@overview.get("/report")
def old_report() -> BaseResponse:
    return redirect(url_for("overview.overview_page"))
