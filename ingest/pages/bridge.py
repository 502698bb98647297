"""Bridge: the monthly MRR waterfall, each line explained, each cell opening its entries."""

from __future__ import annotations

from flask import Blueprint, render_template

from ingest.pages.common import month_arg, this_month
from ingest.pages.overview import choices, report_for
from ingest.pages.rules import anchor_for
from ledger.reporting.overview import ACTIVE_LINES, DELINQUENT_LINES, value
from ledger.rules.months import Month

bridge = Blueprint("bridge", __name__)


@bridge.get("/bridge")
def bridge_page() -> str:
    held, reporting_options, currency, reporting = choices()
    last = month_arg("to", this_month()) or this_month()
    first = month_arg("from", Month(last.index - 5)) or Month(last.index - 5)
    if currency is None:
        return render_template("workspace/bridge.html", empty=True, currencies=held)
    found = report_for(first, last, currency, reporting)
    sections = [
        ("Active MRR", ACTIVE_LINES),
        ("Delinquent MRR", DELINQUENT_LINES),
    ]
    return render_template(
        "workspace/bridge.html",
        empty=False,
        currencies=held,
        reporting_options=reporting_options,
        currency=currency,
        reporting=reporting,
        shown_currency=found.main.currency,
        first=first,
        last=last,
        months=found.main.months,
        sections=sections,
        value=value,
        anchor_for=anchor_for,
        # Converted cells are not sums of stored amounts: they do not link to entries.
        linked=reporting is None,
        warnings=found.warnings,
    )
