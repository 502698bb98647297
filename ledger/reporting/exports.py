"""Reports and ledger rows as JSON-ready dicts, CSV lines and text tables. Pure.

Amounts are decimal strings in major units with the currency's own decimals; movements keep
their signs; ratios have 4 decimals; an undefined figure is null (empty in CSV).
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Iterator, Sequence
from decimal import Decimal
from typing import Any

from ledger.reporting.accounts import Breakdown
from ledger.reporting.balances import MonthBalance
from ledger.reporting.metrics import metrics
from ledger.reporting.queries import LedgerRow
from ledger.reporting.reports import CurrencyReport, Report
from ledger.rules.money import major_text, to_major

AMOUNT_FIELDS = (
    "opening_mrr",
    "new",
    "reactivation",
    "expansion",
    "contraction",
    "churn",
    "delinquent",
    "recovered",
    "closing_mrr",
    "net_new_mrr",
    "opening_delinquent_mrr",
    "delinquent_churn",
    "delinquent_change",
    "delinquent_mrr",
)
METRIC_FIELDS = (
    "customer_churn_rate",
    "gross_mrr_churn_rate",
    "net_mrr_churn_rate",
    "net_revenue_retention",
    "quick_ratio",
    "ltv",
)
MONTH_FIELDS = ("month", *AMOUNT_FIELDS, "customers", "arpu", *METRIC_FIELDS)
LEDGER_FIELDS = (
    "id",
    "effective_date",
    "effective_at",
    "month",
    "customer_id",
    "subscription_id",
    "category",
    "currency",
    "amount",
    "source_event_id",
    "cause_event_id",
    "reversal_of",
    "reversed_by",
    "recorded_at",
)

Value = str | int | None


def _text(value: Decimal | None) -> str | None:
    return None if value is None else f"{value:f}"


def month_fields(b: MonthBalance) -> dict[str, Value]:
    fields: dict[str, Value] = {"month": str(b.month)}
    for name in AMOUNT_FIELDS:
        fields[name] = major_text(getattr(b, name), b.currency)
    fields["customers"] = b.customers
    fields["arpu"] = _text(b.arpu)
    found = metrics(b)
    for name in METRIC_FIELDS:
        fields[name] = _text(getattr(found, name))
    return fields


def _range(report: Report, part: CurrencyReport) -> dict[str, Any]:
    return {
        "currency": part.currency,
        "from": str(report.query.first),
        "to": str(report.query.last),
        "months": [month_fields(b) for b in part.months],
    }


def report_json(report: Report) -> dict[str, Any]:
    document = _range(report, report.main)
    # Which figures these are: one mode, every account or one (ledger/rules/sources.py).
    document["mode"] = report.mode.name
    document["source"] = report.query.account
    if report.mode.note is not None:
        document["note"] = report.mode.note
    if report.query.reporting_currency is not None:
        document["reporting_currency"] = True
        document["unconverted"] = [_range(report, part) for part in report.unconverted]
        document["warnings"] = list(report.warnings)
    return document


def csv_line(values: Sequence[Value]) -> str:
    out = io.StringIO()
    csv.writer(out, lineterminator="\r\n").writerow(["" if v is None else v for v in values])
    return out.getvalue()


def report_csv(report: Report) -> Iterator[str]:
    """One row per currency and month, header first."""
    yield csv_line(["currency", *MONTH_FIELDS])
    for part in [report.main, *report.unconverted]:
        for b in part.months:
            fields = month_fields(b)
            yield csv_line([part.currency, *(fields[name] for name in MONTH_FIELDS)])


def report_table(report: Report) -> str:
    """The bridge: one column per month, one line per figure."""
    blocks = [_bridge(part) for part in [report.main, *report.unconverted]]
    return "\n\n".join(blocks) + "\n"


def _bridge(part: CurrencyReport) -> str:
    return bridge_table(part.months, part.currency)


def bridge_table(months: Sequence[MonthBalance], currency: str) -> str:
    """The bridge of one currency: one column per month, one line per figure."""
    rows = [month_fields(b) for b in months]
    names = [f"{currency.upper()}", *MONTH_FIELDS[1:]]
    columns = [[str(r["month"]) for r in rows]]
    columns += [["-" if r[n] is None else str(r[n]) for r in rows] for n in MONTH_FIELDS[1:]]
    label = max(len(n) for n in names)
    widths = [max(len(columns[0][i]), *(len(c[i]) for c in columns)) for i in range(len(rows))]
    lines = []
    for name, cells in zip(names, columns, strict=True):
        values = "  ".join(cell.rjust(w) for cell, w in zip(cells, widths, strict=True))
        lines.append(f"{name.ljust(label)}  {values}")
    return "\n".join(lines)


# --- ledger rows -----------------------------------------------------------------------------


def _iso(moment: Any) -> str:
    return str(moment.isoformat().replace("+00:00", "Z"))


def ledger_fields(row: LedgerRow) -> dict[str, Value]:
    return {
        "id": row.id,
        "effective_date": row.effective_at.date().isoformat(),
        "effective_at": _iso(row.effective_at),
        "month": f"{row.effective_at.year:04d}-{row.effective_at.month:02d}",
        "customer_id": row.customer_id,
        "subscription_id": row.subscription_id,
        "category": row.category.value,
        "currency": row.currency,
        "amount": f"{to_major(row.amount, row.currency):f}",
        "source_event_id": row.source_event_id,
        "cause_event_id": row.cause_event_id,
        "reversal_of": row.reversal_of,
        "reversed_by": row.reversed_by,
        "recorded_at": _iso(row.recorded_at),
    }


_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
_TEXT_FIELDS = frozenset(
    {"customer_id", "subscription_id", "source_event_id", "cause_event_id", "category"}
)


def safe_text(value: str) -> Value:
    """A text cell from outside (an id, a metadata value), kept from running as a formula."""
    return _cell("customer_id", value)


def _cell(name: str, value: Value) -> Value:
    # A spreadsheet runs a text cell starting with "=" as a formula; ids come from outside.
    if name in _TEXT_FIELDS and isinstance(value, str) and value.startswith(_FORMULA_START):
        return "'" + value
    return value


def ledger_csv(rows: Iterable[LedgerRow]) -> Iterator[str]:
    yield csv_line(list(LEDGER_FIELDS))
    for row in rows:
        fields = ledger_fields(row)
        yield csv_line([_cell(name, fields[name]) for name in LEDGER_FIELDS])


def ledger_table_line(row: LedgerRow) -> str:
    f = ledger_fields(row)
    reversal = f" reverses {row.reversal_of}" if row.reversal_of else ""
    reversed_by = f" reversed by {row.reversed_by}" if row.reversed_by else ""
    return (
        f"{row.id:>8}  {f['effective_at']}  {row.category.value:<17}  {row.customer_id}  "
        f"{row.subscription_id}  {f['amount']:>12} {row.currency}  {row.source_event_id}"
        f"{reversal}{reversed_by}"
    )


# --- the account breakdown -------------------------------------------------------------------


def _account_name(account: str) -> str:
    return account or "default"


def breakdown_json(found: Breakdown) -> dict[str, Any]:
    return {
        "consolidated": report_json(found.consolidated),
        "accounts": [
            {"source": _account_name(account), **_range(report, report.main)}
            for account, report in found.accounts
        ],
        "adds_up": not found.mismatches,
        "mismatches": list(found.mismatches),
    }


def breakdown_csv(found: Breakdown) -> Iterator[str]:
    """One row per account and month, then the consolidated rows (source `all`)."""
    yield csv_line(["source", "currency", *MONTH_FIELDS])
    parts = [*((_account_name(a), r) for a, r in found.accounts), ("all", found.consolidated)]
    for name, report in parts:
        for b in report.main.months:
            fields = month_fields(b)
            yield csv_line([name, b.currency, *(fields[f] for f in MONTH_FIELDS)])


def breakdown_table(found: Breakdown) -> str:
    blocks = [
        f"source {_account_name(account)}\n{bridge_table(r.main.months, r.main.currency)}"
        for account, r in found.accounts
    ]
    whole = found.consolidated.main
    blocks.append(f"all accounts\n{bridge_table(whole.months, whole.currency)}")
    verdict = (
        "the accounts add up to the consolidated figures"
        if not found.mismatches
        else "the accounts do NOT add up: " + "; ".join(found.mismatches)
    )
    return "\n\n".join(blocks) + f"\n\n{verdict}\n"
