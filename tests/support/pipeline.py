"""Driving the real pipeline in tests: a burst worker on the test's own queue."""

from __future__ import annotations

from typing import Any

from flask.testing import FlaskClient
from rq import Queue, SimpleWorker

from scripts import stripe_objects as so

DAY = 86_400


def drain(queue: Queue, *clients: FlaskClient) -> None:
    """Run the queue's jobs, once the wake-ups of these clients' apps have been sent."""
    for client in clients:
        assert client.application.extensions["mrr"].waker.flush()
    SimpleWorker([queue], connection=queue.connection).work(burst=True, logging_level="ERROR")


def subscription_event(
    event_id: str,
    kind: str,
    created: int,
    *,
    customer: str = "cus_1",
    sub_id: str = "sub_1",
    amount: int = 10000,
    status: str = "active",
    interval: str = "month",
) -> dict[str, Any]:
    """A `customer.subscription.*` event (`kind` is its type) for one flat price."""
    price = so.price(f"price_{amount}_{interval}", amount, "usd", interval)
    item_id = "si_" + sub_id.removeprefix("sub_")
    item = so.subscription_item(item_id, sub_id, price, 1, (created, created + 30 * DAY))
    ended = created if kind.endswith(".deleted") else None
    obj = so.subscription(
        sub_id, customer, [item], status=status, currency="usd", created=created, ended_at=ended
    )
    return so.event(event_id, kind, created, obj)
