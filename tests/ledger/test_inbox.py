"""Storing events in the inbox: once per event id, however they come."""

from __future__ import annotations

import threading
from typing import Any

import pytest
from sqlalchemy import Engine, func, select
from sqlalchemy.exc import DBAPIError

from ledger.rules.sources import Unit
from ledger.storage import inbox
from ledger.storage.db import make_engine
from ledger.storage.schema import InboxStatus
from ledger.storage.schema import inbox as inbox_table
from tests.support.pipeline import subscription_event

NOW = 1_767_225_600


def unit(customer_id: str) -> Unit:
    """A customer of the endpoint's own account in test mode, as the builders' events are."""
    return Unit(customer_id, "", False)


def _event(event_id: str) -> tuple[str, dict[str, Any]]:
    body = subscription_event(event_id, "customer.subscription.created", NOW)
    return inbox.dumps(body), body


def test_a_batch_stores_each_event_once_and_says_which_copy_was_new(engine: Engine) -> None:
    with engine.begin() as conn:
        [before] = inbox.store_events(conn, [_event("evt_old")])
    with engine.begin() as conn:
        stored = inbox.store_events(
            conn, [_event("evt_a"), _event("evt_old"), _event("evt_a"), _event("evt_b")]
        )
    assert [s.inserted for s in stored] == [True, False, False, True]
    assert stored[1].inbox_id == before.inbox_id
    assert stored[0].inbox_id == stored[2].inbox_id != stored[3].inbox_id
    assert {s.status for s in stored} == {"pending"}
    with engine.connect() as conn:
        count = conn.execute(select(func.count()).select_from(inbox_table)).scalar_one()
    assert count == 3


def test_customer_events_reads_each_customers_readable_events_in_replay_order(
    engine: Engine,
) -> None:
    def event(event_id: str, created: int, customer: str) -> tuple[str, dict[str, Any]]:
        body = subscription_event(
            event_id, "customer.subscription.updated", created, customer=customer
        )
        return inbox.dumps(body), body

    late, early, other, bad = (
        event("evt_late", NOW + 60, "cus_1"),
        event("evt_early", NOW, "cus_1"),
        event("evt_other", NOW + 30, "cus_2"),
        event("evt_bad", NOW + 10, "cus_1"),
    )
    with engine.begin() as conn:
        stored = inbox.store_events(conn, [late, early, other, bad])
        inbox.mark(conn, [stored[3].inbox_id], InboxStatus.FAILED, "unreadable")
        inbox.mark(conn, [stored[0].inbox_id, stored[2].inbox_id], InboxStatus.PROCESSED)
        parsed = {"evt_early": inbox.customer_events(conn, [unit("cus_1")])[unit("cus_1")][0]}
        units = [unit("cus_1"), unit("cus_2"), unit("cus_3"), Unit("cus_1", "", True)]
        found = inbox.customer_events(conn, units, parsed)
        statuses = {r.event_id: (r.status, r.error) for r in inbox.list_rows(conn)}
    assert {c.customer_id: [e.id for e in events] for c, events in found.items()} == {
        "cus_1": ["evt_early", "evt_late"],  # test mode: none in live mode
        "cus_2": ["evt_other"],
    }
    assert found[unit("cus_1")][0] is parsed["evt_early"]
    assert statuses == {
        "evt_late": ("processed", None),
        "evt_early": ("pending", None),
        "evt_other": ("processed", None),
        "evt_bad": ("failed", "unreadable"),
    }


def test_the_webhook_path_stores_once_and_finds_the_first_copy(engine: Engine) -> None:
    threads = threading.local()
    body = subscription_event("evt_a", "customer.subscription.created", NOW)
    first = inbox.store_durably(engine, inbox.dumps(body), body, threads)
    again = inbox.store_durably(engine, inbox.dumps(body), body, threads)
    assert first.inserted and not again.inserted
    assert again.inbox_id == first.inbox_id and again.status == "pending"
    malformed = {"id": "evt_bad", "object": "event", "type": "customer.subscription.created"}
    failed = inbox.store_durably(engine, inbox.dumps(malformed), malformed, threads)
    assert failed.inserted and failed.status == "failed"
    with engine.connect() as conn:
        row = inbox.get(conn, failed.inbox_id)
    assert row is not None and row.error is not None and row.error.startswith("malformed event")


def test_the_webhook_path_takes_a_new_connection_after_the_server_drops_one(
    engine: Engine,
) -> None:
    if engine.dialect.name != "postgresql":
        pytest.skip("the autocommit path with a pinned connection is PostgreSQL's")
    threads = threading.local()
    body = subscription_event("evt_a", "customer.subscription.created", NOW)
    first = inbox.store_durably(engine, inbox.dumps(body), body, threads)
    backend = threads.connection.driver_connection.info.backend_pid
    with engine.connect() as conn:
        conn.execute(select(func.pg_terminate_backend(backend)))
    body["id"] = "evt_b"
    with pytest.raises(DBAPIError):
        inbox.store_durably(engine, inbox.dumps(body), body, threads)
    second = inbox.store_durably(engine, inbox.dumps(body), body, threads)
    again = inbox.store_durably(engine, inbox.dumps(body), body, threads)
    assert threads.connection.driver_connection.info.backend_pid != backend
    assert first.inserted and second.inserted and not again.inserted
    assert again.inbox_id == second.inbox_id


def test_a_connection_another_thread_left_in_the_pool_keeps_its_prepared_insert(
    db_url: str,
) -> None:
    if not db_url.startswith("postgresql"):
        pytest.skip("the autocommit path with a pinned connection is PostgreSQL's")
    engine = make_engine(db_url, pool_size=1, max_overflow=0)
    try:
        gone, comes = threading.local(), threading.local()
        body = subscription_event("evt_a", "customer.subscription.created", NOW)
        first = inbox.store_durably(engine, inbox.dumps(body), body, gone)
        backend = gone.connection.driver_connection.info.backend_pid
        gone.connection.close()  # as when a thread ends and its connection goes back
        body["id"] = "evt_b"
        second = inbox.store_durably(engine, inbox.dumps(body), body, comes)
        assert comes.connection.driver_connection.info.backend_pid == backend
        assert first.inserted and second.inserted
    finally:
        engine.dispose()
