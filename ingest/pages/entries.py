"""Entries (the drill-down list, its total and its CSV) and one entry with its proof."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

from flask import Blueprint, Response, abort, render_template, request, stream_with_context
from sqlalchemy import Connection

from ingest.pages.common import (
    category_arg,
    currencies,
    currency_arg,
    id_arg,
    month_arg,
    page_mode,
    source_arg,
    text_arg,
)
from ingest.services import services
from ledger.reporting import customers as customer_queries
from ledger.reporting import explain, exports, projector, queries
from ledger.rules.entries import Category

entries = Blueprint("entries", __name__)
PAGE_SIZE = 50
STRIPE_DASHBOARD = "https://dashboard.stripe.com"


def filters_from_args(held: list[str]) -> queries.LedgerFilter:
    """The filter in the URL (`held`: the ledger's currencies); anything unknown is a 404."""
    engine = services().engine
    with engine.connect() as conn:
        customer = id_arg("customer")
        if customer is not None and not customer_queries.known(conn, customer):
            abort(404, f"no customer {customer} in the ledger or the inbox")
        livemode = page_mode(conn).livemode
    return queries.LedgerFilter(
        livemode=livemode,
        account=source_arg(),
        month=month_arg("month"),
        category=category_arg(),
        currency=currency_arg(held) if text_arg("currency") else None,
        customer_id=customer,
        subscription_id=id_arg("subscription"),
    )


def filter_args(filters: queries.LedgerFilter) -> dict[str, str]:
    """The filter as URL arguments (for the CSV link and the next page)."""
    values = {
        "month": None if filters.month is None else str(filters.month),
        "category": None if filters.category is None else filters.category.value,
        "currency": filters.currency,
        "customer": filters.customer_id,
        "subscription": filters.subscription_id,
    }
    return {k: v for k, v in values.items() if v is not None}


def _after() -> int:
    raw = request.args.get("after", "0")
    if not raw.isdigit() or len(raw) > 18:
        abort(404, "no such page of entries")
    return int(raw)


def totals(conn: Connection, filters: queries.LedgerFilter) -> tuple[int, dict[str, int]]:
    """The count and sums of the filter. Month, category and currency alone are read from the
    stored monthly totals, as the bridge's cells are (the page brought them up to date by
    `currencies`): counting a whole currency's rows of a large ledger takes too long for a
    page. A customer or subscription filter counts its own rows."""
    if filters.customer_id is None and filters.subscription_id is None and filters.account is None:
        return projector.entry_totals(
            conn,
            month=filters.month,
            category=filters.category,
            currency=filters.currency,
            livemode=filters.livemode,
        )
    return queries.totals(conn, filters)


@entries.get("/entries")
def entries_page() -> str:
    engine = services().engine
    held = currencies(engine)  # the stored totals brought up to date, as `totals` reads them
    filters = filters_from_args(held)
    after = _after()
    with engine.connect() as conn:
        rows, more = queries.page(conn, filters, after_id=after, limit=PAGE_SIZE)
        count, sums = totals(conn, filters)
    return render_template(
        "workspace/entries.html",
        rows=rows,
        next_after=rows[-1].id if more else None,
        after=after,
        count=count,
        sums=sums,
        filters=filters,
        args=filter_args(filters),
        categories=[c.value for c in Category],
        currencies=held,
    )


@entries.get("/entries.csv")
def entries_csv() -> Response:
    engine = services().engine
    filters = filters_from_args(currencies(engine))

    def lines() -> Iterator[str]:
        with engine.connect() as conn:
            yield from exports.ledger_csv(queries.stream(conn, filters))

    return Response(
        stream_with_context(lines()),
        mimetype="text/csv",
        headers={"Content-Disposition": 'attachment; filename="entries.csv"'},
    )


def event_view(found: dict[str, Any] | None) -> dict[str, Any] | None:
    """A stored event for the page: its raw JSON indented, and its page in Stripe."""
    if found is None:
        return None
    try:
        pretty = json.dumps(json.loads(found["payload"]), indent=2, sort_keys=True)
    except ValueError:
        pretty = found["payload"]
    mode = "" if found["livemode"] else "/test"
    return found | {
        "pretty": pretty,
        "dashboard": f"{STRIPE_DASHBOARD}{mode}/events/{found['event_id']}",
    }


@entries.get("/entries/<int:entry_id>")
def entry_page(entry_id: int) -> str:
    with services().engine.connect() as conn:
        found = explain.explain(conn, entry_id) if entry_id < 2**63 else None
        if found is None:
            abort(404, f"no ledger entry {entry_id}")
        entry = found["entry"]
        source = event_view(explain.stored_event(conn, entry["source_event_id"]))
        cause = (
            None
            if entry["cause_event_id"] == entry["source_event_id"]
            else event_view(explain.stored_event(conn, entry["cause_event_id"]))
        )
    return render_template(
        "workspace/entry.html",
        found=found,
        entry=entry,
        text=explain.render(found),
        source=source,
        cause=cause,
    )
