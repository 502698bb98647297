"""Whole-product checks: Stripe payloads in over HTTP, numbers out of the accountant API."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest
import responses
from flask.testing import FlaskClient
from rq import Queue
from sqlalchemy import Engine

from ingest.app import create_app
from ledger.processing import process_inbox_row
from ledger.settings import Settings
from ledger.storage import inbox, store
from tests.conftest import WEBHOOK_SECRET
from tests.rules import builders as b
from tests.rules.fixtures import FIXTURES, load
from tests.support.ledger import all_entries
from tests.support.pipeline import drain
from tests.support.stripe_sign import signed
from workers import runtime

JAN_2026 = 1_767_225_600
TIERS = [
    {"up_to": 10, "unit_amount": 1000, "flat_amount": 500},
    {"up_to": None, "unit_amount": 800},
]


def post_all(client: FlaskClient, events: list[dict[str, Any]]) -> None:
    for body in events:
        payload, headers = signed(body, WEBHOOK_SECRET)
        response = client.post("/webhooks/stripe", data=payload, headers=headers)
        assert response.status_code == 200, response.json


def test_the_seed_example_through_webhook_worker_and_api(settings: Settings, queue: Queue) -> None:
    client = create_app(settings).test_client()
    plans = [(5_000, 150), (10_000, 100), (20_000, 50)]
    events = []
    for amount, count in plans:
        for n in range(count):
            customer = f"cus_{amount}_{n}"
            events.append(
                b.subscription_event(
                    "created", f"sub_{amount}_{n}", customer, JAN_2026 + n, "active",
                    [(amount, "month", 1, 1)], event_id=f"evt_{amount}_{n}",
                )
            )  # fmt: skip
    post_all(client, events)
    drain(queue, client)

    auth = {"Authorization": f"Bearer {settings.api_token}"}
    report = client.get("/api/mrr?from=2026-01&to=2026-02&currency=usd", headers=auth)
    assert report.status_code == 200, report.json
    january, february = report.json["months"]
    assert january["new"] == "27500.00" and january["closing_mrr"] == "27500.00"
    assert (january["customers"], january["arpu"]) == (300, "91.67")
    assert (february["opening_mrr"], february["closing_mrr"]) == ("27500.00", "27500.00")
    assert february["new"] == "0.00" and february["customers"] == 300


def tiered_subscription(event_id: str, customer: str, quantity: int) -> dict[str, Any]:
    seats = b.price(None, "month", price_id="price_seats", tiers=TIERS, tiers_mode="graduated",
                    expand_tiers=False)  # fmt: skip
    return b.subscription_event(
        "created", f"sub_{customer}", customer, JAN_2026, "active",
        [{"price": seats, "quantity": quantity}], event_id=event_id,
    )  # fmt: skip


def store_one(engine: Engine, body: dict[str, Any]) -> int:
    with engine.begin() as conn:
        return inbox.store_events(conn, [(inbox.dumps(body), body)])[0].inbox_id


@responses.activate
def test_tiers_left_out_of_a_payload_are_fetched_once_from_the_api_and_kept(
    settings: Settings, engine: Engine
) -> None:
    from workers.stripe_client import connect

    expanded = b.price(None, "month", price_id="price_seats", tiers=TIERS, tiers_mode="graduated")
    api = responses.get("https://api.stripe.com/v1/prices/price_seats", json=expanded)
    fetch = connect(replace(settings, stripe_api_key="sk_test_123")).reference
    first = store_one(engine, tiered_subscription("evt_1", "cus_1", 12))
    second = store_one(engine, tiered_subscription("evt_2", "cus_2", 3))
    for inbox_id in (first, second):
        assert (
            process_inbox_row(engine, inbox_id, max_attempts=1, fetch=fetch).status == "processed"
        )

    assert api.call_count == 1
    assert "expand%5B0%5D=tiers" in (responses.calls[0].request.url or "")
    with engine.connect() as conn:
        amounts = {e.customer_id: e.amount for e in store.in_effect(conn)}
        assert store.get_reference(conn, "price", "price_seats") == expanded
    # graduated: 10 x 10.00 + 5.00 flat, then 2 x 8.00; and 3 x 10.00 + 5.00 flat
    assert amounts == {"cus_1": 10 * 1000 + 500 + 2 * 800, "cus_2": 3 * 1000 + 500}


def test_without_an_api_key_missing_tiers_fail_the_event_with_that_reason(
    settings: Settings, engine: Engine
) -> None:
    inbox_id = store_one(engine, tiered_subscription("evt_1", "cus_1", 12))
    outcome = process_inbox_row(engine, inbox_id, max_attempts=4)
    assert outcome.status == "failed"
    with engine.connect() as conn:
        row = inbox.get(conn, inbox_id)
        assert all_entries(conn) == []
    assert row is not None and row.status == "failed" and row.attempts == 0
    assert "price_seats" in (row.error or "") and "tiers" in (row.error or "")


def test_a_coupon_that_arrives_after_its_discount_corrects_the_ledger(
    settings: Settings, engine: Engine
) -> None:
    coupon = b.coupon_object("co_half", percent_off=50)
    events = [
        b.subscription_event("created", "sub_1", "cus_1", JAN_2026, event_id="evt_sub"),
        b.discount_event("created", "di_1", "cus_1", JAN_2026 + 10, "co_half", shape="new",
                         event_id="evt_discount", subscription="sub_1"),
        b.subscription_event("updated", "sub_1", "cus_1", JAN_2026 + 10, discounts=["di_1"],
                             event_id="evt_sub_discounted"),
        b.coupon_event("created", coupon, JAN_2026 - 100, event_id="evt_coupon"),
    ]  # fmt: skip
    for body in events:
        outcome = process_inbox_row(engine, store_one(engine, body), max_attempts=1)
        assert outcome.status == "processed", outcome.error
    with engine.connect() as conn:
        effective = [(e.category.value, e.amount) for e in store.in_effect(conn)]
        reversals = [e for e in all_entries(conn) if e.reversal_of is not None]
    assert sorted(effective) == [("contraction", -5000), ("new", 10000)]
    assert all(r.cause_event_id == "evt_coupon" for r in reversals)


@responses.activate
@pytest.mark.parametrize("name", sorted(p.stem for p in FIXTURES.glob("*.json")))
def test_stripe_reference_payloads_are_accepted_and_never_fail(
    settings: Settings, engine: Engine, queue: Queue, name: str
) -> None:
    body = load(name)
    if body.get("object") != "event":
        pytest.skip(f"{name} is a {body.get('object')}, not an event")
    # Webhook payloads leave a tiered price's tiers out: the worker fetches them.
    tiered = load("price_tiered")
    responses.get(f"https://api.stripe.com/v1/prices/{tiered['id']}", json=tiered)
    runtime.use(replace(settings, stripe_api_key="sk_test_fixtures"))
    client = create_app(settings).test_client()
    post_all(client, [body])
    drain(queue, client)
    with engine.connect() as conn:
        (row,) = inbox.list_rows(conn)
    assert row.status in ("processed", "ignored"), row.error
