"""Driving the real pipeline in tests: a burst worker on the test's own queue."""

from __future__ import annotations

from typing import Any

from flask.testing import FlaskClient
from rq import Queue, SimpleWorker

from scripts.demo import _event, _subscription


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
    body = _event(0, kind, created, _subscription(sub_id, customer, amount, status, interval))
    body["id"] = event_id
    if kind.endswith(".deleted"):
        body["data"]["object"]["ended_at"] = created
    return body
