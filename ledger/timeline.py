"""Replay one customer's Stripe events into the ledger entries the MRR rules ask for.

This is the pure heart of the product: events in, desired entries out. The store diffs the
result against the ledger in effect, so any arrival order yields the same ledger in effect.

Placeholder: flat monthly/yearly prices only (new and churn). Completed by the rules issue.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import ROUND_HALF_EVEN, Decimal
from typing import Any, Protocol

from ledger.entries import Category, DesiredEntry
from ledger.events import EventRecord

SUBSCRIPTION_EVENTS = frozenset(
    {
        "customer.subscription.created",
        "customer.subscription.updated",
        "customer.subscription.deleted",
    }
)
RELEVANT_TYPES = SUBSCRIPTION_EVENTS


class References(Protocol):
    """Reference objects (coupons, discounts, prices with tiers) the rules may need."""

    def get(self, kind: str, object_id: str) -> dict[str, Any] | None: ...


class MissingReference(Exception):
    """The rules need an object that neither the events nor the API can supply."""

    def __init__(self, kind: str, object_id: str, reason: str) -> None:
        super().__init__(f"{kind} {object_id}: {reason}")
        self.kind = kind
        self.object_id = object_id
        self.reason = reason


@dataclass(frozen=True, slots=True)
class Replay:
    entries: list[DesiredEntry]
    depends_on: frozenset[tuple[str, str]] = field(default_factory=frozenset)


def is_relevant(event_type: str) -> bool:
    return event_type in RELEVANT_TYPES


def references_in(event: EventRecord) -> list[tuple[str, str, dict[str, Any]]]:
    """Reference objects carried by an event, as (kind, id, object)."""
    return []


def _flat_mrr(sub: dict[str, Any]) -> int:
    if sub.get("status") != "active":
        return 0
    total = Decimal(0)
    for item in sub.get("items", {}).get("data", []):
        price = item.get("price") or item.get("plan") or {}
        unit = Decimal(str(price.get("unit_amount_decimal") or price.get("unit_amount") or 0))
        recurring = price.get("recurring") or price
        interval = recurring.get("interval", "month")
        count = Decimal(recurring.get("interval_count") or 1)
        amount = unit * Decimal(item.get("quantity") or 1)
        total += amount / count if interval == "month" else amount / (12 * count)
    return int(total.quantize(Decimal(1), rounding=ROUND_HALF_EVEN))


def replay_customer(customer_id: str, events: Sequence[EventRecord], refs: References) -> Replay:
    entries: list[DesiredEntry] = []
    mrr: dict[str, int] = {}
    had_mrr = False
    for event in sorted(events, key=lambda e: e.sort_key):
        if event.type not in SUBSCRIPTION_EVENTS:
            continue
        sub = event.object
        sub_id = str(sub["id"])
        before = mrr.get(sub_id, 0)
        after = 0 if event.type.endswith(".deleted") else _flat_mrr(sub)
        mrr[sub_id] = after
        if after == before:
            continue
        at = datetime.fromtimestamp(
            sub.get("ended_at") or event.created if after == 0 else event.created, UTC
        )
        total_before = sum(mrr.values()) - after + before
        if after > before:
            category = Category.EXPANSION if total_before > 0 else Category.NEW
            if total_before == 0 and had_mrr:
                category = Category.REACTIVATION
        else:
            category = Category.CHURN if sum(mrr.values()) == 0 else Category.CONTRACTION
        had_mrr = had_mrr or after > 0
        entries.append(
            DesiredEntry(
                customer_id=customer_id,
                subscription_id=sub_id,
                category=category,
                currency=str(sub.get("currency", "usd")).lower(),
                amount=after - before,
                effective_at=at,
                source_event_id=event.id,
                explanation={"mrr_before": before, "mrr_after": after},
            )
        )
    return Replay(entries=entries)
