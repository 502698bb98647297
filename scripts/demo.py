"""A small demo history (a few customers over a few months) for an empty ledger."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

DAY = 86_400
API_VERSION = "2025-03-31.basil"


def _subscription(
    sub_id: str, customer: str, amount: int, status: str, interval: str = "month"
) -> dict[str, Any]:
    return {
        "id": sub_id,
        "object": "subscription",
        "customer": customer,
        "currency": "usd",
        "status": status,
        "cancel_at_period_end": False,
        "pause_collection": None,
        "ended_at": None,
        "discounts": [],
        "items": {
            "object": "list",
            "data": [
                {
                    "id": f"si_{sub_id[4:]}",
                    "object": "subscription_item",
                    "quantity": 1,
                    "discounts": [],
                    "price": {
                        "id": f"price_{amount}_{interval}",
                        "object": "price",
                        "currency": "usd",
                        "unit_amount": amount,
                        "unit_amount_decimal": str(amount),
                        "billing_scheme": "per_unit",
                        "recurring": {
                            "interval": interval,
                            "interval_count": 1,
                            "usage_type": "licensed",
                        },
                    },
                }
            ],
        },
    }


def _event(n: int, kind: str, created: int, obj: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": f"evt_demo_{n:04d}",
        "object": "event",
        "type": kind,
        "created": created,
        "api_version": API_VERSION,
        "livemode": False,
        "data": {"object": obj},
    }


def demo_events(start: datetime | None = None) -> list[str]:
    """Stripe-shaped events: sign-ups, an upgrade, a failed and recovered payment, a churn."""
    t0 = int((start or datetime(2026, 6, 1, tzinfo=UTC)).timestamp())
    plans = [("acme", 5000), ("globex", 10000), ("initech", 20000), ("umbrella", 5000)]
    events: list[dict[str, Any]] = []
    for i, (name, amount) in enumerate(plans):
        sub = _subscription(f"sub_demo_{name}", f"cus_demo_{name}", amount, "active")
        events.append(_event(len(events), "customer.subscription.created", t0 + i * DAY, sub))
    upgraded = _subscription("sub_demo_acme", "cus_demo_acme", 10000, "active")
    events.append(_event(len(events), "customer.subscription.updated", t0 + 35 * DAY, upgraded))
    late = _subscription("sub_demo_globex", "cus_demo_globex", 10000, "past_due")
    events.append(_event(len(events), "customer.subscription.updated", t0 + 62 * DAY, late))
    paid = _subscription("sub_demo_globex", "cus_demo_globex", 10000, "active")
    events.append(_event(len(events), "customer.subscription.updated", t0 + 66 * DAY, paid))
    gone = _subscription("sub_demo_umbrella", "cus_demo_umbrella", 5000, "canceled")
    gone["ended_at"] = t0 + 70 * DAY
    events.append(_event(len(events), "customer.subscription.deleted", t0 + 70 * DAY, gone))
    return [json.dumps(e, sort_keys=True) for e in events]
