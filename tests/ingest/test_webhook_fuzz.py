"""Hostile input at the webhook: never a 5xx, never a stored row without a valid signature."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass

import pytest
from flask.testing import FlaskClient
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st
from sqlalchemy import Engine, func, select

from ingest.app import create_app
from ledger.settings import Settings
from ledger.storage.schema import inbox as inbox_table
from tests.conftest import WEBHOOK_SECRET
from tests.support.pipeline import subscription_event
from tests.support.stripe_sign import signature_header

NOW = 1_767_225_600

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)

# JSON that Python reads into values no database column can hold as they are.
NASTY_VALUES = [
    '"\\u0000"',
    '"\\ud800"',
    '"evt_\\udfff_x"',
    '"a\\u0000b"',
    '""',
    '"' + "x" * 300 + '"',
    "9" * 30,
    "-" + "9" * 30,
    "1e400",
    "NaN",
    "true",
    "[]",
    "{}",
]


@st.composite
def event_bodies(draw: st.DrawFn) -> str:
    """Mostly event-shaped JSON, with fields replaced by anything at all."""
    body: dict[str, object] = subscription_event(
        f"evt_{draw(st.integers(0, 10**6))}", "customer.subscription.created", NOW
    )
    for key in draw(
        st.lists(
            st.sampled_from(["id", "type", "created", "data", "object", "api_version"]), max_size=3
        )
    ):
        body[key] = draw(json_values)
    text = json.dumps(body, allow_nan=True)
    for _ in range(draw(st.integers(0, 2))):
        target = draw(
            st.sampled_from(
                [
                    '"evt_',
                    '"customer.subscription.created"',
                    '"cus_1"',
                    '"2025-03-31.basil"',
                    str(NOW),
                ]
            )
        )
        nasty = draw(st.sampled_from(NASTY_VALUES))
        if target == '"evt_':
            text = text.replace(target, nasty[:-1] + "_" if nasty.startswith('"') else '"evt_', 1)
        else:
            text = text.replace(target, nasty, 1)
    if draw(st.integers(0, 9)) == 0:
        depth = draw(st.integers(1, 50_000))
        text = text[:-1] + ', "x": ' + "[" * depth + "]" * depth + "}"  # deep nesting
    return text


bodies = st.one_of(
    st.binary(max_size=300),
    json_values.map(lambda value: json.dumps(value, allow_nan=True)),
    event_bodies(),
)
encodings = st.sampled_from(["utf-8", "utf-8-sig", "utf-16", "latin-1", "cp1252", "utf-32"])
content_types = st.sampled_from(
    [
        None,
        "application/json",
        "application/json; charset=utf-16",
        "text/plain",
        "application/x-www-form-urlencoded",
        "multipart/form-data; boundary=zzz",
        "application/octet-stream",
        "\u00e9/\u00e9",
    ]
)
SIGNING = ("none", "garbage", "wrong_secret", "stale", "duplicated", "huge", "correct")


@dataclass(frozen=True)
class Delivery:
    data: bytes
    headers: list[tuple[str, str]]
    validly_signed: bool


@st.composite
def deliveries(draw: st.DrawFn) -> Delivery:
    raw = draw(bodies)
    data = raw if isinstance(raw, bytes) else raw.encode(draw(encodings), errors="replace")
    # Stripe signs the UTF-8 text; for bytes that are not UTF-8 sign something close.
    text = data.decode("utf-8", errors="surrogateescape").encode("utf-8", "replace").decode()
    mode = draw(st.sampled_from(SIGNING))
    headers: list[tuple[str, str]] = []
    if mode == "garbage":
        latin1 = st.text(st.characters(max_codepoint=0xFF, exclude_characters="\r\n"), max_size=80)
        shaped = st.builds("t={},v1={}".format, st.integers() | latin1, latin1)
        headers.append(("Stripe-Signature", draw(latin1 | shaped)))
    elif mode == "wrong_secret":
        headers.append(("Stripe-Signature", signature_header(text, "whsec_attacker")))
    elif mode == "stale":
        headers.append(
            ("Stripe-Signature", signature_header(text, WEBHOOK_SECRET, int(time.time()) - 3600))
        )
    elif mode == "duplicated":
        headers.append(("Stripe-Signature", "t=1,v1=" + "0" * 64))
        headers.append(("Stripe-Signature", signature_header(text, WEBHOOK_SECRET)))
    elif mode == "huge":
        good = signature_header(text, WEBHOOK_SECRET)
        headers.append(("Stripe-Signature", good + ",v0=" + "a" * draw(st.integers(1, 20_000))))
    elif mode == "correct":
        headers.append(("Stripe-Signature", signature_header(text, WEBHOOK_SECRET)))
    content_type = draw(content_types)
    if content_type is not None:
        headers.append(("Content-Type", content_type))
    # A huge but valid extra part still carries a correct signature.
    validly_signed = mode in ("correct", "huge") and text.encode() == data
    return Delivery(data, headers, validly_signed)


@pytest.fixture
def client(settings: Settings) -> FlaskClient:
    return create_app(settings).test_client()


def inbox_rows(engine: Engine) -> int:
    with engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(inbox_table)).scalar_one())


def signed_delivery(text: str) -> Delivery:
    headers = [("Stripe-Signature", signature_header(text, WEBHOOK_SECRET))]
    return Delivery(text.encode(), headers, validly_signed=True)


def signed_event_with(replace: str, by: str) -> Delivery:
    body = subscription_event("evt_nasty", "customer.subscription.created", NOW)
    return signed_delivery(json.dumps(body).replace(replace, by, 1))


# Crashes this test found once (500, or 503 on every redelivery), kept as regressions.
FOUND = [
    Delivery(b"{}", [("Stripe-Signature", "t=0,v1=\x80")], validly_signed=False),
    signed_delivery('{"object": "event", "id": "\\ud800"}'),
    signed_delivery('{"object": "event", "id": "' + "e" * 256 + '"}'),
    signed_event_with('"cus_1"', '"cus_\\u0000"'),
    signed_event_with('"cus_1"', '"\\udc00"'),
    signed_event_with('"customer.subscription.created"', '"' + "t" * 300 + '"'),
    signed_event_with(str(NOW), "9" * 30),
    signed_delivery('{"object": "event", "id": "evt_deep", "x": ' + "[" * 100_000 + "]}"),
]


def assert_handled(client: FlaskClient, engine: Engine, delivery: Delivery) -> None:
    before = inbox_rows(engine)
    response = client.post("/webhooks/stripe", data=delivery.data, headers=delivery.headers)
    after = inbox_rows(engine)
    assert response.status_code < 500, response.get_data(as_text=True)
    if response.status_code == 200:
        assert delivery.validly_signed
        assert after - before in (0, 1)  # 0: a redelivery of an id already stored
    else:
        assert response.status_code in (400, 413)
        assert response.is_json and response.json["error"] and response.json["reason"]
        assert after == before
    assert WEBHOOK_SECRET not in response.get_data(as_text=True)


@hypothesis_settings(
    max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(delivery=deliveries())
def test_hostile_deliveries_never_500_and_store_only_signed_events(
    client: FlaskClient, engine: Engine, delivery: Delivery
) -> None:
    assert_handled(client, engine, delivery)


@pytest.mark.parametrize("delivery", FOUND, ids=range(len(FOUND)))
def test_deliveries_that_once_crashed_the_webhook(
    client: FlaskClient, engine: Engine, delivery: Delivery
) -> None:
    assert_handled(client, engine, delivery)
