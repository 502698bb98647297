"""Guarantees 6.1, 6.2 and 6.5 through the real store: idempotent and order-free, whatever the
spacing of the replay checkpoints."""

from __future__ import annotations

import json
from collections import Counter
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import Engine

from ledger.processing import process_inbox_row
from ledger.storage import inbox, store
from ledger.storage.db import make_engine
from tests.rules.histories import histories as customer_histories
from tests.support.arrivals import Event, arrival, histories
from tests.support.databases import Templates
from tests.support.ledger import all_entries


def deliver(engine: Engine, events: list[Event], checkpoint_every: int | None = None) -> None:
    """Each event as a webhook would: store it, then process it at once."""
    for body in events:
        with engine.begin() as conn:
            (stored,) = inbox.store_events(conn, [(inbox.dumps(body), body)])
        process_inbox_row(
            engine, stored.inbox_id, max_attempts=1, checkpoint_every=checkpoint_every
        )


def in_effect(engine: Engine) -> Counter[tuple[Any, ...]]:
    with engine.connect() as conn:
        return Counter(e.key() for e in store.in_effect(conn))


def monthly_sums(engine: Engine) -> dict[tuple[str, str, str], int]:
    sums: Counter[tuple[str, str, str]] = Counter()
    with engine.connect() as conn:
        for row in all_entries(conn):
            sums[(row.effective_at.strftime("%Y-%m"), row.currency, row.category.value)] += (
                row.amount
            )
    return {k: v for k, v in sums.items() if v}


def fresh(templates: Templates, backend: str) -> tuple[Engine, Any]:
    if backend == "sqlite":
        return make_engine(templates.sqlite_copy()), None
    copy = templates.pg_copy()
    return make_engine(copy.__enter__()), copy


RENAMES = {
    '"cus_p"': '"cus_q"',
    '"di_cust"': '"di_q"',
    '"evt_': '"evt_q_',
    '"sub_': '"sub_q_',
    '"in_': '"in_q_',
}


def as_other_customer(events: list[Event]) -> list[Event]:
    """The same history for another customer, with its own ids."""
    text = json.dumps(events)
    for old, new in RENAMES.items():
        text = text.replace(old, new)
    return list(json.loads(text))


def rich_histories() -> st.SearchStrategy[list[Event]]:
    """Trials, failures, recoveries, pauses, discounts, cancellations; one or two customers."""
    one = customer_histories().map(lambda h: list(h.events))
    return st.tuples(one, st.booleans(), one).map(
        lambda t: t[0] + (as_other_customer(t[2]) if t[1] else [])
    )


DB_PROPERTY = settings(
    max_examples=20, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


@DB_PROPERTY
@given(data=st.data(), backend=st.sampled_from(["sqlite", "postgresql"]))
def test_any_arrival_order_with_duplicates_gives_the_in_order_ledger(
    templates: Templates, data: st.DataObject, backend: str
) -> None:
    events = data.draw(st.one_of(histories(), rich_histories()))
    shuffled = data.draw(arrival(events))
    ordered = sorted(events, key=lambda e: (e["created"], e["id"]))
    every = data.draw(st.sampled_from([1, 2, 3, None]))
    results = []
    for delivery in (ordered, shuffled):
        engine, copy = fresh(templates, backend)
        try:
            deliver(engine, delivery, every)
            results.append((in_effect(engine), monthly_sums(engine)))
            with engine.connect() as conn:
                assert set(inbox.status_counts(conn)) <= {"processed"}
        finally:
            engine.dispose()
            if copy is not None:
                copy.__exit__(None, None, None)
    (in_order, in_order_sums), (any_order, any_order_sums) = results
    assert any_order == in_order
    assert any_order_sums == in_order_sums
