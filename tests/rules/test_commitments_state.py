"""A committed-MRR fold saved and resumed is the fold done in one go: with discounts, tiers,
schedules, pending updates and notes in the state, and prices resolved from a history."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from ledger.rules.commitments import Commitments, committed
from ledger.rules.payloads import Price, read_price
from scripts import stripe_objects as so

DAY = 86_400
START = int(datetime(2026, 1, 5, tzinfo=UTC).timestamp())
BASIC = so.price("price_basic", 5000, "usd", "month")
PRO = so.price("price_pro", 10000, "usd", "month")


class Seen:
    """A history that knows Pro from day 15 on."""

    def at(self, price_id: str, created: int, event_id: str) -> Price | None:
        if price_id == "price_pro" and created >= START + 15 * DAY:
            return read_price(PRO)
        return None


def objects() -> list[tuple[str, str, dict[str, Any], int]]:
    coupon = so.coupon("co_10", "ten", 10, 12, START)
    discount = so.discount(
        "di_1", coupon, customer_id="cus_a", sub_id="sub_a", start=START, end=None
    )
    item = so.subscription_item("si_a", "sub_a", BASIC, 3, (START, START + 30 * DAY))
    plain = so.subscription(
        "sub_a", "cus_a", [item], status="active", currency="usd", created=START
    )
    discounted = {**plain, "discounts": [discount], "cancel_at_period_end": True}
    pending = {
        **discounted,
        "cancel_at_period_end": False,
        "pending_update": {"subscription_items": [{"id": "si_a", "price": "price_pro"}]},
    }
    phases = [
        {"items": [{"price": "price_basic"}], "start_date": START},
        {"items": [{"price": "price_pro", "quantity": 2}], "start_date": START + 90 * DAY},
    ]
    schedule = {
        "id": "sub_sched_a",
        "object": "subscription_schedule",
        "subscription": "sub_a",
        "status": "active",
        "end_behavior": "cancel",
        "current_phase": {"start_date": START},
        "phases": [{**p, "end_date": START + 200 * DAY} for p in phases],
    }
    return [
        ("evt_1", "customer.subscription.created", plain, START),
        ("evt_2", "subscription_schedule.created", schedule, START + 10 * DAY),  # Pro unseen
        ("evt_3", "customer.subscription.updated", discounted, START + 20 * DAY),
        ("evt_4", "subscription_schedule.updated", schedule, START + 21 * DAY),
        ("evt_5", "customer.subscription.updated", {"id": 5}, START + 22 * DAY),  # noted
        ("evt_6", "customer.subscription.updated", pending, START + 23 * DAY),
    ]


@pytest.mark.parametrize("cut", range(7))
def test_a_fold_saved_and_resumed_is_the_fold_in_one_go(cut: int) -> None:
    whole = Commitments(Seen())
    for event_id, kind, obj, created in objects():
        whole.add(event_id, kind, obj, created)
    first = Commitments(Seen())
    for event_id, kind, obj, created in objects()[:cut]:
        first.add(event_id, kind, obj, created)
    resumed = Commitments.resumed(first.saved(), Seen())
    for event_id, kind, obj, created in objects()[cut:]:
        resumed.add(event_id, kind, obj, created)
    assert resumed.saved() == whole.saved() and "co_10" in whole.saved()  # the coupon kept
    assert resumed.commitments() == whole.commitments()
    assert resumed.notes == whole.notes and len(whole.notes) == 2
    assert resumed.looked_up == {"price_pro"}  # the current phase is not read
    today = datetime(2026, 1, 20, tzinfo=UTC)
    found = committed(resumed.folded(), [], "usd", today, 12)
    assert found == committed(whole.folded(), [], "usd", today, 12)
    assert [s.kind for s in whole.commitments()[0].steps] == [
        "pending_update",
        "schedule_phase",
        "schedule_end",
    ]


def test_a_saved_fold_that_does_not_decode_is_refused() -> None:
    with pytest.raises((ValueError, TypeError)):
        Commitments.resumed('{"subs": 3}', Seen())
