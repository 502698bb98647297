"""Set-at-a-time versions of the inbox and ledger operations, for processing a batch of rows.

One statement per step for the whole batch instead of one per event or per customer: claiming
inbox rows, locking customers, loading their events and ledgers in effect, appending entries,
marking rows. The diff itself is `store.apply`'s, on ledgers loaded up front.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Connection, exists, insert, select, update
from sqlalchemy.orm import aliased

from ledger.rules.events import EventRecord, parse_event
from ledger.storage import store
from ledger.storage.db import dialect_insert
from ledger.storage.inbox import InboxRow
from ledger.storage.schema import customers, inbox, ledger_entries


def claim_pending(conn: Connection, inbox_ids: Sequence[int], extra: int = 0) -> list[InboxRow]:
    """The pending rows among `inbox_ids`, plus up to `extra` other fresh pending rows.

    PostgreSQL: rows are locked FOR UPDATE SKIP LOCKED, so a row another worker is processing
    is left to it and concurrent batches never wait on each other here. SQLite: the whole
    database is write-locked by BEGIN IMMEDIATE already. Extra rows are only ones never tried
    (attempts = 0), so a row waiting for its retry keeps its backoff.
    """
    postgres = conn.dialect.name == "postgresql"
    query = select(inbox).where(inbox.c.id.in_(list(inbox_ids)), inbox.c.status == "pending")
    if postgres:
        query = query.order_by(inbox.c.id).with_for_update(skip_locked=True)
    rows = [_inbox_row(m) for m in conn.execute(query).mappings()]
    if extra > 0:
        more = (
            select(inbox)
            .where(
                inbox.c.status == "pending",
                inbox.c.attempts == 0,
                inbox.c.id.not_in(list(inbox_ids)),
            )
            .order_by(inbox.c.id)
            .limit(extra)
        )
        if postgres:
            more = more.with_for_update(skip_locked=True)
        rows += [_inbox_row(m) for m in conn.execute(more).mappings()]
    return rows


def claim_customers_pending(
    conn: Connection, customer_ids: Sequence[str], exclude: Sequence[int], limit: int
) -> list[InboxRow]:
    """Other fresh pending rows of these customers, up to `limit` (locked as in claim_pending).

    Processing a customer replays all its stored events anyway, so its other pending rows
    cost nothing more in the same batch, and the customer is then recomputed once, not once
    per batch that holds one of its events.
    """
    if not customer_ids or limit <= 0:
        return []
    query = (
        select(inbox)
        .where(
            inbox.c.customer_id.in_(sorted(set(customer_ids))),
            inbox.c.status == "pending",
            inbox.c.attempts == 0,
            inbox.c.id.not_in(list(exclude)),
        )
        .order_by(inbox.c.customer_id, inbox.c.id)
        .limit(limit)
    )
    if conn.dialect.name == "postgresql":
        query = query.with_for_update(skip_locked=True)
    return [_inbox_row(m) for m in conn.execute(query).mappings()]


def _inbox_row(mapping: Any) -> InboxRow:
    return InboxRow(**{name: mapping[name] for name in InboxRow.__slots__})


def lock_customers(conn: Connection, customer_ids: Sequence[str]) -> None:
    """`store.lock_customer` for many customers, always in customer id order (no deadlocks)."""
    ordered = sorted(set(customer_ids))
    if not ordered:
        return
    now = datetime.now(UTC)
    conn.execute(
        dialect_insert(conn, customers).on_conflict_do_nothing(index_elements=["customer_id"]),
        [{"customer_id": c, "first_seen_at": now} for c in ordered],
    )
    if conn.dialect.name == "postgresql":
        conn.execute(
            select(customers.c.customer_id)
            .where(customers.c.customer_id.in_(ordered))
            .order_by(customers.c.customer_id)
            .with_for_update()
        ).all()


def customers_events(
    conn: Connection,
    customer_ids: Sequence[str],
    parsed: Mapping[str, EventRecord] | None = None,
) -> dict[str, list[EventRecord]]:
    """`inbox.customer_events` for many customers in one query.

    `parsed`: events already read by event id (the batch's own rows), not parsed again.
    """
    known = parsed or {}
    found: dict[str, list[EventRecord]] = defaultdict(list)
    rows = conn.execute(
        select(inbox.c.customer_id, inbox.c.event_id, inbox.c.payload)
        .where(inbox.c.customer_id.in_(list(customer_ids)), inbox.c.status != "failed")
        .order_by(inbox.c.customer_id, inbox.c.created, inbox.c.event_id)
    )
    for customer_id, event_id, payload in rows:
        event = known.get(event_id)
        found[customer_id].append(parse_event(payload) if event is None else event)
    return found


def in_effect_by_customer(
    conn: Connection, customer_ids: Sequence[str]
) -> dict[str, list[store.StoredEntry]]:
    """`store.in_effect` for many customers in one query, each list in id order."""
    reversal = aliased(ledger_entries)
    query = (
        select(ledger_entries)
        .where(
            ledger_entries.c.customer_id.in_(list(customer_ids)),
            ledger_entries.c.reversal_of.is_(None),
            ~exists().where(reversal.c.reversal_of == ledger_entries.c.id),
        )
        .order_by(ledger_entries.c.id)
    )
    found: dict[str, list[store.StoredEntry]] = defaultdict(list)
    for mapping in conn.execute(query).mappings():
        entry = store.entry_from_row(mapping)
        found[entry.customer_id].append(entry)
    return found


def append_rows(conn: Connection, rows: Sequence[dict[str, Any]]) -> None:
    """One executemany (psycopg pipelines it; a multi-row VALUES compiles far slower)."""
    if rows:
        conn.execute(insert(ledger_entries), list(rows))


def mark_many(conn: Connection, inbox_ids: Sequence[int], status: str) -> None:
    """`inbox.mark` for many rows with the same status, in one UPDATE."""
    if inbox_ids:
        conn.execute(
            update(inbox)
            .where(inbox.c.id.in_(list(inbox_ids)))
            .values(status=status, error=None, processed_at=datetime.now(UTC))
        )


def count_attempt_if_pending(conn: Connection, inbox_id: int) -> int | None:
    """Count a failed attempt; None if the row is no longer pending (someone processed it)."""
    found = conn.execute(
        update(inbox)
        .where(inbox.c.id == inbox_id, inbox.c.status == "pending")
        .values(attempts=inbox.c.attempts + 1)
        .returning(inbox.c.attempts)
    ).scalar_one_or_none()
    return None if found is None else int(found)


def fail_if_pending(conn: Connection, inbox_id: int, reason: str) -> bool:
    """Mark a row failed unless another worker has finished it meanwhile."""
    changed = conn.execute(
        update(inbox)
        .where(inbox.c.id == inbox_id, inbox.c.status == "pending")
        .values(status="failed", error=reason[:4000], processed_at=datetime.now(UTC))
        .returning(inbox.c.id)
    ).first()
    return changed is not None


def pending_ids_after(
    conn: Connection, *, older_than: timedelta, after_id: int = 0, limit: int = 10_000
) -> list[int]:
    """`inbox.pending_ids`, one page after `after_id` (the sweeper pages through them all)."""
    cutoff = datetime.now(UTC) - older_than
    query = (
        select(inbox.c.id)
        .where(inbox.c.status == "pending", inbox.c.received_at <= cutoff, inbox.c.id > after_id)
        .order_by(inbox.c.id)
        .limit(limit)
    )
    return [int(i) for i in conn.execute(query).scalars()]
