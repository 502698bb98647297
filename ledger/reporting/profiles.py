"""Customer names and emails for display, and the attributes segments group by (country from
the address, metadata, created), kept from the stored `customer.*` events.

The workers store them while processing `customer.*` events, and the backfill from Stripe's
customer list (`ledger.storage.profiles`), so a name is there once its event is processed.
Names and emails come from outside: they are shown (escaped), never logged.
"""

from __future__ import annotations

import json

from sqlalchemy import Connection, func, select

from ledger.rules.profiles import Profile
from ledger.storage.schema import customer_profiles

__all__ = ["Profile", "matching", "profiles"]


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
