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

from ledger.rules.events import EventRecord
from ledger.rules.sources import Unit
from ledger.rules.timeline import Checkpoint, is_relevant
from ledger.storage.inbox import stored_event
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


def _inbox_unit(customer_id: Any, account: Any, livemode: Any) -> Unit:
    return Unit(str(customer_id), str(account), bool(livemode))


_UNIT_OF_INBOX = (inbox.c.customer_id, inbox.c.account, inbox.c.livemode)
_UNIT_OF_CHECKPOINT = (
    replay_checkpoints.c.customer_id,
    replay_checkpoints.c.account,
    replay_checkpoints.c.livemode,
)


def pending_positions(conn: Connection, units: Sequence[Unit]) -> dict[Unit, list[Position]]:
    """Where each unit's relevant events still pending sort."""
    found: dict[Unit, list[Position]] = defaultdict(list)
    wanted = set(units)
    for chunk in _chunks(sorted({u.customer_id for u in wanted})):
        rows = conn.execute(
            select(*_UNIT_OF_INBOX, inbox.c.created, inbox.c.event_id, inbox.c.event_type).where(
                inbox.c.customer_id.in_(chunk), inbox.c.status == _PENDING
            )
        )
        for customer_id, account, livemode, created, event_id, event_type in rows:
            unit = _inbox_unit(customer_id, account, livemode)
            if unit in wanted and is_relevant(event_type):
                found[unit].append((int(created), str(event_id)))
    return found


def stored(conn: Connection, units: Sequence[Unit]) -> dict[Unit, list[Stored]]:
    """Each unit's checkpoints, fewest events first."""
    table = replay_checkpoints
    found: dict[Unit, list[Stored]] = defaultdict(list)
    for chunk in _chunks(sorted(set(units))):
        rows = conn.execute(
            select(*_UNIT_OF_CHECKPOINT, table.c.events, table.c.created, table.c.event_id)
            .where(row(*_UNIT_OF_CHECKPOINT).in_(list(chunk)))
            .order_by(*_UNIT_OF_CHECKPOINT, table.c.events)
        )
        for customer_id, account, livemode, events, created, event_id in rows:
            unit = _inbox_unit(customer_id, account, livemode)
            found[unit].append(Stored(int(events), (int(created), str(event_id))))
    return found


def states(conn: Connection, chosen: Mapping[Unit, int]) -> dict[Unit, str]:
    """The sealed state of the checkpoint after `chosen[unit]` events, per unit."""
    table = replay_checkpoints
    found: dict[Unit, str] = {}
    for chunk in _chunks(sorted(chosen.items())):
        rows = conn.execute(
            select(*_UNIT_OF_CHECKPOINT, table.c.state).where(
                row(*_UNIT_OF_CHECKPOINT, table.c.events).in_([(*u, n) for u, n in chunk])
            )
        )
        found.update((_inbox_unit(c, a, m), str(state)) for c, a, m, state in rows)
    return found


def events_after(
    conn: Connection,
    starts: Mapping[Unit, Position],
    parsed: Mapping[str, EventRecord] | None = None,
) -> dict[Unit, After]:
    """Each customer's inbox rows sorting after its start: only those rows are read, and only
    the readable relevant ones parsed (`parsed`: events already read, by id)."""
    known = parsed or {}
    events: dict[Unit, list[EventRecord]] = defaultdict(list)
    sources: dict[Unit, list[str]] = defaultdict(list)
    for chunk in _chunks(sorted(starts)):
        since = [
            and_(
                inbox.c.customer_id == u.customer_id,
                inbox.c.account == u.account,
                inbox.c.livemode == u.livemode,
                inbox.c.created >= starts[u][0],
            )
            for u in chunk
        ]
        rows = conn.execute(
            select(
                *_UNIT_OF_INBOX,
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
        for customer_id, account, livemode, created, event_id, event_type, status, payload in rows:
            unit = _inbox_unit(customer_id, account, livemode)
            if (int(created), str(event_id)) <= starts[unit]:
                continue
            sources[unit].append(event_id)
            if status != InboxStatus.FAILED and is_relevant(event_type):
                event = known.get(event_id)
                events[unit].append(stored_event(payload, account) if event is None else event)
    return {c: After(events[c], sources[c]) for c in starts}


def positions_of(conn: Connection, event_ids: Sequence[str]) -> dict[str, Position]:
    """Where each of these stored events sorts, by event id."""
    found: dict[str, Position] = {}
    for chunk in _chunks(event_ids):
        query = select(inbox.c.event_id, inbox.c.created).where(inbox.c.event_id.in_(chunk))
        found.update((str(e), (int(c), str(e))) for e, c in conn.execute(query))
    return found


def save(conn: Connection, unit: Unit, checkpoints: Iterable[Checkpoint]) -> None:
    now = datetime.now(UTC)
    rows: list[dict[str, Any]] = [
        {
            "customer_id": unit.customer_id,
            "account": unit.account,
            "livemode": unit.livemode,
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


def discard(conn: Connection, checkpoints: Sequence[tuple[Unit, int]]) -> None:
    """Delete these checkpoints, each named by (unit, events)."""
    table = replay_checkpoints
    for chunk in _chunks(sorted(checkpoints)):
        named = [(*u, n) for u, n in chunk]
        conn.execute(delete(table).where(row(*_UNIT_OF_CHECKPOINT, table.c.events).in_(named)))


def clear(conn: Connection, units: Sequence[Unit] | None = None) -> int:
    """Delete the checkpoints of these units, or of all; how many there were."""
    if units is None:
        return int(conn.execute(delete(replay_checkpoints)).rowcount)
    gone = 0
    for chunk in _chunks(sorted(set(units))):
        statement = delete(replay_checkpoints).where(row(*_UNIT_OF_CHECKPOINT).in_(list(chunk)))
        gone += int(conn.execute(statement).rowcount)
    return gone


def count(conn: Connection) -> int:
    return int(conn.execute(select(func.count()).select_from(replay_checkpoints)).scalar_one())


def units(conn: Connection) -> list[Unit]:
    """Every customer with a stored event, in each of its sources."""
    query = select(*_UNIT_OF_INBOX).where(inbox.c.customer_id.is_not(None)).distinct()
    return sorted(_inbox_unit(*found) for found in conn.execute(query))
