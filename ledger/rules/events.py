"""A stored Stripe event, read from its raw JSON into plain data."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from ledger.rules.sources import Unit, account_of


class MalformedEvent(ValueError):
    """The body is JSON but not a Stripe event we can read."""


@dataclass(frozen=True, slots=True)
class EventRecord:
    id: str
    type: str
    created: int
    api_version: str | None
    livemode: bool
    object: dict[str, Any]
    previous_attributes: dict[str, Any] | None
    # The Connect account the event names, "" for the endpoint's own (ledger/rules/sources.py).
    account: str = ""

    @property
    def sort_key(self) -> tuple[int, str]:
        """docs/mrr-rules.md §5.3: order by `created`, ties broken by event id."""
        return (self.created, self.id)


def parse_event(raw: bytes | str | dict[str, Any]) -> EventRecord:
    body: Any = json.loads(raw) if isinstance(raw, bytes | str) else raw
    if not isinstance(body, dict):
        raise MalformedEvent("event body is not a JSON object")
    if body.get("object") != "event":
        raise MalformedEvent("body is not a Stripe event (object != 'event')")
    event_id, event_type, created = body.get("id"), body.get("type"), body.get("created")
    if not isinstance(event_id, str) or not event_id:
        raise MalformedEvent("event has no string 'id'")
    if not isinstance(event_type, str) or not event_type:
        raise MalformedEvent("event has no string 'type'")
    if not isinstance(created, int) or isinstance(created, bool):
        raise MalformedEvent("event has no integer 'created'")
    data = body.get("data")
    if not isinstance(data, dict) or not isinstance(data.get("object"), dict):
        raise MalformedEvent("event has no 'data.object'")
    previous = data.get("previous_attributes")
    api_version = body.get("api_version")
    return EventRecord(
        id=event_id,
        type=event_type,
        created=created,
        api_version=api_version if isinstance(api_version, str) else None,
        livemode=bool(body.get("livemode", False)),
        object=data["object"],
        previous_attributes=previous if isinstance(previous, dict) else None,
        account=account_of(body),
    )


def customer_of(event: EventRecord) -> str | None:
    """The Stripe customer an event belongs to, if any (coupon events have none)."""
    obj = event.object
    if obj.get("object") == "customer":
        value: Any = obj.get("id")
    else:
        value = obj.get("customer")
    if isinstance(value, dict):
        value = value.get("id")
    return value if isinstance(value, str) else None


def unit_of(event: EventRecord, customer_id: str) -> Unit:
    """The replay unit of a customer the event touches: that customer in the event's source."""
    return Unit(customer_id, event.account, event.livemode)
