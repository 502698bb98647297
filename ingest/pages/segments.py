"""Segments (MRR by plan, product, interval, country) and cohorts (a heat map)."""

from __future__ import annotations

import functools
from decimal import ROUND_HALF_EVEN, Decimal

from flask import Blueprint, abort, render_template, request

from ingest import charts
from ingest.formatting import money_short, money_text
from ingest.pages.common import (
    currencies,
    currency_arg,
    mode_arg,
    month_arg,
    source_arg,
    text_arg,
    this_month,
)
from ingest.services import services
from ledger.reporting.cohorts import METRICS, CohortTable, build_cohorts
from ledger.reporting.reports import BadInput, ReportQuery
from ledger.reporting.segments import SegmentReport, build_segments, segment_query
from ledger.rules.months import Month

segments = Blueprint("segments", __name__)

DIMENSIONS = ("plan", "product", "interval", "country")
# Colours of the segments in the chart, in order; the rest are added up as "other".
PALETTE = 8
HEAT_STEPS = 10


def _range(default_months: int) -> tuple[Month, Month]:
    current = this_month()
    last = month_arg("to", current) or current
    first = month_arg("from", Month(last.index - default_months + 1)) or Month(
        last.index - default_months + 1
    )
    if first > last or last.index - first.index >= 120:
        abort(404, f"no such range: {first} to {last} (at most 120 months)")
    return first, last


def _dimension(name: str = "by") -> str:
    value = request.args.get(name, "plan")
    if value not in DIMENSIONS and not value.startswith("metadata."):
        abort(404, f"no such dimension: {value[:40]!r}")
    return value


def segment_chart(found: SegmentReport) -> charts.Chart:
    """Month-end MRR stacked by segment: the largest at the last month first."""
    currency = found.total.currency
    ranked = sorted(found.segments, key=lambda s: (-s[1][-1].closing_mrr, s[0]))
    shown, rest = ranked[: PALETTE - 1], ranked[PALETTE - 1 :]
    if len(rest) == 1:
        shown, rest = ranked, []
    series = [
        charts.Series(name, f"c-seg-{n}", [b.closing_mrr for b in months])
        for n, (name, months) in enumerate(shown)
    ]
    if rest:
        other = [sum(months[i].closing_mrr for _, months in rest) for i in range(len(found.sums))]
        series.append(charts.Series(f"{len(rest)} others", f"c-seg-{PALETTE - 1}", other))
    return charts.stacked(
        f"Active MRR at each month end by {found.query.by}",
        [str(month) for month, *_ in found.sums],
        series,
        functools.partial(money_text, currency=currency),
        functools.partial(money_short, currency=currency),
    )


@segments.get("/segments")
def segments_page() -> str:
    by = _dimension()
    first, last = _range(12)
    engine = services().engine
    held = currencies(engine)
    currency = currency_arg(held)
    if currency is None:
        return render_template("workspace/segments.html", empty=True, by=by, dimensions=DIMENSIONS)
    try:
        asked = ReportQuery(
            first, last, currency=currency, livemode=mode_arg(), account=source_arg()
        )
        query = segment_query(asked, by, [])
        found = build_segments(engine, query)
    except BadInput as problem:
        abort(404, problem.message)
    return render_template(
        "workspace/segments.html",
        empty=False,
        by=by,
        dimensions=DIMENSIONS,
        currencies=held,
        currency=currency,
        first=first,
        last=last,
        found=found,
        plan_chart=segment_chart(found),
    )


def heat(share: Decimal | None) -> str:
    """A CSS class for a share: heat-0 (none) to heat-10 (all or more)."""
    if share is None:
        return "heat-none"
    step = int((share * HEAT_STEPS).to_integral_value(ROUND_HALF_EVEN))
    return f"heat-{max(0, min(HEAT_STEPS, step))}"


@segments.get("/cohorts")
def cohorts_page() -> str:
    metric = request.args.get("metric", "customers")
    if metric not in METRICS:
        abort(404, f"no such metric: {metric[:40]!r}")
    by = request.args.get("by") or None
    if by is not None:
        by = _dimension()
    first, last = _range(12)
    engine = services().engine
    held = currencies(engine)
    currency = currency_arg(held)
    table: CohortTable | None = None
    if currency is not None:
        try:
            table = build_cohorts(
                engine,
                str(first),
                str(last),
                currency=currency,
                metric=metric,
                by=by,
                mode=text_arg("mode"),
                source=text_arg("source"),
            )
        except BadInput as problem:
            abort(404, problem.message)
    return render_template(
        "workspace/cohorts.html",
        table=table,
        metric=metric,
        by=by,
        dimensions=DIMENSIONS,
        currencies=held,
        currency=currency,
        first=first,
        last=last,
        heat=heat,
        ages=max((len(c.cells) for c in table.cohorts), default=0) if table else 0,
    )
