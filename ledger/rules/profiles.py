"""A customer's name and email, read from a Stripe customer object, for display only, and
the attributes segments group by (the address's country, string metadata values, created).

They move no MRR. They come from outside: shown escaped, never logged.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

# The events whose object is the customer itself: the workers keep its name and email.
EVENT_TYPES = frozenset({"customer.created", "customer.updated", "customer.deleted"})


@dataclass(frozen=True, slots=True)
class Profile:
    customer_id: str
    name: str | None
    email: str | None
    country: str | None = None
    metadata: dict[str, str] = field(default_factory=dict)
    created: int | None = None


@dataclass(frozen=True, slots=True)
class ProfileVersion:
    """A profile as of `version` (Unix seconds): a customer event's `created`, or when the
    backfill listed the customers. `source` is the event id, or the list it was read from."""

    profile: Profile
    version: int
    source: str


def read_profile(obj: Mapping[str, Any]) -> Profile | None:
    """A customer object's id, name and email; None when it is not a customer object. Empty or
    non-text names and emails are read as absent."""
    customer_id = obj.get("id")
    if obj.get("object") != "customer" or not isinstance(customer_id, str) or not customer_id:
        return None
    address, metadata, created = obj.get("address"), obj.get("metadata"), obj.get("created")
    return Profile(
        customer_id,
        _text(obj.get("name")),
        _text(obj.get("email")),
        _text(address.get("country"), 64) if isinstance(address, Mapping) else None,
        {
            k[:40]: v[:500]
            for k, v in (metadata.items() if isinstance(metadata, Mapping) else ())
            if isinstance(k, str) and isinstance(v, str)
        },
        created if isinstance(created, int) and not isinstance(created, bool) else None,
    )


def _text(value: Any, limit: int = 500) -> str | None:
    return value[:limit] if isinstance(value, str) and value else None
