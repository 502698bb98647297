"""The durable inbox: every accepted Stripe event, raw, with its processing status."""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Connection, Engine, and_, func, select, update

from ledger.db import dialect_insert
from ledger.events import EventRecord, MalformedEvent, customer_of, parse_event
from ledger.schema import inbox


@dataclass(frozen=True, slots=True)
class InboxRow:
    id: int
    event_id: str
    event_type: str
    created: int
    customer_id: str | None
    source: str
    status: str
    attempts: int
    error: str | None
    received_at: datetime
    payload: str

    def event(self) -> EventRecord:
        return parse_event(self.payload)


@dataclass(frozen=True, slots=True)
class Stored:
    inbox_id: int
    inserted: bool
    status: str


# Column limits (ledger/schema.py) and PostgreSQL's BIGINT: what a stored event's header
# fields must fit, or the insert fails in the database on every redelivery.
TEXT_LIMITS = {"event_id": 255, "event_type": 255, "customer_id": 255, "api_version": 64}
BIGINT = range(-(2**63), 2**63)
# Stripe's API versions: a date, then from 2024-09-30 a release name ("2025-03-31.basil").
API_VERSION = re.compile(r"^\d{4}-\d{2}-\d{2}(\.[a-z]+)?$")


def storable_text(value: object, limit: int) -> bool:
    """A string both databases store as text: no NUL, no lone surrogate, within the limit."""
    if not isinstance(value, str) or len(value) > limit or "\x00" in value:
        return False
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _unreadable(event: EventRecord, api_version: object) -> str | None:
    """Why a parsed event still cannot be stored as pending, if it cannot."""
    if event.created not in BIGINT:
        return "'created' is out of range"
    fields = {
        "event_type": event.type,
        "customer_id": customer_of(event),
        "api_version": event.api_version,
    }
    for name, value in fields.items():
        if value is not None and not storable_text(value, TEXT_LIMITS[name]):
            return f"{name} is not storable text (NUL, invalid Unicode or too long)"
    if api_version is not None and not (
        isinstance(api_version, str) and API_VERSION.match(api_version)
    ):
        return f"unknown API version {api_version!r}"
    return None


def store_event(
    conn: Connection, raw: str, body: dict[str, Any], *, source: str = "webhook"
) -> Stored:
    """Insert an event once; a second delivery of the same id finds the first row.

    `body` must be a JSON object with a string `id` (see `storable_text`). An event that cannot
    be read further is still kept, marked failed with the reason, so nothing Stripe signed is
    ever dropped.
    """
    event_id = body["id"]
    values: dict[str, Any] = {
        "event_id": event_id,
        "source": source,
        "received_at": datetime.now(UTC),
        "attempts": 0,
        "payload": raw,
    }
    try:
        event = parse_event(body)
        reason = _unreadable(event, body.get("api_version"))
        if reason is not None:
            raise MalformedEvent(reason)
    except MalformedEvent as problem:
        created, kind = body.get("created"), body.get("type")
        values |= {
            "event_type": kind if kind and storable_text(kind, 255) else "unknown",
            "created": created
            if isinstance(created, int) and not isinstance(created, bool) and created in BIGINT
            else 0,
            "api_version": None,
            "livemode": False,
            "customer_id": None,
            "status": "failed",
            "error": f"malformed event: {problem}",
        }
    else:
        values |= {
            "event_type": event.type,
            "created": event.created,
            "api_version": event.api_version,
            "livemode": event.livemode,
            "customer_id": customer_of(event),
            "status": "pending",
        }
    statement = (
        dialect_insert(conn, inbox)
        .values(**values)
        .on_conflict_do_nothing(index_elements=["event_id"])
    )
    inserted = conn.execute(statement.returning(inbox.c.id)).scalar_one_or_none()
    if inserted is not None:
        return Stored(int(inserted), True, values["status"])
    existing = conn.execute(
        select(inbox.c.id, inbox.c.status).where(inbox.c.event_id == event_id)
    ).one()
    return Stored(int(existing.id), False, str(existing.status))


def store_durably(engine: Engine, raw: str, body: dict[str, Any]) -> Stored:
    """`store_event` committed before returning, in as few round trips as the database allows.

    On PostgreSQL the single INSERT ... ON CONFLICT DO NOTHING is atomic by itself, so it runs
    in autocommit: no BEGIN and COMMIT round trips. SQLite's writers need their BEGIN IMMEDIATE.
    """
    if engine.dialect.name != "postgresql":
        with engine.begin() as conn:
            return store_event(conn, raw, body)
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        return store_event(conn, raw, body)


def store_events(engine: Engine, raws: Sequence[str], *, source: str) -> list[Stored]:
    """Store many already-serialized events in one transaction (backfill, benchmarks)."""
    with engine.begin() as conn:
        return [store_event(conn, raw, json.loads(raw), source=source) for raw in raws]


def dumps(body: dict[str, Any]) -> str:
    return json.dumps(body, separators=(",", ":"), sort_keys=True)


def _row(mapping: Any) -> InboxRow:
    return InboxRow(**{name: mapping[name] for name in InboxRow.__slots__})


def get(conn: Connection, inbox_id: int) -> InboxRow | None:
    found = conn.execute(select(inbox).where(inbox.c.id == inbox_id)).mappings().first()
    return None if found is None else _row(found)


def list_rows(
    conn: Connection, *, status: str | None = None, limit: int = 100, after_id: int = 0
) -> list[InboxRow]:
    query = select(inbox).where(inbox.c.id > after_id).order_by(inbox.c.id).limit(limit)
    if status is not None:
        query = query.where(inbox.c.status == status)
    return [_row(m) for m in conn.execute(query).mappings()]


def customer_events(conn: Connection, customer_id: str) -> list[EventRecord]:
    """Every readable event stored for a customer, whatever its processing status."""
    rows = conn.execute(
        select(inbox.c.payload)
        .where(inbox.c.customer_id == customer_id, inbox.c.status != "failed")
        .order_by(inbox.c.created, inbox.c.event_id)
    ).scalars()
    return [parse_event(payload) for payload in rows]


def mark(conn: Connection, inbox_id: int, status: str, error: str | None = None) -> None:
    conn.execute(
        update(inbox)
        .where(inbox.c.id == inbox_id)
        .values(status=status, error=error, processed_at=datetime.now(UTC))
    )


def mark_event_failed(conn: Connection, event_id: str, error: str) -> None:
    """Fail a stored event found unreadable while another event was being processed."""
    conn.execute(
        update(inbox)
        .where(inbox.c.event_id == event_id, inbox.c.status != "failed")
        .values(status="failed", error=error[:4000], processed_at=datetime.now(UTC))
    )


def reset_for_retry(conn: Connection, inbox_ids: Sequence[int]) -> list[int]:
    """Failed rows back to pending with a fresh attempt count; returns the ids changed."""
    changed = conn.execute(
        update(inbox)
        .where(inbox.c.id.in_(list(inbox_ids)), inbox.c.status == "failed")
        .values(status="pending", attempts=0, error=None, processed_at=None)
        .returning(inbox.c.id)
    ).scalars()
    return sorted(int(i) for i in changed)


def failed_ids(conn: Connection) -> list[int]:
    query = select(inbox.c.id).where(inbox.c.status == "failed").order_by(inbox.c.id)
    return [int(i) for i in conn.execute(query).scalars()]


def pending_ids(conn: Connection, *, older_than: timedelta, limit: int = 10_000) -> list[int]:
    cutoff = datetime.now(UTC) - older_than
    query = (
        select(inbox.c.id)
        .where(and_(inbox.c.status == "pending", inbox.c.received_at <= cutoff))
        .order_by(inbox.c.id)
        .limit(limit)
    )
    return [int(i) for i in conn.execute(query).scalars()]


def status_counts(conn: Connection) -> dict[str, int]:
    query = select(inbox.c.status, func.count()).group_by(inbox.c.status)
    return {str(status): int(n) for status, n in conn.execute(query).all()}
