"""Segment reports, cohort tables and MRR per customer per month as JSON-ready dicts, CSV lines
and text tables. Pure; amounts as in `exports` (major units, decimal strings)."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from decimal import Decimal
from typing import Any

from ledger.reporting.balances import MonthBalance
from ledger.reporting.cohorts import CohortTable
from ledger.reporting.customer_months import CustomerMonth, Top
from ledger.reporting.exports import MONTH_FIELDS, Value, csv_line, month_fields, safe_text
from ledger.reporting.segments import SegmentReport
from ledger.rules.entries import Category
from ledger.rules.money import major_text

SUM_FIELDS = ("month", "closing_mrr", "delinquent_mrr", "customers")
CUSTOMER_MONTH_FIELDS = (
    "customer_id",
    "month",
    "currency",
    "active_mrr",
    "delinquent_mrr",
    "category",
    "plans",
    *(c.value for c in Category),
)


def _money(amount: int, currency: str) -> str:
    return major_text(amount, currency)


def _share(value: Decimal | None) -> str | None:
    return None if value is None else f"{value:f}"


def segment_json(report: SegmentReport) -> dict[str, Any]:
    currency = report.total.currency
    return {
        "currency": currency,
        "from": str(report.query.report.first),
        "to": str(report.query.report.last),
        "by": report.query.by,
        "where": list(report.query.values),
        "note": report.note,
        "total": [month_fields(b) for b in report.total.months],
        "segments": [
            {"segment": name, "months": [month_fields(b) for b in months]}
            for name, months in report.segments
        ],
        "sums": [
            {
                "month": str(month),
                "closing_mrr": _money(closing, currency),
                "delinquent_mrr": _money(owing, currency),
                "customers": customers,
            }
            for month, closing, owing, customers in report.sums
        ],
    }


def segment_csv(report: SegmentReport) -> Iterator[str]:
    """One row per segment and month, the total's rows first (segment empty)."""
    yield csv_line(["currency", "by", "segment", *MONTH_FIELDS])
    parts: list[tuple[str, list[MonthBalance]]] = [("", report.total.months), *report.segments]
    for name, months in parts:
        for b in months:
            fields = month_fields(b)
            yield csv_line(
                [b.currency, report.query.by, safe_text(name), *(fields[n] for n in MONTH_FIELDS)]
            )


def segment_table(report: SegmentReport) -> str:
    from ledger.reporting.exports import bridge_table

    currency = report.total.currency
    blocks = [f"{currency.upper()} total\n" + bridge_table(report.total.months, currency)]
    for name, months in report.segments:
        blocks.append(f"{report.query.by} {name}\n" + bridge_table(months, currency))
    sums = ["segments added up", *(
        f"  {month}  closing_mrr {_money(closing, currency)}  delinquent_mrr "
        f"{_money(owing, currency)}  customers {customers}"
        for month, closing, owing, customers in report.sums
    )]  # fmt: skip
    blocks.append("\n".join(sums))
    blocks.append(f"note: {report.note}")
    return "\n\n".join(blocks) + "\n"


def cohort_json(table: CohortTable) -> dict[str, Any]:
    return {
        "currency": table.currency,
        "from": str(table.first),
        "to": str(table.last),
        "metric": table.metric,
        "by": table.by,
        "cohorts": [
            {
                "segment": cohort.segment,
                "cohort": str(cohort.month),
                "customers": cohort.size,
                "starting_mrr": _money(cohort.starting_mrr, table.currency),
                "months": [
                    {
                        "month": str(cell.month),
                        "age": cell.age,
                        "customers": cell.customers,
                        "customers_share": _share(cell.customers_share),
                        "delinquent_customers": cell.delinquent,
                        "mrr": _money(cell.mrr, table.currency),
                        "mrr_share": _share(cell.mrr_share),
                    }
                    for cell in cohort.cells
                ],
            }
            for cohort in table.cohorts
        ],
    }


COHORT_FIELDS = (
    "segment",
    "cohort",
    "cohort_customers",
    "starting_mrr",
    "month",
    "age",
    "customers",
    "customers_share",
    "delinquent_customers",
    "mrr",
    "mrr_share",
)


def cohort_csv(table: CohortTable) -> Iterator[str]:
    yield csv_line(["currency", *COHORT_FIELDS])
    for cohort in cohort_json(table)["cohorts"]:
        for cell in cohort["months"]:
            yield csv_line(
                [
                    table.currency,
                    safe_text(cohort["segment"]),
                    cohort["cohort"],
                    cohort["customers"],
                    cohort["starting_mrr"],
                    cell["month"],
                    cell["age"],
                    cell["customers"],
                    cell["customers_share"],
                    cell["delinquent_customers"],
                    cell["mrr"],
                    cell["mrr_share"],
                ]
            )


def cohort_table(table: CohortTable) -> str:
    """Cohorts down, months since the cohort's month across: the share retained (customers or
    MRR, as chosen), the count of delinquent customers in brackets where there are any."""
    ages = max((len(c.cells) for c in table.cohorts), default=0)
    width = max((len(c.segment) for c in table.cohorts), default=0) + 2 if table.by else 0
    header = f"{table.currency.upper()} {table.metric}"
    lines = [
        f"{header:<{width + 8}}  {'size':>5}  "
        + "  ".join(f"{'+' + str(a):>12}" for a in range(ages))
    ]
    for cohort in table.cohorts:
        cells = []
        for cell in cohort.cells:
            share = cell.customers_share if table.metric == "customers" else cell.mrr_share
            shown = "-" if share is None else f"{share * 100:.1f}%"
            if cell.delinquent:
                shown += f" ({cell.delinquent})"
            cells.append(f"{shown:>12}")
        name = f"{cohort.segment:<{width}}" if table.by else ""
        lines.append(f"{name}{cohort.month!s:<8}  {cohort.size:>5}  " + "  ".join(cells))
    lines.append(
        "shares of the cohort's customers (or of its MRR at the end of its first month); "
        "(n): customers delinquent that month, neither retained nor gone"
    )
    return "\n".join(lines) + "\n"


def customer_month_fields(row: CustomerMonth) -> dict[str, Value]:
    fields: dict[str, Value] = {
        "customer_id": row.customer_id,
        "month": str(row.month),
        "currency": row.currency,
        "active_mrr": _money(row.active, row.currency),
        "delinquent_mrr": _money(row.delinquent, row.currency),
        "category": row.category,
        "plans": " ".join(row.plans),
    }
    for category, amount in zip(Category, row.movements, strict=True):
        fields[category.value] = _money(amount, row.currency)
    return fields


def _cell(name: str, value: Value) -> Value:
    return (
        safe_text(value) if name in ("customer_id", "plans") and isinstance(value, str) else value
    )


def customer_months_csv(rows: Iterable[CustomerMonth]) -> Iterator[str]:
    yield csv_line(list(CUSTOMER_MONTH_FIELDS))
    for row in rows:
        fields = customer_month_fields(row)
        yield csv_line([_cell(n, fields[n]) for n in CUSTOMER_MONTH_FIELDS])


def top_json(found: Top) -> dict[str, Any]:
    return {
        "month": str(found.month),
        "currency": found.currency,
        "closing_mrr": _money(found.total_mrr, found.currency),
        "customers": found.total_customers,
        "top10_mrr": _money(found.top10_mrr, found.currency),
        "top10_share": _share(found.top10_share),
        "top": [
            {"customer_id": customer_id, "active_mrr": _money(mrr, found.currency)}
            for customer_id, mrr in found.customers
        ],
    }
