"""Signed but malformed events: stored, failed with a reason, and the queue goes on."""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

import pytest
from flask.testing import FlaskClient
from rq import Queue
from sqlalchemy import Engine

from ingest.app import create_app
from ledger.settings import Settings
from ledger.storage import inbox, store
from ledger.storage.schema import inbox as inbox_table
from ledger.storage.schema import text_limit
from tests.conftest import WEBHOOK_SECRET
from tests.support.ledger import all_entries
from tests.support.pipeline import drain, subscription_event
from tests.support.stripe_sign import signed

NOW = 1_767_225_600
LIMIT = {name: text_limit(inbox_table.c[name]) for name in ("event_type", "customer_id")}
Body = dict[str, Any]


def _sub(body: Body) -> Body:
    found: Body = body["data"]["object"]
    return found


def _price(body: Body) -> Body:
    found: Body = _sub(body)["items"]["data"][0]["price"]
    return found


def _without_amount_decimal(body: Body, amount: object) -> None:
    price = _price(body)
    price.pop("unit_amount_decimal")
    price["unit_amount"] = amount


# (name, change, what the inbox must say): "intake" = failed when stored, with the reason;
# "worker" = failed by the worker, with the reason; "ignored" = stored, moves nothing.
CASES: list[tuple[str, Callable[[Body], object], str, str]] = [
    ("no data.object", lambda b: b["data"].pop("object"), "intake", "data.object"),
    ("data not an object", lambda b: b.update(data=[1, 2]), "intake", "data.object"),
    ("created as a string", lambda b: b.update(created=str(NOW)), "intake", "created"),
    ("created as a float", lambda b: b.update(created=NOW + 0.5), "intake", "created"),
    ("type missing", lambda b: b.pop("type"), "intake", "type"),
    ("type too long", lambda b: b.update(type="x" * (LIMIT["event_type"] + 1)), "intake", "type"),
    (
        "customer id too long",
        lambda b: _sub(b).update(customer="c" * (LIMIT["customer_id"] + 1)),
        "intake",
        "customer_id",
    ),
    ("unknown API version", lambda b: b.update(api_version="banana"), "intake", "API version"),
    ("API version a number", lambda b: b.update(api_version=20250331), "intake", "API version"),
    ("unknown event type", lambda b: b.update(type="customer.tax_id.created"), "ignored", ""),
    ("items not a list", lambda b: _sub(b).update(items="lots"), "worker", 'items "lots"'),
    ("items.data not a list", lambda b: _sub(b)["items"].update(data=7), "worker", "items 7"),
    ("no subscription id", lambda b: _sub(b).pop("id"), "worker", "id null"),
    ("amount not a number", lambda b: _without_amount_decimal(b, "lots"), "worker", "unit_amount"),
]


def post(client: FlaskClient, body: Body) -> Any:
    payload, headers = signed(body, WEBHOOK_SECRET)
    response = client.post("/webhooks/stripe", data=payload, headers=headers)
    assert response.status_code == 200, response.json
    return response.json


@pytest.fixture
def client(settings: Settings) -> FlaskClient:
    return create_app(settings).test_client()


def test_malformed_events_fail_with_reasons_and_good_ones_still_count(
    client: FlaskClient, queue: Queue, engine: Engine
) -> None:
    base = subscription_event("evt_base", "customer.subscription.created", NOW, amount=1000)
    for n, (_, change, _, _) in enumerate(CASES):
        body = copy.deepcopy(base)
        change(body)
        body["id"] = f"evt_bad_{n}"
        post(client, body)  # all for cus_1, before its good events
    good = [
        subscription_event("evt_good_1", "customer.subscription.created", NOW + 10, amount=5000),
        subscription_event(
            "evt_good_2", "customer.subscription.created", NOW + 20, customer="cus_2"
        ),
    ]
    for body in good:
        post(client, body)
    drain(queue, client)

    with engine.connect() as conn:
        rows = {row.event_id: row for row in inbox.list_rows(conn, limit=1000)}
        entries = all_entries(conn)
    for n, (name, _, where, reason) in enumerate(CASES):
        row = rows[f"evt_bad_{n}"]
        if where == "ignored":
            assert row.status == "ignored", name
            continue
        assert row.status == "failed", (name, row.status, row.error)
        assert row.error is not None and reason in row.error, (name, row.error)
        assert row.error.startswith("malformed event") == (where == "intake"), (name, row.error)
    assert rows["evt_good_1"].status == rows["evt_good_2"].status == "processed"
    assert sorted((e.customer_id, e.amount, e.source_event_id) for e in entries) == [
        ("cus_1", 5000, "evt_good_1"),
        ("cus_2", 10000, "evt_good_2"),
    ]


def test_a_later_unreadable_event_fails_alone_and_the_ledger_stays(
    client: FlaskClient, queue: Queue, engine: Engine
) -> None:
    post(client, subscription_event("evt_1", "customer.subscription.created", NOW))
    drain(queue, client)
    broken = subscription_event("evt_2", "customer.subscription.updated", NOW + 5, amount=9000)
    _sub(broken)["items"] = "lots"
    post(client, broken)
    post(
        client, subscription_event("evt_3", "customer.subscription.updated", NOW + 9, amount=20000)
    )
    drain(queue, client)
    with engine.connect() as conn:
        statuses = {row.event_id: row.status for row in inbox.list_rows(conn)}
        effective = store.in_effect(conn, ["cus_1"])
    assert statuses == {"evt_1": "processed", "evt_2": "failed", "evt_3": "processed"}
    assert sum(e.amount for e in effective) == 20000
