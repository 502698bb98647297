"""Cohorts: customers grouped by the month of their first paid MRR, followed month by month.

A customer's cohort is the first month with `new` MRR in its `customer_months` rows (of the
whole customer, or within a plan, product or interval with `by`). For each cohort and each
month since: the customers retained (active MRR > 0 at the month end) as a count and a share
of the cohort, the delinquent ones apart (no active MRR, delinquent MRR > 0: neither retained
nor gone), and the active MRR retained as a share of the cohort's MRR at the end of its first
month (expansion can take it above 100%).

Each customer row adds what it holds at its month and takes it away at its next row's month;
those changes per cohort and month are kept in `cohort_month_changes` as the rows change, so the
table is the running sums of a few stored rows per cohort and month. For a customer attribute
(country, metadata), whose value can change without a ledger row, the database adds up the same
changes from the customers' rows at each request.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import ROUND_HALF_EVEN, Decimal
from typing import Any

from sqlalchemy import Connection, Engine, and_, case, func, select

from ledger.reporting import customer_months
from ledger.reporting.modes import ModeChoice
from ledger.reporting.reports import BadInput, build_report, report_query
from ledger.reporting.segments import (
    ITEM_DIMENSIONS,
    NONE,
    Source,
    attribute_column,
    parse_dimension,
)
from ledger.rules.months import Month, span
from ledger.storage.schema import ALL, COHORT_COLUMNS, cohort_month_changes, customer_profiles
from ledger.storage.schema import customer_months as months_table

__all__ = ["Cohort", "CohortCell", "CohortTable", "build_cohorts"]

METRICS = ("customers", "mrr")
_SHARE = Decimal("0.0001")


@dataclass(frozen=True, slots=True)
class CohortCell:
    month: Month
    age: int  # months since the cohort's month
    customers: int  # retained: active MRR > 0
    delinquent: int  # delinquent MRR only, counted apart
    mrr: int  # active MRR, minor units
    customers_share: Decimal | None
    mrr_share: Decimal | None


@dataclass(frozen=True, slots=True)
class Cohort:
    segment: str  # 'all' without `by`
    month: Month
    size: int
    starting_mrr: int
    cells: list[CohortCell]


@dataclass(frozen=True, slots=True)
class CohortTable:
    currency: str
    first: Month
    last: Month
    metric: str
    by: str | None
    cohorts: list[Cohort]
    mode: ModeChoice = field(default_factory=lambda: ModeChoice(True))


def _share(part: int, whole: int) -> Decimal | None:
    if whole == 0:
        return None
    return (Decimal(part) / Decimal(whole)).quantize(_SHARE, rounding=ROUND_HALF_EVEN)


def build_cohorts(
    engine: Engine,
    first: str,
    last: str,
    *,
    currency: str | None = None,
    metric: str = "customers",
    by: str | None = None,
    mode: str | None = None,
    source: str | None = None,
) -> CohortTable:
    """Cohorts of the months `first`..`last`, followed up to `last`, of one mode (`mode`
    'live' or 'test'; None: as the reports choose, `ledger.reporting.modes`) and every account,
    or one (`source`: acct_… or 'default')."""
    if metric not in METRICS:
        raise BadInput("metric", f"{metric!r} is not a cohort metric: customers or mrr")
    dimension = None if by is None else parse_dimension(by)
    # The plain report validates the months and the currency, and chooses it when only one.
    asked = report_query(first, last, currency=currency, mode=mode, account=source)
    report = build_report(engine, asked)
    chosen, start, end = report.main.currency, report.query.first, report.query.last
    whose = Source(report.mode.livemode, asked.account)
    with engine.begin() as conn:
        customer_months.catch_up(conn)
    with engine.connect() as conn:
        if dimension is None or dimension in ITEM_DIMENSIONS:
            sizes, moves = _stored(conn, dimension, chosen, start, end, whose)
        else:
            sizes, moves = _scanned(conn, dimension, chosen, start, end, whose)
    cohorts = [
        _cohort(seg, Month.parse(month), size, moves.get((seg, month), {}), end)
        for (seg, month), size in sorted(sizes.items(), key=lambda i: (i[0][1], i[0][0]))
    ]
    return CohortTable(chosen, start, end, metric, dimension, cohorts, report.mode)


Moves = dict[tuple[str, str], dict[int, list[int]]]


def _stored(
    conn: Connection,
    dimension: str | None,
    currency: str,
    start: Month,
    end: Month,
    source: Source,
) -> tuple[dict[tuple[str, str], int], Moves]:
    """From `cohort_month_changes`: a few rows per cohort and month (and account)."""
    k = cohort_month_changes.c
    query = select(k.segment, k.cohort, k.month, *(k[n] for n in COHORT_COLUMNS)).where(
        source.of(k),
        k.dimension == (dimension or ALL),
        k.currency == currency,
        k.cohort >= str(start),
        k.cohort <= str(end),
        k.month <= str(end),
    )
    sizes: dict[tuple[str, str], int] = {}
    moves: Moves = {}
    for segment, cohort, month, joined, kept, late, mrr in conn.execute(query):
        key = (str(segment), str(cohort))
        if joined:
            sizes[key] = sizes.get(key, 0) + int(joined)
        row = moves.setdefault(key, {}).setdefault(Month.parse(month).index, [0, 0, 0])
        row[0] += int(kept)
        row[1] += int(late)
        row[2] += int(mrr)
    return {key: n for key, n in sizes.items() if n}, moves


def _scanned(
    conn: Connection, dimension: str, currency: str, start: Month, end: Month, source: Source
) -> tuple[dict[tuple[str, str], int], Moves]:
    """For a customer attribute: the customers' own rows, grouped by its current value."""
    c = months_table.c
    segment = func.coalesce(attribute_column(conn.dialect.name, dimension), NONE).label("segment")
    joined = months_table.outerjoin(
        customer_profiles, customer_profiles.c.customer_id == c.customer_id
    )
    chosen_rows = and_(
        source.of(c),
        c.dimension == ALL,
        c.segment == ALL,
        c.currency == currency,
        c.first_paid >= str(start),
        c.first_paid <= str(end),
    )
    retained = case((c.active_mrr > 0, 1), else_=0)
    owing = case((and_(c.active_mrr <= 0, c.delinquent_mrr > 0), 1), else_=0)

    def changes(at: Any, sign: int) -> Any:
        return (
            select(
                segment,
                c.first_paid,
                at.label("at"),
                sign * func.sum(retained),
                sign * func.sum(owing),
                sign * func.sum(c.active_mrr),
            )
            .select_from(joined)
            .where(chosen_rows, at <= str(end))
            .group_by(segment, c.first_paid, at)
        )

    sizes_query = (
        select(segment, c.first_paid, func.count())
        .select_from(joined)
        .where(chosen_rows, c.month == c.first_paid)
        .group_by(segment, c.first_paid)
    )
    moves: Moves = {}
    sizes = {(str(s), str(m)): int(n) for s, m, n in conn.execute(sizes_query)}
    for query in (changes(c.month, 1), changes(c.next_month, -1)):
        for seg, cohort, at, kept, late, mrr in conn.execute(query):
            if at is None:
                continue
            row = moves.setdefault((str(seg), str(cohort)), {}).setdefault(
                Month.parse(at).index, [0, 0, 0]
            )
            row[0] += int(kept or 0)
            row[1] += int(late or 0)
            row[2] += int(mrr or 0)
    return sizes, moves


def _cohort(
    segment: str, month: Month, size: int, moves: dict[int, list[int]], end: Month
) -> Cohort:
    kept = late = mrr = 0
    for at in sorted(m for m in moves if m < month.index):
        kept, late, mrr = kept + moves[at][0], late + moves[at][1], mrr + moves[at][2]
    cells: list[CohortCell] = []
    starting = 0
    for current in span(month, end):
        moved = moves.get(current.index, [0, 0, 0])
        kept, late, mrr = kept + moved[0], late + moved[1], mrr + moved[2]
        if current == month:
            starting = mrr
        cells.append(
            CohortCell(
                current,
                current.index - month.index,
                kept,
                late,
                mrr,
                _share(kept, size),
                _share(mrr, starting),
            )
        )
    return Cohort(segment, month, size, starting, cells)
