"""Hypothesis strategies for Stripe histories and their arrival orders."""

from __future__ import annotations

from typing import Any

from hypothesis import strategies as st

from tests.support.pipeline import subscription_event

DAY = 86_400
T0 = 1_767_225_600  # 2026-01-01

Event = dict[str, Any]


@st.composite
def subscription_history(draw: st.DrawFn, customer: str, sub: str, start: int) -> list[Event]:
    """One subscription: created, some price changes and status flips, maybe deleted."""
    amounts = st.sampled_from([1000, 2500, 5000, 9900, 12000])
    t = start
    events = [
        subscription_event(
            f"evt_{sub}_0",
            "customer.subscription.created",
            t,
            customer=customer,
            sub_id=sub,
            amount=draw(amounts),
            interval=draw(st.sampled_from(["month", "year"])),
        )
    ]
    for n in range(1, draw(st.integers(0, 4)) + 1):
        t += draw(st.integers(0, 40)) * DAY + draw(st.integers(0, 3))
        events.append(
            subscription_event(
                f"evt_{sub}_{n}",
                "customer.subscription.updated",
                t,
                customer=customer,
                sub_id=sub,
                amount=draw(amounts),
            )
        )
    if draw(st.booleans()):
        t += draw(st.integers(1, 60)) * DAY
        events.append(
            subscription_event(
                f"evt_{sub}_end",
                "customer.subscription.deleted",
                t,
                customer=customer,
                sub_id=sub,
                status="canceled",
            )
        )
    return events


@st.composite
def histories(draw: st.DrawFn, max_customers: int = 3) -> list[Event]:
    events: list[Event] = []
    for c in range(draw(st.integers(1, max_customers))):
        for s in range(draw(st.integers(1, 2))):
            start = T0 + draw(st.integers(0, 90)) * DAY
            events += draw(subscription_history(f"cus_{c}", f"sub_{c}_{s}", start))
    return events


@st.composite
def arrival(draw: st.DrawFn, events: list[Event]) -> list[Event]:
    """The same events in any order, some delivered more than once."""
    if not events:
        return []
    shuffled = draw(st.permutations(events))
    extra = draw(st.lists(st.sampled_from(events), max_size=max(1, len(events) // 5)))
    mixed = list(shuffled) + extra
    return draw(st.permutations(mixed))
