"""Turning one stored event into ledger entries: load, run the rules, diff, append.

No queue or web code here: the RQ job (workers.jobs) and the backfill call these functions.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Connection, Engine

from ledger import inbox, store
from ledger.events import EventRecord, MalformedEvent, customer_of
from ledger.timeline import MissingReference, is_relevant, references_in, replay_customer

log = logging.getLogger(__name__)

Fetcher = Callable[[str, str], dict[str, Any] | None]


class StoredReferences:
    """References backed by the reference_objects table, then by the Stripe API if given."""

    def __init__(self, conn: Connection, fetch: Fetcher | None = None) -> None:
        self._conn = conn
        self._fetch = fetch

    def get(self, kind: str, object_id: str) -> dict[str, Any] | None:
        found = store.get_reference(self._conn, kind, object_id)
        if found is not None or self._fetch is None:
            return found
        fetched = self._fetch(kind, object_id)
        if fetched is not None:
            version = int(fetched.get("created") or 0)
            store.put_reference(self._conn, kind, object_id, fetched, version, "api")
        return fetched


@dataclass(slots=True)
class Outcome:
    status: str
    appended: int = 0
    reversed: int = 0
    customers: list[str] = field(default_factory=list)
    error: str | None = None


class Unprocessable(Exception):
    """An event that will fail the same way however often it is retried."""


# What the pure rules raise on a payload they cannot read (an item list that is a string, an
# amount "abc"); database and network errors are none of these, and stay transient.
DATA_ERRORS = (TypeError, ValueError, KeyError, AttributeError, IndexError, ArithmeticError)


def _unreadable_reason(problem: Exception) -> str:
    return f"the MRR rules cannot read this event: {type(problem).__name__}: {problem}"


def _first_unreadable(
    customer_id: str, events: list[EventRecord], refs: StoredReferences
) -> tuple[EventRecord, str] | None:
    """The event whose arrival in the replay makes the rules fail (bisecting on prefixes)."""
    ordered = sorted(events, key=lambda e: e.sort_key)

    def failure(count: int) -> Exception | None:
        try:
            replay_customer(customer_id, ordered[:count], refs)
        except DATA_ERRORS as problem:
            return problem
        return None

    passes, fails = 0, len(ordered)
    problem = failure(fails)
    if problem is None:
        return None
    while fails - passes > 1:
        middle = (passes + fails) // 2
        found = failure(middle)
        if found is None:
            passes = middle
        else:
            fails, problem = middle, found
    return ordered[fails - 1], _unreadable_reason(problem)


def recompute_customer(
    conn: Connection, customer_id: str, cause_event_id: str, fetch: Fetcher | None = None
) -> store.Applied:
    """Replay every stored event of the customer and bring its ledger in effect in line.

    An event the rules cannot read is marked failed and left out, so one bad payload does not
    stop every later event of the customer; if it is the event being processed, it fails.
    """
    store.lock_customer(conn, customer_id)
    refs = StoredReferences(conn, fetch)
    events = inbox.customer_events(conn, customer_id)
    while True:
        try:
            replay = replay_customer(customer_id, events, refs)
            break
        except DATA_ERRORS:
            culprit = _first_unreadable(customer_id, events, refs)
            if culprit is None:
                raise
            event, reason = culprit
            if event.id == cause_event_id:
                raise Unprocessable(reason) from None
            log.warning("inbox event %s: %s; marked failed", event.id, reason)
            inbox.mark_event_failed(conn, event.id, reason)
            events = [e for e in events if e.id != event.id]
    store.record_dependencies(conn, customer_id, replay.depends_on)
    return store.apply(conn, customer_id, replay.entries, cause_event_id)


def apply_event(conn: Connection, event: EventRecord, fetch: Fetcher | None = None) -> Outcome:
    """Everything one event changes, inside the caller's transaction."""
    if not is_relevant(event.type):
        return Outcome(status="ignored")
    affected: set[str] = set()
    try:
        carried = references_in(event)
    except DATA_ERRORS as problem:
        raise Unprocessable(_unreadable_reason(problem)) from None
    for kind, object_id, obj in carried:
        if store.put_reference(conn, kind, object_id, obj, event.created, event.id):
            affected.update(store.dependents(conn, kind, object_id))
    own = customer_of(event)
    if own is not None:
        affected.add(own)
    outcome = Outcome(status="processed", customers=sorted(affected))
    for customer_id in outcome.customers:
        try:
            applied = recompute_customer(conn, customer_id, event.id, fetch)
        except MissingReference as missing:
            raise Unprocessable(str(missing)) from missing
        outcome.appended += applied.appended
        outcome.reversed += applied.reversed
    return outcome


def process_inbox_row(
    engine: Engine, inbox_id: int, *, max_attempts: int, fetch: Fetcher | None = None
) -> Outcome:
    """Process one inbox row in one transaction; safe to call again for the same row.

    Raises for a transient failure while attempts remain, so the queue retries it; after the
    last attempt, or for an event that can never succeed, the row is marked failed instead.
    """
    try:
        with engine.begin() as conn:
            row = inbox.get(conn, inbox_id)
            if row is None:
                return Outcome(status="missing", error=f"no inbox row {inbox_id}")
            if row.status != "pending":
                return Outcome(status=row.status)
            outcome = apply_event(conn, row.event(), fetch)
            inbox.mark(conn, inbox_id, outcome.status)
            return outcome
    except (Unprocessable, MalformedEvent) as final:
        return _fail(engine, inbox_id, str(final))
    except Exception as problem:
        with engine.begin() as conn:
            attempts = inbox.count_attempt(conn, inbox_id)
        reason = f"{type(problem).__name__}: {problem}"
        if attempts >= max_attempts:
            log.exception("inbox %s failed after %s attempts", inbox_id, attempts)
            return _fail(engine, inbox_id, reason)
        log.warning("inbox %s attempt %s failed (%s); will retry", inbox_id, attempts, reason)
        raise


def _fail(engine: Engine, inbox_id: int, reason: str) -> Outcome:
    with engine.begin() as conn:
        inbox.mark(conn, inbox_id, "failed", reason[:4000])
    return Outcome(status="failed", error=reason)
