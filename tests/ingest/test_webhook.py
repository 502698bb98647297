"""The webhook end to end: signed HTTP deliveries, a burst worker, rows in the ledger."""

from __future__ import annotations

import json
import time

import pytest
from flask.testing import FlaskClient
from rq import Queue
from sqlalchemy import Engine, func, select

from ingest.app import create_app
from ledger.settings import Settings
from ledger.storage import inbox
from ledger.storage.schema import inbox as inbox_table
from tests.conftest import WEBHOOK_SECRET
from tests.support.ledger import all_entries
from tests.support.pipeline import drain, subscription_event
from tests.support.stripe_sign import signature_header, signed

NOW = 1_767_225_600  # 2026-01-01


@pytest.fixture
def client(settings: Settings) -> FlaskClient:
    return create_app(settings).test_client()


def post(client: FlaskClient, body: dict, secret: str = WEBHOOK_SECRET, ts: int | None = None):
    payload, headers = signed(body, secret, ts)
    return client.post("/webhooks/stripe", data=payload, headers=headers)


def inbox_count(engine: Engine) -> int:
    with engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(inbox_table)).scalar_one())


def test_a_signed_event_becomes_ledger_rows(
    client: FlaskClient, queue: Queue, engine: Engine
) -> None:
    created = subscription_event("evt_a", "customer.subscription.created", NOW)
    response = post(client, created)
    assert response.status_code == 200
    assert response.json == {
        "received": True,
        "event_id": "evt_a",
        "duplicate": False,
        "status": "pending",
    }
    drain(queue, client)
    with engine.connect() as conn:
        rows = all_entries(conn)
        assert [r.status for r in inbox.list_rows(conn)] == ["processed"]
    assert [(r.customer_id, r.category.value, r.amount, r.source_event_id) for r in rows] == [
        ("cus_1", "new", 10000, "evt_a")
    ]


def test_a_redelivered_event_is_stored_and_counted_once(
    client: FlaskClient, queue: Queue, engine: Engine
) -> None:
    body = subscription_event("evt_a", "customer.subscription.created", NOW)
    assert post(client, body).status_code == 200
    drain(queue, client)
    again = post(client, body)
    assert again.status_code == 200 and again.json["duplicate"] is True
    assert again.json["status"] == "processed"
    assert client.application.extensions["mrr"].waker.flush() and len(queue) == 0
    drain(queue, client)
    assert inbox_count(engine) == 1
    with engine.connect() as conn:
        assert len(all_entries(conn)) == 1


def test_a_rotated_secret_is_accepted_alongside_the_old_one(settings: Settings) -> None:
    from dataclasses import replace

    rotated = create_app(
        replace(settings, webhook_secrets=("whsec_old", "whsec_new"))
    ).test_client()
    body = subscription_event("evt_a", "customer.subscription.created", NOW)
    assert post(rotated, body, secret="whsec_new").status_code == 200
    body["id"] = "evt_b"
    assert post(rotated, body, secret="whsec_old").status_code == 200


def test_a_secret_bound_to_a_source_refuses_an_event_of_another(
    settings: Settings, engine: Engine
) -> None:
    from dataclasses import replace

    bound = ("acct_1US:live:whsec_us", "acct_2EU:live:whsec_eu", "*:test:whsec_test")
    client = create_app(replace(settings, webhook_secrets=bound)).test_client()
    body = subscription_event("evt_us", "customer.subscription.created", NOW)
    body["livemode"] = True
    assert post(client, body, secret="whsec_us").status_code == 200
    body |= {"id": "evt_claims_eu", "account": "acct_2EU"}
    refused = post(client, body, secret="whsec_us")
    assert refused.status_code == 400 and refused.json is not None
    assert refused.json["error"] == "source_mismatch"
    assert "acct_2EU" in refused.json["reason"] and "acct_1US" in refused.json["reason"]
    body |= {"id": "evt_live_on_test", "account": "acct_9"}
    refused = post(client, body, secret="whsec_test")
    assert refused.status_code == 400 and "test mode" in refused.json["reason"]
    with engine.connect() as conn:
        rows = {(r.event_id, r.account, r.livemode) for r in inbox.list_rows(conn)}
    assert rows == {("evt_us", "acct_1US", True)}  # the secret's account: the event names none


@pytest.mark.parametrize(
    ("mutate", "status", "code"),
    [
        ("wrong_secret", 400, "bad_signature"),
        ("stale", 400, "stale_timestamp"),
        ("no_header", 400, "missing_signature"),
        ("garbled_header", 400, "bad_signature"),
        ("not_json", 400, "body_not_json"),
        ("not_event", 400, "not_an_event"),
        ("not_utf8", 400, "body_not_utf8"),
        ("too_large", 413, "too_large"),
    ],
)
def test_rejections_have_a_reason_and_store_nothing(
    client: FlaskClient, engine: Engine, mutate: str, status: int, code: str
) -> None:
    payload, headers = signed(
        subscription_event("evt_a", "customer.subscription.created", NOW), WEBHOOK_SECRET
    )
    data: bytes = payload.encode()
    if mutate == "wrong_secret":
        headers["Stripe-Signature"] = signature_header(payload, "whsec_someone_else")
    elif mutate == "stale":
        headers["Stripe-Signature"] = signature_header(
            payload, WEBHOOK_SECRET, int(time.time()) - 301
        )
    elif mutate == "no_header":
        del headers["Stripe-Signature"]
    elif mutate == "garbled_header":
        headers["Stripe-Signature"] = "v1=,t=yesterday"
    elif mutate in ("not_json", "not_event", "not_utf8"):
        data = {
            "not_json": b"{nope",
            "not_event": b'{"object": "customer", "id": "cus_1"}',
            "not_utf8": b'{"id": "\xff"}',
        }[mutate]
        headers["Stripe-Signature"] = signature_header(data.decode("latin-1"), WEBHOOK_SECRET)
    elif mutate == "too_large":
        data = b" " * (1024 * 1024 + 1)
    response = client.post("/webhooks/stripe", data=data, headers=headers)
    assert response.status_code == status
    assert response.json["error"] == code and response.json["reason"]
    assert WEBHOOK_SECRET not in response.get_data(as_text=True)
    assert inbox_count(engine) == 0


def test_a_signed_but_malformed_event_is_kept_and_flagged(
    client: FlaskClient, engine: Engine
) -> None:
    response = post(
        client, {"id": "evt_bad", "object": "event", "type": "customer.subscription.updated"}
    )
    assert response.status_code == 200 and response.json["status"] == "failed"
    with engine.connect() as conn:
        (row,) = inbox.list_rows(conn)
    assert (row.event_id, row.status) == ("evt_bad", "failed")
    assert row.error is not None and "created" in row.error
    assert json.loads(row.payload)["type"] == "customer.subscription.updated"


def test_types_that_do_not_move_mrr_are_marked_ignored(
    client: FlaskClient, queue: Queue, engine: Engine
) -> None:
    body = {
        "id": "evt_c",
        "object": "event",
        "type": "customer.created",
        "created": NOW,
        "data": {"object": {"id": "cus_1", "object": "customer"}},
    }
    assert post(client, body).status_code == 200
    drain(queue, client)
    with engine.connect() as conn:
        assert [r.status for r in inbox.list_rows(conn)] == ["ignored"]
        assert all_entries(conn) == []


def test_health_and_readiness(client: FlaskClient) -> None:
    assert client.get("/healthz").json == {"status": "ok"}
    ready = client.get("/readyz")
    assert ready.status_code == 200
    assert ready.json == {
        "ready": True,
        "checks": {"database": "ok", "migrations": "ok", "redis": "ok"},
    }
