"""Why an entry exists: the entry, its reversal (if any), its Stripe event, the arithmetic."""

from __future__ import annotations

import json
from dataclasses import asdict
from typing import Any

from sqlalchemy import Connection, select

from ledger.rules.money import to_major
from ledger.storage import store
from ledger.storage.schema import inbox


def _event_summary(conn: Connection, event_id: str) -> dict[str, Any] | None:
    row = (
        conn.execute(
            select(
                inbox.c.id,
                inbox.c.event_id,
                inbox.c.event_type,
                inbox.c.created,
                inbox.c.source,
                inbox.c.api_version,
                inbox.c.status,
                inbox.c.payload,
            ).where(inbox.c.event_id == event_id)
        )
        .mappings()
        .first()
    )
    if row is None:
        return None
    found = dict(row)
    found["rebuilt_from"] = _rebuilt_from(found.pop("payload"))
    return found


def _rebuilt_from(payload: str) -> dict[str, Any] | None:
    """For an event the backfill rebuilt from Stripe's objects: the object and field that
    date it, and what was guessed (docs/backfill.md)."""
    try:
        origin = json.loads(payload).get("backfill")
    except (ValueError, AttributeError):
        return None
    return origin if isinstance(origin, dict) else None


def stored_event(conn: Connection, event_id: str) -> dict[str, Any] | None:
    """The stored event as received: its summary, whether live mode, and the raw payload."""
    row = (
        conn.execute(
            select(
                inbox.c.id,
                inbox.c.event_id,
                inbox.c.event_type,
                inbox.c.created,
                inbox.c.source,
                inbox.c.status,
                inbox.c.livemode,
                inbox.c.payload,
            ).where(inbox.c.event_id == event_id)
        )
        .mappings()
        .first()
    )
    return None if row is None else dict(row)


def _entry_dict(entry: store.StoredEntry) -> dict[str, Any]:
    found = asdict(entry)
    found["category"] = entry.category.value
    found["amount_major"] = str(to_major(entry.amount, entry.currency))
    found["effective_at"] = entry.effective_at.isoformat()
    found["recorded_at"] = entry.recorded_at.isoformat()
    return found


def explain(conn: Connection, entry_id: int) -> dict[str, Any] | None:
    entry = store.get_entry(conn, entry_id)
    if entry is None:
        return None
    reversal = store.reversed_by(conn, entry_id)
    original = None if entry.reversal_of is None else store.get_entry(conn, entry.reversal_of)
    return {
        "entry": _entry_dict(entry),
        "in_effect": entry.reversal_of is None and reversal is None,
        "reversed_by": None if reversal is None else _entry_dict(reversal),
        "reverses": None if original is None else _entry_dict(original),
        "source_event": _event_summary(conn, entry.source_event_id),
        "cause_event": _event_summary(conn, entry.cause_event_id),
    }


def render(found: dict[str, Any]) -> str:
    """The explanation as lines an accountant can read."""
    entry = found["entry"]
    lines = [
        f"entry {entry['id']}: {entry['category']} {entry['amount_major']} "
        f"{entry['currency'].upper()} ({entry['amount']} minor units)",
        f"  customer {entry['customer_id']}, subscription {entry['subscription_id']}",
        f"  effective {entry['effective_at']}, recorded {entry['recorded_at']}",
    ]
    source = found["source_event"]
    if source:
        lines.append(
            f"  from Stripe event {source['event_id']} ({source['event_type']}, "
            f"created {source['created']}, via {source['source']})"
        )
    origin = source.get("rebuilt_from") if source else None
    if origin:
        lines.append(f"  rebuilt by the backfill from {origin.get('object')} {origin.get('field')}")
        if origin.get("guess"):
            lines.append(f"  guessed ({origin['guess']}): {origin.get('explanation', '')}")
    if found["cause_event"] and entry["cause_event_id"] != entry["source_event_id"]:
        lines.append(f"  appended when event {entry['cause_event_id']} was processed")
    if found["reverses"]:
        lines.append(f"  reverses entry {found['reverses']['id']}")
    if found["reversed_by"]:
        lines.append(f"  reversed by entry {found['reversed_by']['id']}: not in effect")
    lines.append("  explanation:")
    lines.extend(_render_value(entry["explanation"], indent=4))
    return "\n".join(lines)


def _render_value(value: Any, indent: int) -> list[str]:
    pad = " " * indent
    if isinstance(value, dict):
        out: list[str] = []
        for key, inner in value.items():
            if isinstance(inner, dict | list) and inner:
                out.append(f"{pad}{key}:")
                out.extend(_render_value(inner, indent + 2))
            else:
                out.append(f"{pad}{key}: {inner}")
        return out
    if isinstance(value, list):
        out = []
        for inner in value:
            if isinstance(inner, dict | list):
                out.append(f"{pad}-")
                out.extend(_render_value(inner, indent + 2))
            else:
                out.append(f"{pad}- {inner}")
        return out
    return [f"{pad}{value}"]
