"""A customer's name and email, read from a Stripe customer object, for display only.

They move no MRR. They come from outside: shown escaped, never logged.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

# The events whose object is the customer itself: the workers keep its name and email.
EVENT_TYPES = frozenset({"customer.created", "customer.updated", "customer.deleted"})


@dataclass(frozen=True, slots=True)
class Profile:
    customer_id: str
    name: str | None
    email: str | None


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
    name, email = obj.get("name"), obj.get("email")
    return Profile(
        customer_id,
        name if isinstance(name, str) and name else None,
        email if isinstance(email, str) and email else None,
    )
