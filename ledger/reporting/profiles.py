"""Customer names and emails for display, and the attributes segments group by (country from
the address, metadata, created), kept from the stored `customer.*` events.

The workers ignore these events (they move no MRR); pages call `catch_up` before showing names.
It reads inbox rows after its checkpoint (by inbox id) and keeps, per customer, the fields of
the newest event by Stripe's `created` (so reading a row twice changes nothing). The checkpoint
only passes rows older than `SETTLE`: a webhook insert that took a lower id but commits later
is read by a later call, not skipped. Names and emails
come from outside: they are stored and shown (escaped), never logged.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection, func, select

from ledger.storage.db import dialect_insert
from ledger.storage.schema import customer_profiles, inbox, projector_checkpoints

CHECKPOINT = "customer_profiles"  # projector_checkpoints.last_entry_id holds an inbox id here
EVENT_TYPES = ("customer.created", "customer.updated", "customer.deleted")
SETTLE = timedelta(seconds=30)
BATCH = 2_000


@dataclass(frozen=True, slots=True)
class Profile:
    customer_id: str
    name: str | None
    email: str | None
    country: str | None = None
    metadata: dict[str, str] = field(default_factory=dict)
    created: int | None = None


def _text(value: Any, limit: int = 500) -> str | None:
    return value[:limit] if isinstance(value, str) and value else None


def profile_of(payload: str) -> Profile | None:
    """A customer event's customer: name, email, and the attributes segments group by (the
    address's country, string metadata values, created); None if it has no customer."""
    try:
        obj = json.loads(payload)["data"]["object"]
    except (ValueError, KeyError, TypeError):
        return None
    if not isinstance(obj, dict) or not isinstance(obj.get("id"), str):
        return None
    address = obj.get("address")
    metadata = obj.get("metadata")
    created = obj.get("created")
    return Profile(
        obj["id"],
        _text(obj.get("name")),
        _text(obj.get("email")),
        _text(address.get("country"), 64) if isinstance(address, dict) else None,
        {
            k[:40]: v[:500]
            for k, v in (metadata.items() if isinstance(metadata, dict) else ())
            if isinstance(k, str) and isinstance(v, str)
        },
        created if isinstance(created, int) and not isinstance(created, bool) else None,
    )


def catch_up(conn: Connection, now: datetime) -> int:
    """Store profiles from customer events received since the last call; returns how many."""
    c = projector_checkpoints.c
    after = conn.execute(select(c.last_entry_id).where(c.name == CHECKPOINT)).scalar()
    horizon = conn.execute(
        select(func.max(inbox.c.id)).where(inbox.c.received_at <= now - SETTLE)
    ).scalar()
    start = int(after or 0)
    rows = conn.execute(
        select(inbox.c.event_id, inbox.c.created, inbox.c.payload)
        .where(inbox.c.id > start, inbox.c.event_type.in_(EVENT_TYPES))
        .order_by(inbox.c.id)
    ).all()
    stored = 0
    for event_id, created, payload in rows:
        found = profile_of(payload)
        if found is not None:
            _keep(conn, event_id, int(created), found)
            stored += 1
    if horizon is None or int(horizon) <= start:
        return stored
    checkpoint = dialect_insert(conn, projector_checkpoints).values(
        name=CHECKPOINT, last_entry_id=int(horizon), updated_at=now
    )
    conn.execute(
        checkpoint.on_conflict_do_update(
            index_elements=["name"],
            set_={"last_entry_id": checkpoint.excluded.last_entry_id, "updated_at": now},
        )
    )
    return stored


_FIELDS = ("name", "email", "country", "metadata", "created", "version", "event_id")


def _keep(conn: Connection, event_id: str, created: int, found: Profile) -> None:
    values = {
        "customer_id": found.customer_id,
        "name": found.name,
        "email": found.email,
        "country": found.country,
        "metadata": json.dumps(found.metadata, sort_keys=True),
        "created": found.created,
        "version": created,
        "event_id": event_id,
    }
    statement = dialect_insert(conn, customer_profiles).values(**values)
    conn.execute(
        statement.on_conflict_do_update(
            index_elements=["customer_id"],
            set_={k: statement.excluded[k] for k in _FIELDS},
            where=customer_profiles.c.version <= statement.excluded.version,
        )
    )


def profiles(conn: Connection, customer_ids: list[str] | None = None) -> dict[str, Profile]:
    p = customer_profiles.c
    query = select(p.customer_id, p.name, p.email, p.country, p.metadata, p.created)
    if customer_ids is not None:
        query = query.where(p.customer_id.in_(customer_ids))
    return {
        str(cid): Profile(str(cid), name, email, country, _metadata(meta), created)
        for cid, name, email, country, meta, created in conn.execute(query)
    }


def _metadata(text: str | None) -> dict[str, str]:
    try:
        found = json.loads(text) if text else {}
    except ValueError:
        return {}
    return found if isinstance(found, dict) else {}


def matching(conn: Connection, text: str) -> list[str]:
    """Customers whose name or email contains `text` (case-insensitive)."""
    needle = text.lower()
    p = customer_profiles.c
    query = select(p.customer_id).where(
        func.lower(p.name).contains(needle, autoescape=True)
        | func.lower(p.email).contains(needle, autoescape=True)
    )
    return [str(c) for c in conn.execute(query).scalars()]
