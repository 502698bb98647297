"""Customers at a month end, and one customer: MRR over time, subscriptions, entries, events."""

from __future__ import annotations

import functools

from flask import Blueprint, abort, render_template, request

from ingest import charts
from ingest.formatting import money_short, money_text
from ingest.pages.common import currencies, currency_arg, month_arg, now, text_arg, this_month
from ingest.services import services
from ledger.reporting import customer_months, profiles
from ledger.reporting import customers as queries
from ledger.reporting.queries import MAX_ID_LENGTH, LedgerFilter, page
from ledger.rules.months import Month

customers = Blueprint("customers", __name__)
PAGE_SIZE = 100
ENTRIES_SHOWN = 100


def _profiles_caught_up() -> None:
    with services().engine.begin() as conn:
        profiles.catch_up(conn, now())


def _months_caught_up() -> None:
    with services().engine.begin() as conn:
        customer_months.catch_up(conn)


@customers.get("/customers")
def customers_page() -> str:
    _profiles_caught_up()
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
        found = queries.listing(
            conn,
            month,
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
    )


@customers.get("/customers/<customer_id>")
def customer_page(customer_id: str) -> str:
    _profiles_caught_up()
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
