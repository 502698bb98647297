"""The durable inbox: every accepted Stripe event, raw, with its processing status."""

from __future__ import annotations

import json
import re
import threading
from collections import defaultdict
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Connection, Engine, bindparam, func, select, update
from sqlalchemy.dialects import postgresql, sqlite

from ledger.rules.events import EventRecord, MalformedEvent, customer_of, parse_event
from ledger.rules.sources import Unit, account_of
from ledger.storage.pg_prepared import PreparedInsert
from ledger.storage.schema import InboxStatus, inbox, text_limit


@dataclass(frozen=True, slots=True)
class InboxRow:
    id: int
    event_id: str
    event_type: str
    created: int
    customer_id: str | None
    source: str
    livemode: bool
    account: str
    status: InboxStatus
    attempts: int
    error: str | None
    received_at: datetime
    payload: str

    def event(self) -> EventRecord:
        return stored_event(self.payload, self.account)


def stored_event(payload: str, account: str) -> EventRecord:
    """A stored event as the rules read it, in the account its row holds (which a bound
    webhook secret may give an event that names none)."""
    event = parse_event(payload)
    return event if event.account == account else replace(event, account=account)


@dataclass(frozen=True, slots=True)
class Stored:
    inbox_id: int
    inserted: bool
    status: InboxStatus


# Column limits and PostgreSQL's BIGINT: what a stored event's header fields must fit, or the
# insert fails in the database on every redelivery.
TEXT_LIMITS = {
    name: text_limit(inbox.c[name])
    for name in ("event_id", "event_type", "customer_id", "api_version")
}
BIGINT = range(-(2**63), 2**63)
_ACCOUNT_CHARS = text_limit(inbox.c.account)
# Errors are kept short: a reason, not a dump.
ERROR_CHARS = 4000
# Stripe's API versions: a date, then from 2024-09-30 a release name ("2025-03-31.basil").
API_VERSION = re.compile(r"^\d{4}-\d{2}-\d{2}(\.[a-z]+)?$")
# Built once: the values come as parameters, so each write reuses the compiled statement
# instead of building and hashing a new one (a fifth of a webhook's CPU time). Given many rows,
# SQLAlchemy sends them as one multi-row INSERT ("insertmanyvalues").
_INSERT = {
    name: dialect.insert(inbox)
    .on_conflict_do_nothing(index_elements=["event_id"])
    .returning(inbox.c.id, inbox.c.event_id)
    for name, dialect in (("postgresql", postgresql), ("sqlite", sqlite))
}
# The webhook's one-row insert on PostgreSQL (see store_durably).
_PREPARED_INSERT = PreparedInsert(
    "mrr_inbox_insert",
    _INSERT["postgresql"].values(
        {c.name: bindparam(c.name) for c in inbox.columns if c.name not in ("id", "processed_at")}
    ),
    select(inbox.c.id, inbox.c.status).where(inbox.c.event_id == bindparam("event_id")),
)


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


def _row_values(
    raw: str, body: dict[str, Any], *, source: str = "webhook", account: str | None = None
) -> dict[str, Any]:
    """The inbox row for an event (see `store_events`): pending, or failed with the reason.
    `account`: the source's account when the event names none (a bound secret, the backfill's
    key); an account the event names always wins."""
    named = account_of(body)
    values: dict[str, Any] = {
        "event_id": body["id"],
        "source": source,
        "account": named if named and storable_text(named, _ACCOUNT_CHARS) else account or "",
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
        return values | {
            "event_type": kind
            if kind and storable_text(kind, TEXT_LIMITS["event_type"])
            else "unknown",
            "created": created
            if isinstance(created, int) and not isinstance(created, bool) and created in BIGINT
            else 0,
            "api_version": None,
            "livemode": body.get("livemode") is True,
            "customer_id": None,
            "status": InboxStatus.FAILED,
            "error": f"malformed event: {problem}",
        }
    return values | {
        "event_type": event.type,
        "created": event.created,
        "api_version": event.api_version,
        "livemode": event.livemode,
        "customer_id": customer_of(event),
        "status": InboxStatus.PENDING,
        "error": None,
    }


def store_events(
    conn: Connection,
    events: Sequence[tuple[str, dict[str, Any]]],
    *,
    source: str = "webhook",
    account: str | None = None,
) -> list[Stored]:
    """Insert events, each given as its raw text and its parsed body, in one statement.

    Each event id is stored once: a second delivery of the same id finds the first row. For each
    event, in order: where it is stored and whether this call inserted it (the first copy of an
    id in `events` that was not stored before). A body must be a JSON object with a string `id`
    (see `storable_text`); an event that cannot be read further is still kept, marked failed
    with the reason, so nothing Stripe signed is ever dropped.
    """
    rows = [_row_values(raw, body, source=source, account=account) for raw, body in events]
    return _insert(conn, rows)


def _insert(conn: Connection, rows: Sequence[dict[str, Any]]) -> list[Stored]:
    """`store_events` for rows already built by `_row_values`."""
    if not rows:
        return []
    inserted = {
        str(found.event_id): int(found.id)
        for found in conn.execute(_INSERT[conn.dialect.name], list(rows))
    }
    missing = {str(r["event_id"]) for r in rows} - inserted.keys()
    existing = (
        {
            str(found.event_id): Stored(int(found.id), False, found.status)
            for found in conn.execute(
                select(inbox.c.event_id, inbox.c.id, inbox.c.status).where(
                    inbox.c.event_id.in_(sorted(missing))
                )
            )
        }
        if missing
        else {}
    )
    stored: list[Stored] = []
    for row in rows:
        event_id = str(row["event_id"])
        if event_id in existing:
            stored.append(existing[event_id])
        else:
            stored.append(Stored(inserted[event_id], True, row["status"]))
            existing[event_id] = Stored(inserted[event_id], False, row["status"])
    return stored


def store_durably(
    engine: Engine,
    raw: str,
    body: dict[str, Any],
    threads: threading.local,
    *,
    account: str | None = None,
) -> Stored:
    """One event stored as `store_events` does, committed before returning, in as few round
    trips as the database allows.

    On PostgreSQL the single INSERT ... ON CONFLICT DO NOTHING is atomic by itself, so it runs
    in autocommit: no BEGIN and COMMIT round trips; each calling thread keeps its connection
    in `threads` (one per process). SQLite's writers need their BEGIN IMMEDIATE.
    """
    row = _row_values(raw, body, account=account)
    if engine.dialect.name != "postgresql":
        with engine.begin() as conn:
            return _insert(conn, [row])[0]
    # The insert returns (id, event_id), the lookup of the row in its way (id, status).
    inserted, (inbox_id, other) = _PREPARED_INSERT.run(engine, row, threads)
    status = row["status"] if inserted else InboxStatus(str(other))
    return Stored(int(str(inbox_id)), inserted, status)


def dumps(body: dict[str, Any]) -> str:
    return json.dumps(body, separators=(",", ":"), sort_keys=True)


def row_from_mapping(mapping: Any) -> InboxRow:
    return InboxRow(**{name: mapping[name] for name in InboxRow.__slots__})


def get(conn: Connection, inbox_id: int) -> InboxRow | None:
    found = conn.execute(select(inbox).where(inbox.c.id == inbox_id)).mappings().first()
    return None if found is None else row_from_mapping(found)


def list_rows(
    conn: Connection, *, status: InboxStatus | None = None, limit: int = 100, after_id: int = 0
) -> list[InboxRow]:
    query = select(inbox).where(inbox.c.id > after_id).order_by(inbox.c.id).limit(limit)
    if status is not None:
        query = query.where(inbox.c.status == status)
    return [row_from_mapping(m) for m in conn.execute(query).mappings()]


def claim_pending(conn: Connection, inbox_ids: Sequence[int], extra: int = 0) -> list[InboxRow]:
    """The pending rows among `inbox_ids`, plus up to `extra` other fresh pending rows.

    PostgreSQL: rows are locked FOR UPDATE SKIP LOCKED, so a row another worker is processing
    is left to it and concurrent batches never wait on each other here. SQLite: the whole
    database is write-locked by BEGIN IMMEDIATE already. Extra rows are only ones never tried
    (attempts = 0), so a row waiting for its retry keeps its backoff.
    """
    postgres = conn.dialect.name == "postgresql"
    query = select(inbox).where(
        inbox.c.id.in_(list(inbox_ids)), inbox.c.status == InboxStatus.PENDING
    )
    if postgres:
        query = query.order_by(inbox.c.id).with_for_update(skip_locked=True)
    rows = [row_from_mapping(m) for m in conn.execute(query).mappings()]
    if extra > 0:
        more = (
            select(inbox)
            .where(
                inbox.c.status == InboxStatus.PENDING,
                inbox.c.attempts == 0,
                inbox.c.id.not_in(list(inbox_ids)),
            )
            .order_by(inbox.c.id)
            .limit(extra)
        )
        if postgres:
            more = more.with_for_update(skip_locked=True)
        rows += [row_from_mapping(m) for m in conn.execute(more).mappings()]
    return rows


def claim_customers_pending(
    conn: Connection, customer_ids: Collection[str], exclude: Sequence[int], limit: int
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
            inbox.c.status == InboxStatus.PENDING,
            inbox.c.attempts == 0,
            inbox.c.id.not_in(list(exclude)),
        )
        .order_by(inbox.c.customer_id, inbox.c.id)
        .limit(limit)
    )
    if conn.dialect.name == "postgresql":
        query = query.with_for_update(skip_locked=True)
    return [row_from_mapping(m) for m in conn.execute(query).mappings()]


def customer_events(
    conn: Connection,
    units: Collection[Unit],
    parsed: Mapping[str, EventRecord] | None = None,
) -> dict[Unit, list[EventRecord]]:
    """Every readable event stored for each customer in its source, whatever its processing
    status, in the order the rules replay them; a unit with none is absent.

    `parsed`: events already read, by event id (a batch's own rows), not parsed again.
    """
    if not units:
        return {}
    known = parsed or {}
    found: dict[Unit, list[EventRecord]] = defaultdict(list)
    wanted = set(units)
    rows = conn.execute(
        select(inbox.c.customer_id, inbox.c.account, inbox.c.livemode, inbox.c.event_id,
               inbox.c.payload)
        .where(
            inbox.c.customer_id.in_(sorted({u.customer_id for u in wanted})),
            inbox.c.status != InboxStatus.FAILED,
        )
        .order_by(inbox.c.customer_id, inbox.c.created, inbox.c.event_id)
    )  # fmt: skip
    for customer_id, account, livemode, event_id, payload in rows:
        unit = Unit(customer_id, account, bool(livemode))
        if unit not in wanted:
            continue
        event = known.get(event_id)
        found[unit].append(stored_event(payload, account) if event is None else event)
    return dict(found)


def mark(
    conn: Connection, inbox_ids: Collection[int], status: InboxStatus, error: str | None = None
) -> None:
    """Set the status (and the error, if any) of these rows, in one UPDATE."""
    if inbox_ids:
        conn.execute(
            update(inbox)
            .where(inbox.c.id.in_(list(inbox_ids)))
            .values(status=status, error=_error(error), processed_at=datetime.now(UTC))
        )


def mark_event_failed(conn: Connection, event_id: str, error: str) -> None:
    """Fail a stored event found unreadable while another event was being processed."""
    conn.execute(
        update(inbox)
        .where(inbox.c.event_id == event_id, inbox.c.status != InboxStatus.FAILED)
        .values(status=InboxStatus.FAILED, error=_error(error), processed_at=datetime.now(UTC))
    )


def count_attempt_if_pending(conn: Connection, inbox_id: int) -> int | None:
    """Count a failed attempt; None if the row is no longer pending (someone processed it)."""
    found = conn.execute(
        update(inbox)
        .where(inbox.c.id == inbox_id, inbox.c.status == InboxStatus.PENDING)
        .values(attempts=inbox.c.attempts + 1)
        .returning(inbox.c.attempts)
    ).scalar_one_or_none()
    return None if found is None else int(found)


def fail_if_pending(conn: Connection, inbox_id: int, reason: str) -> None:
    """Mark a row failed unless another worker has finished it meanwhile."""
    conn.execute(
        update(inbox)
        .where(inbox.c.id == inbox_id, inbox.c.status == InboxStatus.PENDING)
        .values(status=InboxStatus.FAILED, error=_error(reason), processed_at=datetime.now(UTC))
    )


def _error(text: str | None) -> str | None:
    """An error as stored: its first ERROR_CHARS characters."""
    return None if text is None else text[:ERROR_CHARS]


def reset_for_retry(conn: Connection, inbox_ids: Sequence[int]) -> list[int]:
    """Failed rows back to pending with a fresh attempt count; returns the ids changed."""
    changed = conn.execute(
        update(inbox)
        .where(inbox.c.id.in_(list(inbox_ids)), inbox.c.status == InboxStatus.FAILED)
        .values(status=InboxStatus.PENDING, attempts=0, error=None, processed_at=None)
        .returning(inbox.c.id)
    ).scalars()
    return sorted(int(i) for i in changed)


def failed_ids(conn: Connection) -> list[int]:
    query = select(inbox.c.id).where(inbox.c.status == InboxStatus.FAILED).order_by(inbox.c.id)
    return [int(i) for i in conn.execute(query).scalars()]


def pending_ids(
    conn: Connection, *, older_than: timedelta, after_id: int = 0, limit: int = 10_000
) -> list[int]:
    """Rows pending for at least `older_than`, one page after `after_id` in id order."""
    cutoff = datetime.now(UTC) - older_than
    query = (
        select(inbox.c.id)
        .where(
            inbox.c.status == InboxStatus.PENDING,
            inbox.c.received_at <= cutoff,
            inbox.c.id > after_id,
        )
        .order_by(inbox.c.id)
        .limit(limit)
    )
    return [int(i) for i in conn.execute(query).scalars()]


def status_counts(conn: Connection) -> dict[InboxStatus, int]:
    query = select(inbox.c.status, func.count()).group_by(inbox.c.status)
    return {status: int(n) for status, n in conn.execute(query).all()}
