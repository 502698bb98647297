"""Customers' replay checkpoints, and the bounded reads of the inbox that resuming needs.

A checkpoint is a customer's replay state after its first `events` relevant events, the last at
(created, event_id), sealed by ledger.rules.state_codec. Resuming from one reads only the
customer's inbox rows from that second on (and `store.apply` only the ledger entries whose
source is one of them). Each function takes many customers at once, as a batch needs them.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, TypeVar

from sqlalchemy import (
    ColumnElement,
    Connection,
    String,
    and_,
    delete,
    func,
    insert,
    literal_column,
    or_,
    select,
)
from sqlalchemy import tuple_ as row

from ledger.rules.events import EventRecord, parse_event
from ledger.rules.timeline import Checkpoint, is_relevant
from ledger.storage.schema import InboxStatus, inbox, replay_checkpoints

Position = tuple[int, str]  # (created, event id): the customer's replay order

# Customers or ids per statement: SQLite parses a long OR chain into a tree as deep as it is long
# (it refuses beyond 1,000), and caps the parameters of one statement.
CHUNK = 250
T = TypeVar("T")
# Written literally, or neither database uses the partial index of pending rows.
_PENDING: ColumnElement[str] = literal_column(f"'{InboxStatus.PENDING}'", String)


def _chunks(items: Sequence[T]) -> Iterator[Sequence[T]]:
    for start in range(0, len(items), CHUNK):
        yield items[start : start + CHUNK]


@dataclass(frozen=True, slots=True)
class Stored:
    """A stored checkpoint, without its state."""

    events: int
    position: Position


@dataclass(frozen=True, slots=True)
class After:
    """A customer's inbox rows sorting after a position."""

    events: list[EventRecord]  # the readable ones the rules replay
    sources: list[str]  # every row's event id, whatever its status: entries may name any


def pending_positions(conn: Connection, customer_ids: Sequence[str]) -> dict[str, list[Position]]:
    """Where each customer's relevant events still pending sort."""
    found: dict[str, list[Position]] = defaultdict(list)
    for chunk in _chunks(sorted(set(customer_ids))):
        rows = conn.execute(
            select(
                inbox.c.customer_id, inbox.c.created, inbox.c.event_id, inbox.c.event_type
            ).where(inbox.c.customer_id.in_(chunk), inbox.c.status == _PENDING)
        )
        for customer_id, created, event_id, event_type in rows:
            if is_relevant(event_type):
                found[customer_id].append((int(created), str(event_id)))
    return found


def stored(conn: Connection, customer_ids: Sequence[str]) -> dict[str, list[Stored]]:
    """Each customer's checkpoints, fewest events first."""
    table = replay_checkpoints
    found: dict[str, list[Stored]] = defaultdict(list)
    for chunk in _chunks(sorted(set(customer_ids))):
        rows = conn.execute(
            select(table.c.customer_id, table.c.events, table.c.created, table.c.event_id)
            .where(table.c.customer_id.in_(chunk))
            .order_by(table.c.customer_id, table.c.events)
        )
        for customer_id, events, created, event_id in rows:
            found[customer_id].append(Stored(int(events), (int(created), str(event_id))))
    return found


def states(conn: Connection, chosen: Mapping[str, int]) -> dict[str, str]:
    """The sealed state of the checkpoint after `chosen[customer]` events, per customer."""
    table = replay_checkpoints
    found: dict[str, str] = {}
    for chunk in _chunks(sorted(chosen.items())):
        rows = conn.execute(
            select(table.c.customer_id, table.c.state).where(
                row(table.c.customer_id, table.c.events).in_(list(chunk))
            )
        )
        found.update((str(customer_id), str(state)) for customer_id, state in rows)
    return found


def events_after(
    conn: Connection,
    starts: Mapping[str, Position],
    parsed: Mapping[str, EventRecord] | None = None,
) -> dict[str, After]:
    """Each customer's inbox rows sorting after its start: only those rows are read, and only
    the readable relevant ones parsed (`parsed`: events already read, by id)."""
    known = parsed or {}
    events: dict[str, list[EventRecord]] = defaultdict(list)
    sources: dict[str, list[str]] = defaultdict(list)
    for chunk in _chunks(sorted(starts)):
        since = [and_(inbox.c.customer_id == c, inbox.c.created >= starts[c][0]) for c in chunk]
        rows = conn.execute(
            select(
                inbox.c.customer_id,
                inbox.c.created,
                inbox.c.event_id,
                inbox.c.event_type,
                inbox.c.status,
                inbox.c.payload,
            ).where(
                # From the start's second: ties on `created` are settled below, by the rules'
                # order of ids, which the database's collation need not share.
                or_(*since)
            )
        )
        for customer_id, created, event_id, event_type, status, payload in rows:
            if (int(created), str(event_id)) <= starts[customer_id]:
                continue
            sources[customer_id].append(event_id)
            if status != InboxStatus.FAILED and is_relevant(event_type):
                event = known.get(event_id)
                events[customer_id].append(parse_event(payload) if event is None else event)
    return {c: After(events[c], sources[c]) for c in starts}


def positions_of(conn: Connection, event_ids: Sequence[str]) -> dict[str, Position]:
    """Where each of these stored events sorts, by event id."""
    found: dict[str, Position] = {}
    for chunk in _chunks(event_ids):
        query = select(inbox.c.event_id, inbox.c.created).where(inbox.c.event_id.in_(chunk))
        found.update((str(e), (int(c), str(e))) for e, c in conn.execute(query))
    return found


def save(conn: Connection, customer_id: str, checkpoints: Iterable[Checkpoint]) -> None:
    now = datetime.now(UTC)
    rows: list[dict[str, Any]] = [
        {
            "customer_id": customer_id,
            "events": c.events,
            "created": c.position[0],
            "event_id": c.position[1],
            "state": c.sealed,
            "saved_at": now,
        }
        for c in checkpoints
    ]
    if rows:
        conn.execute(insert(replay_checkpoints), rows)


def discard(conn: Connection, checkpoints: Sequence[tuple[str, int]]) -> None:
    """Delete these checkpoints, each named by (customer, events)."""
    table = replay_checkpoints
    for chunk in _chunks(sorted(checkpoints)):
        conn.execute(delete(table).where(row(table.c.customer_id, table.c.events).in_(chunk)))


def clear(conn: Connection, customer_ids: Sequence[str] | None = None) -> int:
    """Delete the checkpoints of these customers, or of all; how many there were."""
    if customer_ids is None:
        return int(conn.execute(delete(replay_checkpoints)).rowcount)
    gone = 0
    for chunk in _chunks(sorted(set(customer_ids))):
        statement = delete(replay_checkpoints).where(replay_checkpoints.c.customer_id.in_(chunk))
        gone += int(conn.execute(statement).rowcount)
    return gone


def count(conn: Connection) -> int:
    return int(conn.execute(select(func.count()).select_from(replay_checkpoints)).scalar_one())


def customers(conn: Connection) -> list[str]:
    """Every customer with a stored event."""
    query = select(inbox.c.customer_id).where(inbox.c.customer_id.is_not(None)).distinct()
    return sorted(str(c) for c in conn.execute(query).scalars())
