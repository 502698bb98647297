"""Values Stripe never sends (docs/mrr-rules.md §10.1), signed and delivered through the
webhook: the worker fails the event at its first attempt with a reason naming the field,
appends nothing, and the customer's later events still count."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from flask.testing import FlaskClient
from rq import Queue
from sqlalchemy import Engine

from ingest.app import create_app
from ledger.settings import Settings
from ledger.storage import inbox
from tests.conftest import WEBHOOK_SECRET
from tests.support.ledger import all_entries
from tests.support.pipeline import drain, subscription_event
from tests.support.stripe_sign import signed

NOW = 1_767_225_600
Body = dict[str, Any]


def _item(body: Body) -> Body:
    found: Body = body["data"]["object"]["items"]["data"][0]
    return found


def _quantity(value: int) -> Callable[[Body], None]:
    return lambda body: _item(body).update(quantity=value)


def _unit_amount(value: int) -> Callable[[Body], None]:
    return lambda body: _item(body)["price"].update(unit_amount=value)


def _interval_count(value: int) -> Callable[[Body], None]:
    return lambda body: _item(body)["price"]["recurring"].update(interval_count=value)


# The table: what arrived, and the reason the inbox row must keep.
CASES = {
    "quantity -5": (_quantity(-5), "quantity -5 on si_1: Stripe quantities are >= 0"),
    "unit_amount -5000": (
        _unit_amount(-5000),
        "unit_amount -5000 on price_5000_month: Stripe amounts are >= 0",
    ),
    "interval_count 0": (
        _interval_count(0),
        "interval_count 0 on price_5000_month: Stripe interval counts are >= 1",
    ),
    "unit_amount 10^30": (
        _unit_amount(10**30),
        f"unit_amount {10**30} on price_5000_month: beyond the ledger's 64-bit range",
    ),
}


def post(client: FlaskClient, body: Body) -> None:
    payload, headers = signed(body, WEBHOOK_SECRET)
    response = client.post("/webhooks/stripe", data=payload, headers=headers)
    assert response.status_code == 200, response.json


def event(event_id: str, kind: str, created: int, amount: int = 5000) -> Body:
    return subscription_event(event_id, f"customer.subscription.{kind}", created, amount=amount)


@pytest.fixture
def client(settings: Settings) -> FlaskClient:
    return create_app(settings).test_client()


def ledger_of(engine: Engine) -> tuple[dict[str, Any], list[tuple[str, int, str]]]:
    with engine.connect() as conn:
        rows = {row.event_id: row for row in inbox.list_rows(conn)}
        entries = [(e.category.value, e.amount, e.source_event_id) for e in all_entries(conn)]
    return rows, entries


def assert_refused(row: Any, reason: str) -> None:
    assert row.status == "failed", (row.status, row.error)
    assert row.attempts == 0  # failed at its first attempt: it can never succeed
    assert row.error is not None and row.error.startswith(reason), row.error


@pytest.mark.parametrize("case", CASES)
def test_a_refused_event_appends_nothing_and_valid_events_sent_afterwards_count(
    client: FlaskClient, queue: Queue, engine: Engine, case: str
) -> None:
    change, reason = CASES[case]
    refused_new = event("evt_1", "created", NOW)
    change(refused_new)
    post(client, refused_new)
    drain(queue, client)
    rows, entries = ledger_of(engine)
    assert_refused(rows["evt_1"], reason)
    assert entries == []

    post(client, event("evt_2", "updated", NOW + 10))
    refused_update = event("evt_3", "updated", NOW + 20)
    change(refused_update)
    post(client, refused_update)
    drain(queue, client)
    post(client, event("evt_4", "updated", NOW + 30, amount=8000))
    drain(queue, client)
    rows, entries = ledger_of(engine)
    assert_refused(rows["evt_1"], reason)
    assert_refused(rows["evt_3"], reason)
    assert rows["evt_2"].status == rows["evt_4"].status == "processed"
    assert entries == [("new", 5000, "evt_2"), ("expansion", 3000, "evt_4")]
