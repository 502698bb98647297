"""The backfill's database side: stored events of a customer, batched processing, checkpoints.

`process_customer` hands every pending row of one customer to the workers' batch path
(`ledger.processing.process_batch`), which replays the customer once for the whole batch
instead of once per row (a customer with 3 years of history has dozens of rows).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection, Engine, false, select, true

from ledger import processing
from ledger.backfill.history import is_synthetic
from ledger.rules.events import customer_of, parse_event
from ledger.rules.sources import Unit
from ledger.rules.timeline import replay_customer
from ledger.storage import inbox, store
from ledger.storage.schema import InboxStatus, backfill_checkpoints
from ledger.storage.schema import inbox as inbox_table

SYNTHETIC_SOURCE = "backfill"
EVENTS_API_SOURCE = "events_api"


@dataclass(slots=True)
class Processed:
    appended: int = 0
    reversed: int = 0
    rows: int = 0
    failed: list[str] = field(default_factory=list)


def real_events(conn: Connection, unit: Unit) -> list[dict[str, Any]]:
    """The customer's stored events in its source that Stripe sent (webhook or events API),
    as dicts."""
    t = inbox_table.c
    payloads = conn.execute(
        select(t.event_id, t.payload).where(
            t.customer_id == unit.customer_id,
            t.account == unit.account,
            t.livemode.is_(true() if unit.livemode else false()),
        )
    ).all()
    return [json.loads(p) for event_id, p in payloads if not is_synthetic(str(event_id))]


@dataclass(frozen=True, slots=True)
class Held:
    live: bool  # the ledger holds live-mode events
    named: bool  # some stored event is of the account the backfill's key is for


def source_held(conn: Connection, account: str) -> Held:
    """What the inbox already holds that the backfill's source must agree with."""
    live = conn.execute(select(inbox_table.c.id).where(inbox_table.c.livemode).limit(1)).first()
    named = (
        account != ""
        and conn.execute(
            select(inbox_table.c.id).where(inbox_table.c.account == account).limit(1)
        ).first()
        is not None
    )
    return Held(live is not None, named)


def present_ids(conn: Connection, event_ids: Sequence[str]) -> set[str]:
    found: set[str] = set()
    ids = list(event_ids)
    for start in range(0, len(ids), 500):
        chunk = ids[start : start + 500]
        query = select(inbox_table.c.event_id).where(inbox_table.c.event_id.in_(chunk))
        found.update(str(i) for i in conn.execute(query).scalars())
    return found


def store_bodies(
    conn: Connection, bodies: Iterable[dict[str, Any]], account: str = ""
) -> tuple[int, int]:
    """Store events once per id, exactly as the webhook stores them, in the key's `account`
    where they name none; returns (inserted, already present). Stripe's own events come from
    its events API, the others are synthesized."""
    listed = list(bodies)
    real = [(inbox.dumps(b), b) for b in listed if not is_synthetic(str(b["id"]))]
    synthetic = [(inbox.dumps(b), b) for b in listed if is_synthetic(str(b["id"]))]
    stored = inbox.store_events(conn, real, source=EVENTS_API_SOURCE, account=account)
    stored += inbox.store_events(conn, synthetic, source=SYNTHETIC_SOURCE, account=account)
    inserted = sum(s.inserted for s in stored)
    return inserted, len(stored) - inserted


def _pending(conn: Connection, customer_id: str) -> list[int]:
    query = (
        select(inbox_table.c.id)
        .where(
            inbox_table.c.customer_id == customer_id, inbox_table.c.status == InboxStatus.PENDING
        )
        .order_by(inbox_table.c.created, inbox_table.c.event_id)
    )
    return [int(i) for i in conn.execute(query).scalars()]


def _failures(conn: Connection, inbox_ids: Sequence[int]) -> list[str]:
    query = select(inbox_table.c.id, inbox_table.c.error).where(
        inbox_table.c.id.in_(list(inbox_ids)), inbox_table.c.status == InboxStatus.FAILED
    )
    return [f"inbox {i}: {error}" for i, error in conn.execute(query).all()]


def process_rows(
    engine: Engine,
    inbox_ids: Sequence[int],
    *,
    max_attempts: int,
    fetch: processing.Fetcher | None = None,
) -> Processed:
    """Rows through the workers' batch path: each affected customer replayed once."""
    ids = list(inbox_ids)
    if not ids:
        return Processed()
    batch = processing.process_batch(engine, ids, max_attempts=max_attempts, fetch=fetch)
    result = Processed(appended=batch.appended, reversed=batch.reversed, rows=len(ids))
    with engine.connect() as conn:
        result.failed += _failures(conn, ids)
    result.failed += [
        f"inbox {i}: a transient failure; the sweeper retries it" for i in batch.retry
    ]
    return result


def process_customer(
    engine: Engine,
    customer_id: str,
    *,
    max_attempts: int,
    fetch: processing.Fetcher | None = None,
) -> Processed:
    """Process every pending row of one customer, replaying the customer once."""
    with engine.connect() as conn:
        ids = _pending(conn, customer_id)
    return process_rows(engine, ids, max_attempts=max_attempts, fetch=fetch)


def pending_ids_of(conn: Connection, event_ids: Sequence[str]) -> list[int]:
    ids = list(event_ids)
    found: list[int] = []
    for start in range(0, len(ids), 500):
        query = select(inbox_table.c.id).where(
            inbox_table.c.event_id.in_(ids[start : start + 500]),
            inbox_table.c.status == InboxStatus.PENDING,
        )
        found.extend(int(i) for i in conn.execute(query).scalars())
    return sorted(found)


def would_append(
    conn: Connection, unit: Unit, new_bodies: Sequence[dict[str, Any]]
) -> list[tuple[str, int, str, str, str]]:
    """Dry run: entries (category, amount, currency, effective_at, source) the rules would add
    to the customer's ledger in the backfill's source.

    Reversals are not listed; reference objects the rules would fetch count as missing.
    """
    customer_id = unit.customer_id
    events = inbox.customer_events(conn, [unit]).get(unit, [])
    events += [parse_event(b) for b in new_bodies if customer_of(parse_event(b)) == customer_id]
    replay = replay_customer(customer_id, events, processing.StoredReferences(conn))
    have = {e.key() for e in store.in_effect_of(conn, [unit]).get(unit, [])}
    return [
        (e.category.value, e.amount, e.currency, e.effective_at.isoformat(), e.source_event_id)
        for e in replay.entries
        if e.key() not in have
    ]


# --- checkpoints --------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Checkpoint:
    scope: str
    cursor: str | None
    customers_done: int
    completed: bool


def load_checkpoint(conn: Connection, scope: str) -> Checkpoint | None:
    row = (
        conn.execute(select(backfill_checkpoints).where(backfill_checkpoints.c.scope == scope))
        .mappings()
        .first()
    )
    if row is None:
        return None
    return Checkpoint(
        scope=scope,
        cursor=row["cursor"],
        customers_done=int(row["customers_done"]),
        completed=row["completed_at"] is not None,
    )


def save_checkpoint(
    conn: Connection, scope: str, cursor: str | None, customers_done: int, *, completed: bool
) -> None:
    now = datetime.now(UTC)
    table = backfill_checkpoints
    exists = conn.execute(select(table.c.scope).where(table.c.scope == scope)).first()
    values = {
        "cursor": cursor,
        "customers_done": customers_done,
        "updated_at": now,
        "completed_at": now if completed else None,
    }
    if exists is None:
        conn.execute(table.insert().values(scope=scope, started_at=now, **values))
    else:
        conn.execute(table.update().where(table.c.scope == scope).values(**values))


@dataclass(frozen=True, slots=True)
class Run:
    """A backfill as its checkpoint records it: when it started, got to, and finished."""

    scope: str
    customers_done: int
    started_at: datetime
    updated_at: datetime
    completed_at: datetime | None


def last_run(conn: Connection) -> Run | None:
    """The backfill that moved last, of any scope (`mrr status`)."""
    table = backfill_checkpoints
    row = (
        conn.execute(select(table).order_by(table.c.updated_at.desc()).limit(1)).mappings().first()
    )
    if row is None:
        return None
    return Run(
        scope=str(row["scope"]),
        customers_done=int(row["customers_done"]),
        started_at=row["started_at"],
        updated_at=row["updated_at"],
        completed_at=row["completed_at"],
    )
