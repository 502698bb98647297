"""Generated Stripe-shaped customer histories, for the storm test and the benchmarks.

A history is a seeded walk per customer over subscription states; each step is rendered as the
`customer.subscription.*` event Stripe would send. States are frozen dataclasses and rendering is
one function per shape, so a new status (past_due, trialing, paused) is a new `Step` kind plus a
branch in `_next_step`, without touching the rendering of the others. The subscription carries
only the fields the rules read (scripts/stripe_objects.py renders Stripe's full objects for the
demo), so the benchmarks' payloads stay the size their recorded figures were measured with.
"""

from __future__ import annotations

import json
import random
from collections.abc import Iterator
from dataclasses import dataclass, replace
from typing import Any

from scripts import stripe_objects as so

DAY = 86_400
START = 1_735_689_600  # 2025-01-01T00:00:00Z

# Flat prices only, for now (the rules placeholder supports flat monthly/yearly prices).
MONTHLY_AMOUNTS = (900, 2900, 4900, 9900, 19900)
YEARLY_AMOUNTS = (9000, 29000, 49000, 99000)


@dataclass(frozen=True, slots=True)
class Subscription:
    id: str
    customer: str
    amount: int
    interval: str
    quantity: int = 1
    status: str = "active"
    currency: str = "usd"
    ended_at: int | None = None


@dataclass(frozen=True, slots=True)
class Step:
    """One change Stripe reports: `kind` is the event type suffix (created/updated/deleted)."""

    kind: str
    at: int
    subscription: Subscription


def subscription_object(sub: Subscription, at: int) -> dict[str, Any]:
    period = 365 * DAY if sub.interval == "year" else 30 * DAY
    return {
        "id": sub.id,
        "object": "subscription",
        "customer": sub.customer,
        "currency": sub.currency,
        "status": sub.status,
        "created": at,
        "cancel_at_period_end": False,
        "pause_collection": None,
        "ended_at": sub.ended_at,
        "canceled_at": sub.ended_at,
        "discount": None,
        "discounts": [],
        "items": {
            "object": "list",
            "data": [
                {
                    "id": "si_" + sub.id.removeprefix("sub_"),
                    "object": "subscription_item",
                    "quantity": sub.quantity,
                    "discounts": [],
                    "current_period_start": at,
                    "current_period_end": at + period,
                    "price": {
                        "id": f"price_{sub.amount}_{sub.interval}",
                        "object": "price",
                        "currency": sub.currency,
                        "unit_amount": sub.amount,
                        "unit_amount_decimal": str(sub.amount),
                        "billing_scheme": "per_unit",
                        "type": "recurring",
                        "recurring": {
                            "interval": sub.interval,
                            "interval_count": 1,
                            "usage_type": "licensed",
                        },
                    },
                }
            ],
        },
    }


def event_body(event_id: str, step: Step) -> dict[str, Any]:
    obj = subscription_object(step.subscription, step.at)
    return so.event(event_id, f"customer.subscription.{step.kind}", step.at, obj)


def _new_subscription(rng: random.Random, customer: str, n: int) -> Subscription:
    yearly = rng.random() < 0.2
    amounts = YEARLY_AMOUNTS if yearly else MONTHLY_AMOUNTS
    return Subscription(
        id=f"sub_{customer.removeprefix('cus_')}_{n}",
        customer=customer,
        amount=rng.choice(amounts),
        interval="year" if yearly else "month",
        quantity=rng.choice((1, 1, 1, 2, 3)),
    )


def _next_step(
    rng: random.Random, customer: str, live: list[Subscription], made: int, at: int
) -> Step:
    """A plausible next change: sign-up, upgrade, downgrade, cancellation or a comeback."""
    if not live:
        return Step("created", at, _new_subscription(rng, customer, made))
    roll = rng.random()
    if roll < 0.1 and len(live) < 3:
        return Step("created", at, _new_subscription(rng, customer, made))
    sub = rng.choice(live)
    if roll < 0.45:
        return Step("updated", at, replace(sub, quantity=sub.quantity + rng.choice((1, 2))))
    if roll < 0.6:
        amounts = YEARLY_AMOUNTS if sub.interval == "year" else MONTHLY_AMOUNTS
        return Step("updated", at, replace(sub, amount=rng.choice(amounts)))
    if roll < 0.75 and sub.quantity > 1:
        return Step("updated", at, replace(sub, quantity=sub.quantity - 1))
    return Step("deleted", at, replace(sub, status="canceled", ended_at=at))


def customer_steps(rng: random.Random, customer: str, count: int, start: int) -> list[Step]:
    steps: list[Step] = []
    live: dict[str, Subscription] = {}
    made = 0
    at = start
    for _ in range(count):
        at += rng.randint(1, 40) * DAY + rng.randint(0, DAY - 1)
        step = _next_step(rng, customer, list(live.values()), made, at)
        if step.kind == "created":
            made += 1
        if step.kind == "deleted":
            live.pop(step.subscription.id, None)
        else:
            live[step.subscription.id] = step.subscription
        steps.append(step)
    return steps


def histories(
    events: int, customers: int, *, seed: int = 7, prefix: str = "evt"
) -> list[dict[str, Any]]:
    """`events` Stripe events over `customers` customers, in the order they happened."""
    rng = random.Random(seed)
    per_customer = [
        events // customers + (1 if i < events % customers else 0) for i in range(customers)
    ]
    timed: list[tuple[int, str, dict[str, Any]]] = []
    for index, count in enumerate(per_customer):
        customer = f"cus_{seed}x{index:06d}"
        start = START + rng.randint(0, 90 * DAY)
        for k, step in enumerate(customer_steps(rng, customer, count, start)):
            event_id = f"{prefix}_{seed}x{index:06d}_{k:04d}"
            timed.append((step.at, event_id, event_body(event_id, step)))
    timed.sort(key=lambda item: (item[0], item[1]))
    return [body for _, _, body in timed]


def storm_order(
    bodies: list[dict[str, Any]], *, duplicates: float, seed: int = 11
) -> list[dict[str, Any]]:
    """The same events with a share of them delivered twice, all in a shuffled order."""
    rng = random.Random(seed)
    extra = rng.sample(bodies, int(len(bodies) * duplicates))
    delivered = [*bodies, *extra]
    rng.shuffle(delivered)
    return delivered


def serialized(bodies: list[dict[str, Any]]) -> Iterator[str]:
    for body in bodies:
        yield json.dumps(body, separators=(",", ":"))
