"""Writing customer names and emails (`customer_profiles`): the newest version of each wins.

Written by the workers in the transaction that processes a `customer.*` event, and by the
backfill from Stripe's customer list. Reading them is `ledger.reporting.profiles`.
"""

from __future__ import annotations

import json
from collections.abc import Iterable

from sqlalchemy import Connection

from ledger.rules.profiles import ProfileVersion
from ledger.storage.db import dialect_insert
from ledger.storage.schema import customer_profiles

_UPDATED = ("name", "email", "country", "metadata", "created", "version", "event_id")


def keep(conn: Connection, found: Iterable[ProfileVersion]) -> None:
    """Store each profile unless a newer version is stored; an older one changes nothing, so
    events may arrive in any order and be read twice."""
    newest: dict[str, ProfileVersion] = {}
    for item in found:
        held = newest.get(item.profile.customer_id)
        if held is None or held.version <= item.version:
            newest[item.profile.customer_id] = item
    if not newest:
        return
    rows = [
        {
            "customer_id": v.profile.customer_id,
            "name": v.profile.name,
            "email": v.profile.email,
            "country": v.profile.country,
            "metadata": _json(v.profile.metadata),
            "created": v.profile.created,
            "version": v.version,
            "event_id": v.source,
        }
        for _, v in sorted(newest.items())  # one lock order for concurrent writers
    ]
    statement = dialect_insert(conn, customer_profiles)
    conn.execute(
        statement.on_conflict_do_update(
            index_elements=["customer_id"],
            set_={k: statement.excluded[k] for k in _UPDATED},
            where=customer_profiles.c.version <= statement.excluded.version,
        ),
        rows,
    )


def _json(metadata: dict[str, str]) -> str | None:
    return json.dumps(metadata, sort_keys=True) if metadata else None
