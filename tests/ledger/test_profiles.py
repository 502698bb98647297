"""Customer names and emails: kept by the workers in the transaction that processes the
customer event, newest by `created` whatever the order. On SQLite and PostgreSQL."""

from __future__ import annotations

import json
from typing import Any

from sqlalchemy import Engine

from ledger.processing import process_batch, process_inbox_row
from ledger.reporting.profiles import profiles
from ledger.rules.profiles import ProfileVersion, read_profile
from ledger.storage import inbox
from ledger.storage import profiles as profile_store
from ledger.storage.schema import InboxStatus
from tests.support.workspace import customer_event


def _store(engine: Engine, *events: dict[str, Any]) -> list[int]:
    with engine.begin() as conn:
        stored = inbox.store_events(conn, [(json.dumps(e), e) for e in events])
    return [s.inbox_id for s in stored]


def _updated(event_id: str, customer: str, name: str, email: str, at: int) -> dict[str, Any]:
    event = customer_event(event_id, customer, name, email, at)
    event["type"] = "customer.updated"
    return event


def test_a_name_is_there_once_its_event_is_processed(engine: Engine) -> None:
    ids = _store(engine, customer_event("evt_c1", "cus_a", "Ann & Co", "ann@example.com", 100))
    done = process_batch(engine, ids, max_attempts=4)
    assert done.counts == {InboxStatus.IGNORED: 1}  # no MRR in it
    with engine.connect() as conn:
        found = profiles(conn)
        assert list(found) == ["cus_a"]
        assert (found["cus_a"].name, found["cus_a"].email) == ("Ann & Co", "ann@example.com")


def test_one_event_processed_alone_keeps_its_name_too(engine: Engine) -> None:
    [row] = _store(engine, customer_event("evt_c1", "cus_a", "Ann", "ann@example.com", 100))
    assert process_inbox_row(engine, row, max_attempts=4).status == InboxStatus.IGNORED
    with engine.connect() as conn:
        assert profiles(conn, ["cus_a"])["cus_a"].name == "Ann"


def test_the_newest_event_wins_in_any_order(engine: Engine) -> None:
    created = customer_event("evt_c1", "cus_a", "Ann", "ann@example.com", 100)
    renamed = _updated("evt_c2", "cus_a", "Ann Ltd", "billing@example.com", 200)
    later_batch = _store(engine, renamed)
    process_batch(engine, later_batch, max_attempts=4)
    process_batch(engine, _store(engine, created), max_attempts=4)  # older, processed last
    with engine.connect() as conn:
        ann = profiles(conn)["cus_a"]
        assert (ann.name, ann.email) == ("Ann Ltd", "billing@example.com")
    both = _store(
        engine,
        _updated("evt_c4", "cus_b", "Bea new", "b@example.com", 400),
        _updated("evt_c3", "cus_b", "Bea old", "b@example.com", 300),
    )
    process_batch(engine, both, max_attempts=4)  # both in one batch, newest first in the inbox
    with engine.connect() as conn:
        assert profiles(conn)["cus_b"].name == "Bea new"


def test_a_listed_profile_is_newer_than_the_events_before_the_listing(engine: Engine) -> None:
    process_batch(
        engine, _store(engine, _updated("evt_c1", "cus_a", "Old", "a@example.com", 100)),
        max_attempts=4,
    )  # fmt: skip
    listed = read_profile({"object": "customer", "id": "cus_a", "name": "Listed", "email": ""})
    assert (listed.customer_id, listed.name, listed.email) == ("cus_a", "Listed", None)
    with engine.begin() as conn:
        profile_store.keep(conn, [ProfileVersion(listed, 150, "/v1/customers")])
    process_batch(
        engine, _store(engine, _updated("evt_c2", "cus_a", "After", "a@example.com", 200)),
        max_attempts=4,
    )  # fmt: skip
    with engine.connect() as conn:
        assert profiles(conn)["cus_a"].name == "After"
