"""MRR by segment: one bridge per plan, product, billing interval, country or metadata value.

Plans, products and intervals come from the rules' replay (`ledger.rules.segments`): each
segment's movements are classified as if it were the whole business, and their sums are kept in
`segment_month_totals`, so a by-plan report reads as few rows as the plain one. Countries and
metadata values are customer attributes (`customer_profiles`, the latest `customer.*` event):
each customer is in one of them, with its whole MRR, so those bridges are the customers' own
months (`customer_months`) grouped by the attribute's current value.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Connection, Engine, and_, cast, func, select
from sqlalchemy.dialects.postgresql import JSONB

from ledger.reporting import customer_months, projector
from ledger.reporting.balances import MOVEMENTS, MonthBalance, MonthTotals, balances
from ledger.reporting.modes import choose_mode
from ledger.reporting.reports import (
    BadInput,
    CurrencyReport,
    ReportQuery,
    build_report,
    choose_currency,
)
from ledger.rules.months import Month
from ledger.storage.schema import (
    ALL,
    BALANCE_COLUMNS,
    customer_profiles,
    segment_month_totals,
)
from ledger.storage.schema import customer_months as months_table

__all__ = [
    "ITEM_DIMENSIONS",
    "NONE",
    "SegmentQuery",
    "SegmentReport",
    "attribute_column",
    "build_segments",
    "parse_dimension",
    "segment_query",
]

ITEM_DIMENSIONS = ("plan", "product", "interval")
NONE = "(none)"
_METADATA_KEY = re.compile(r"metadata\.([A-Za-z0-9_\-]{1,40})")


@dataclass(frozen=True, slots=True)
class SegmentQuery:
    report: ReportQuery
    by: str  # plan, product, interval, country or metadata.KEY
    values: tuple[str, ...] = ()  # only these segments (--where); empty: all

    @property
    def by_item(self) -> bool:
        return self.by in ITEM_DIMENSIONS


@dataclass(frozen=True, slots=True)
class SegmentReport:
    query: SegmentQuery
    total: CurrencyReport
    segments: list[tuple[str, list[MonthBalance]]]
    note: str
    # Per month: the segments' closing MRR, delinquent MRR and customers, added up.
    sums: list[tuple[Month, int, int, int]] = field(default_factory=list)


def parse_dimension(text: str, name: str = "by") -> str:
    found = text.strip()
    if found in (*ITEM_DIMENSIONS, "country") or _METADATA_KEY.fullmatch(found):
        return found
    raise BadInput(
        name,
        f"{text!r} is not a dimension: plan, product, interval, country or metadata.KEY "
        "(a key of letters, digits, _ and -)",
    )


def segment_query(report: ReportQuery, by: str | None, where: Sequence[str]) -> SegmentQuery:
    """`by` a dimension; `where` terms DIMENSION=VALUE, all on that dimension (their values
    are the segments shown). Without `by`, the dimension of `where`."""
    dimension = None if by is None else parse_dimension(by)
    values: list[str] = []
    for term in where:
        name, equals, value = term.partition("=")
        if not equals or not value.strip():
            raise BadInput("where", f"{term!r} is not DIMENSION=VALUE")
        named = parse_dimension(name, "where")
        if dimension is None:
            dimension = named
        if named != dimension:
            raise BadInput(
                "where",
                f"{term!r} filters by {named}, the report is by {dimension}: "
                "filter on the dimension reported",
            )
        values.append(value.strip())
    if dimension is None:
        raise BadInput("by", "choose a dimension (by) or a filter (where)")
    return SegmentQuery(report, dimension, tuple(values))


def build_segments(engine: Engine, query: SegmentQuery) -> SegmentReport:
    """The total's bridge and each segment's, from the stored totals brought up to date."""
    asked, first, last = query.report.currency, query.report.first, query.report.last
    if query.report.as_of is not None or query.report.reporting_currency is not None:
        raise BadInput("by", "segments are reported from the stored figures: not as of a past "
                       "time, nor in a reporting currency")  # fmt: skip
    with engine.begin() as conn:
        projector.catch_up(conn)
        if not query.by_item:
            customer_months.catch_up(conn)
    account = query.report.account
    # One account's total is summed from the ledger, as the plain report of one account is.
    plain = None if account is None else build_report(engine, query.report)
    with engine.connect() as conn:
        livemode = choose_mode(conn, query.report.livemode).livemode
        if plain is None:
            currency = choose_currency(asked, projector.stored_currencies(conn, livemode))
            whole = projector.stored_totals(conn, currency, last, livemode)
            total = CurrencyReport(currency, balances(whole, currency, first, last))
        else:
            total = plain.main
        currency = total.currency
        source = Source(livemode, account)
        if query.by_item:
            totals = _item_totals(conn, query.by, currency, last, source)
        else:
            totals = _attribute_totals(conn, query.by, currency, last, source)
    wanted = set(query.values)
    segments = []
    for segment in sorted(totals):
        if wanted and segment not in wanted:
            continue
        months = balances(totals[segment], currency, first, last)
        if any(_moves(b) for b in months):
            segments.append((segment, months))
    sums = [
        (
            b.month,
            sum(s[i].closing_mrr for _, s in segments),
            sum(s[i].delinquent_mrr for _, s in segments),
            sum(s[i].customers for _, s in segments),
        )
        for i, b in enumerate(total.months)
    ]
    return SegmentReport(query, total, segments, _note(query), sums)


def _moves(b: MonthBalance) -> bool:
    return any(
        (b.opening_mrr, b.closing_mrr, b.opening_delinquent_mrr, b.delinquent_mrr, b.customers)
    ) or any(getattr(b, c.value) for c in MOVEMENTS)


def _note(query: SegmentQuery) -> str:
    by = query.by
    if query.values:
        filtered = "Only the segments asked for are shown, so they add up to part of the total. "
    else:
        filtered = ""
    if query.by_item:
        return filtered + (
            f"Month-end MRR and delinquent MRR of the {by} segments add up to the total. "
            f"A customer with MRR in two {by}s counts once in the total and once in each, so "
            "customers may add up to more. Movements do not add up: each segment's are "
            f"classified as if it were the whole business, so a move between {by}s is churn "
            "or contraction in one and new or expansion in the other, and one expansion or "
            "contraction (or nothing) in the total."
        )
    return filtered + (
        f"Each customer is in one {by} segment (its current value; customers without one are "
        f"under {NONE}), with its whole MRR: MRR, customers and movements add up to the total."
    )


def _totals(rows: Any, currency: str) -> dict[str, list[MonthTotals]]:
    found: dict[str, list[MonthTotals]] = {}
    width = len(MOVEMENTS)
    for segment, month, *values in rows:
        found.setdefault(str(segment), []).append(
            MonthTotals(
                currency=currency,
                month=Month(int(month[:4]) * 12 + int(month[5:7]) - 1),  # stored 'YYYY-MM'
                movements=tuple(int(v or 0) for v in values[:width]),
                customers_change=int(values[width] or 0),
                customers_lost=int(values[width + 1] or 0),
            )
        )
    return found


@dataclass(frozen=True, slots=True)
class Source:
    """Whose rows a segment report reads: one mode, and every account (None) or one."""

    livemode: bool
    account: str | None

    def of(self, columns: Any) -> Any:
        """The condition on a table keyed by source (migration 0018)."""
        mode = columns.livemode == self.livemode
        return mode if self.account is None else and_(mode, columns.account == self.account)


def _item_totals(
    conn: Connection, dimension: str, currency: str, last: Month, source: Source
) -> dict[str, list[MonthTotals]]:
    t = segment_month_totals.c
    query = (
        select(t.segment, t.month, *(func.sum(t[name]) for name in BALANCE_COLUMNS))
        .where(source.of(t), t.dimension == dimension, t.currency == currency)
        .where(t.month <= str(last))
        .group_by(t.segment, t.month)
        .order_by(t.segment, t.month)
    )
    return _totals(conn.execute(query), currency)


def attribute_column(dialect: str, by: str) -> Any:
    """A customer attribute (`country` or `metadata.KEY`) of `customer_profiles`, in SQL."""
    p = customer_profiles.c
    if by == "country":
        return p.country
    found = _METADATA_KEY.fullmatch(by)
    assert found is not None
    key = found.group(1)
    if dialect == "postgresql":
        return cast(p.metadata, JSONB)[key].astext
    return func.json_extract(p.metadata, f'$."{key}"')


def _attribute_totals(
    conn: Connection, by: str, currency: str, last: Month, source: Source
) -> dict[str, list[MonthTotals]]:
    c = months_table.c
    segment = func.coalesce(attribute_column(conn.dialect.name, by), NONE).label("segment")
    query = (
        select(
            segment,
            c.month,
            *(func.sum(c[name]) for name in BALANCE_COLUMNS),
        )
        .select_from(
            months_table.outerjoin(
                customer_profiles, customer_profiles.c.customer_id == c.customer_id
            )
        )
        .where(source.of(c), c.dimension == ALL, c.segment == ALL)
        .where(c.currency == currency, c.month <= str(last))
        .group_by(segment, c.month)
        .order_by(segment, c.month)
    )
    return _totals(conn.execute(query), currency)
