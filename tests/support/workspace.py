"""The workspace in tests: a ledger fed through the real pipeline, accounts, signing in."""

from __future__ import annotations

import json
import re
from typing import Any

from flask.testing import FlaskClient
from sqlalchemy import Engine

from ingest.passwords import hash_password
from ledger.processing import process_batch
from ledger.storage import inbox, users
from scripts import stripe_objects as so
from tests.support.histories import histories

PASSWORD = "correct horse battery staple"
_CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


def customer_event(event_id: str, customer: str, name: str, email: str, at: int) -> dict[str, Any]:
    return so.event(event_id, "customer.created", at, so.customer(customer, name, email, at))


def load_ledger(engine: Engine, events: int = 400, customers: int = 40) -> list[dict[str, Any]]:
    """Generated customer histories (and a customer event per customer, some with markup in
    the name), stored in the inbox and processed by the workers' batch code."""
    bodies = histories(events, customers, seed=5)
    owners = sorted({b["data"]["object"]["customer"] for b in bodies})
    named = [
        customer_event(
            f"evt_cus_{i}",
            owner,
            f"<b>Customer</b> {i} & Co",
            f"billing{i}@example.com",
            1_735_700_000 + i,
        )
        for i, owner in enumerate(owners)
    ]
    with engine.begin() as conn:
        stored = inbox.store_events(conn, [(json.dumps(b), b) for b in [*named, *bodies]])
    process_batch(engine, [s.inbox_id for s in stored], max_attempts=4)
    return bodies


def add_user(engine: Engine, email: str, role: str = "viewer") -> None:
    with engine.begin() as conn:
        users.add(conn, email, hash_password(PASSWORD), role)


def csrf_token(client: FlaskClient, path: str = "/sign-in") -> str:
    page = client.get(path).get_data(as_text=True)
    found = _CSRF.search(page)
    assert found is not None, f"no CSRF token on {path}"
    return found.group(1)


def sign_in(client: FlaskClient, email: str, password: str = PASSWORD) -> Any:
    token = csrf_token(client)
    return client.post("/sign-in", data={"email": email, "password": password, "csrf_token": token})
