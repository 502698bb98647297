"""Customers at a month end, and one customer: MRR over time, subscriptions, entries, events."""

from __future__ import annotations

import functools
from collections.abc import Iterator

from flask import Blueprint, Response, abort, render_template, request, stream_with_context

from ingest import charts
from ingest.formatting import money_short, money_text
from ingest.pages.common import (
    currencies,
    currency_arg,
    month_arg,
    now,
    page_mode,
    source_arg,
    text_arg,
    this_month,
)
from ingest.services import services
from ledger.reporting import customer_months, profiles, segment_exports
from ledger.reporting import customers as queries
from ledger.reporting.exports import csv_line, safe_text
from ledger.reporting.queries import MAX_ID_LENGTH, LedgerFilter, page
from ledger.rules.money import to_major
from ledger.rules.months import Month

customers = Blueprint("customers", __name__)
PAGE_SIZE = 100
ENTRIES_SHOWN = 100


def _months_caught_up() -> None:
    with services().engine.begin() as conn:
        customer_months.catch_up(conn)


@customers.get("/customers")
def customers_page() -> str:
    _months_caught_up()
    month = month_arg("month", this_month()) or this_month()
    search = text_arg("q")
    sort = request.args.get("sort", "active")
    if sort not in queries.SORTS:
        abort(404, f"no such column to sort by: {sort[:40]!r}")
    descending = request.args.get("dir", "desc" if sort == "active" else "asc") == "desc"
    number = request.args.get("page", "1")
    if not number.isdigit() or not 1 <= int(number) <= 100_000:
        abort(404, "no such page")
    engine = services().engine
    held = currencies(engine)
    with engine.connect() as conn:
        currency = currency_arg(held) if text_arg("currency") else None
        livemode, account = page_mode(conn).livemode, source_arg()
        found = queries.listing(
            conn,
            month,
            livemode=livemode,
            account=account,
            currency=currency,
            search=search,
            named=profiles.matching(conn, search) if search else (),
            sort=sort,
            descending=descending,
            offset=(int(number) - 1) * PAGE_SIZE,
            limit=PAGE_SIZE,
        )
        shown = found.lines
        names = profiles.profiles(conn, [line.customer_id for line in shown])
        plans = queries.plans_at(
            conn, month, [line.customer_id for line in shown], livemode=livemode, account=account
        )
        tops = [
            customer_months.top(conn, month, c, livemode=livemode, account=account)
            for c in ([currency] if currency else held)
        ]
    return render_template(
        "workspace/customers.html",
        month=month,
        currency=currency,
        currencies=held,
        search=search or "",
        sort=sort,
        descending=descending,
        lines=shown,
        total=found.total,
        page=int(number),
        pages=max(1, -(-found.total // PAGE_SIZE)),
        names=names,
        plans=plans,
        tops=tops,
    )


CSV_FIELDS = (
    "customer_id", "name", "email", "currency", "active_mrr", "delinquent_mrr", "status",
    "first_paid", "plans",
)  # fmt: skip


@customers.get("/customers.csv")
def customers_csv() -> Response:
    """The customers table of a month end, every line (not a page), as CSV."""
    _months_caught_up()
    month = month_arg("month", this_month()) or this_month()
    search = text_arg("q")
    engine = services().engine
    held = currencies(engine)
    with engine.connect() as conn:
        currency = currency_arg(held) if text_arg("currency") else None
        livemode, account = page_mode(conn).livemode, source_arg()
        found = queries.listing(
            conn,
            month,
            livemode=livemode,
            account=account,
            currency=currency,
            search=search,
            sort="customer",
            descending=False,
            named=profiles.matching(conn, search) if search else (),
            limit=10_000_000,
        )
        ids = [line.customer_id for line in found.lines]
        names = profiles.profiles(conn, ids)
        plans: dict[tuple[str, str], list[str]] = {}
        for start in range(0, len(ids), 500):
            plans.update(
                queries.plans_at(
                    conn, month, ids[start : start + 500], livemode=livemode, account=account
                )
            )

    def lines() -> Iterator[str]:
        yield csv_line(list(CSV_FIELDS))
        for line in found.lines:
            profile = names.get(line.customer_id)
            yield csv_line(
                [
                    safe_text(line.customer_id),
                    safe_text(profile.name) if profile and profile.name else "",
                    safe_text(profile.email) if profile and profile.email else "",
                    line.currency,
                    f"{to_major(line.active, line.currency):f}",
                    f"{to_major(line.delinquent, line.currency):f}",
                    line.status,
                    str(line.first_paid) if line.first_paid else "",
                    safe_text(" ".join(plans.get((line.customer_id, line.currency), []))),
                ]
            )

    return _csv(lines(), f"customers-{month}.csv")


@customers.get("/customers-months.csv")
def customer_months_csv() -> Response:
    """MRR per customer per month, FROM..TO, in one currency."""
    current = this_month()
    last = month_arg("to", current) or current
    first = month_arg("from", Month(last.index - 11)) or Month(last.index - 11)
    if first > last or last.index - first.index >= 240:
        abort(404, f"no such range: {first} to {last}")
    engine = services().engine
    currency = currency_arg(currencies(engine))
    if currency is None:
        abort(404, "the ledger has no entries yet")
    _months_caught_up()

    def lines() -> Iterator[str]:
        with engine.connect() as conn:
            livemode, account = page_mode(conn).livemode, source_arg()
            rows = customer_months.monthly(
                conn, first, last, currency, livemode=livemode, account=account
            )
            yield from segment_exports.customer_months_csv(rows)

    return _csv(lines(), f"mrr-per-customer-{currency}-{first}-{last}.csv")


def _csv(lines: Iterator[str], filename: str) -> Response:
    return Response(
        stream_with_context(lines),
        mimetype="text/csv",
        headers={"Content-Disposition": f'attachment; filename="{filename}"'},
    )


@customers.get("/customers/<customer_id>")
def customer_page(customer_id: str) -> str:
    moment = now()
    with services().engine.connect() as conn:
        if len(customer_id) > MAX_ID_LENGTH or not queries.known(conn, customer_id):
            abort(404, f"no customer {customer_id[:MAX_ID_LENGTH]} in the ledger or the inbox")
        rows = queries.rows_of(conn, customer_id)
        entries, more = page(conn, LedgerFilter(customer_id=customer_id), limit=ENTRIES_SHOWN)
        events = queries.events_of(conn, customer_id)
        profile = profiles.profiles(conn, [customer_id]).get(customer_id)
    held = sorted({row.currency for row in rows})
    histories = []
    for currency in held:
        points = queries.history(rows, currency, Month.of(moment))
        chart = charts.stacked(
            f"MRR of {customer_id} in {currency.upper()} at each month end",
            [str(p.month) for p in points],
            [
                charts.Series("Active MRR", "c-active", [p.active for p in points]),
                charts.Series("Delinquent MRR", "c-delinquent", [p.delinquent for p in points]),
            ],
            functools.partial(money_text, currency=currency),
            functools.partial(money_short, currency=currency),
        )
        histories.append((currency, points, chart))
    return render_template(
        "workspace/customer.html",
        customer_id=customer_id,
        profile=profile,
        histories=histories,
        subscriptions=queries.subscriptions(rows, moment),
        entries=entries,
        more_entries=more is not None,
        events=events,
    )
