"""Property tests: generated Stripe histories replay order-free, add up (docs/mrr-rules.md §8)."""

from __future__ import annotations

from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ledger.rules.entries import active_effect, delinquent_effect
from ledger.rules.payloads import read_discount, read_subscription
from ledger.rules.pricing import subscription_mrr
from ledger.rules.timeline import Replay
from tests.rules import builders as b
from tests.rules.checkpointed import replay_checked
from tests.rules.histories import CUSTOMER, HALF, History, OwnTerms, histories


def replay(events: list[dict[str, Any]]) -> Replay:
    """The whole replay, checked against resuming from a checkpoint after every event."""
    return replay_checked(CUSTOMER, [b.record(e) for e in events], b.Refs())


def keyed(result: Replay) -> list[tuple[Any, ...]]:
    return [(*e.key(), dict(e.explanation)) for e in result.entries]


def expected(h: History) -> tuple[int, int]:
    """Final active and delinquent MRR the model says the customer has."""
    customer = [read_discount(b.discount_object("di_cust", CUSTOMER, HALF, shape="old"))]
    discounts = [d for d in customer if d is not None and h.discount_on]
    active = delinquent = 0
    for sub in h.subs:
        if sub.status not in ("active", "past_due"):
            continue
        mrr = subscription_mrr(read_subscription(sub.snapshot), OwnTerms(), discounts).amount
        if sub.status == "active":
            active += mrr
        else:
            delinquent += mrr
    return active, delinquent


PROPERTY = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@PROPERTY
@given(histories(), st.randoms(use_true_random=False), st.data())
def test_any_order_and_duplicates_give_the_same_entries(h: History, rnd: Any, data: Any) -> None:
    baseline = keyed(replay(h.events))
    shuffled = list(h.events)
    rnd.shuffle(shuffled)
    duplicates = data.draw(st.lists(st.sampled_from(h.events), max_size=4)) if h.events else []
    assert keyed(replay(shuffled + duplicates)) == baseline


@PROPERTY
@given(histories())
def test_entries_add_up_to_the_final_figures(h: History) -> None:
    result = replay(h.events)
    active = sum(active_effect(e.category, e.amount) for e in result.entries)
    delinquent = sum(delinquent_effect(e.category, e.amount) for e in result.entries)
    assert active == sum(a for a, _ in result.closing.values())
    assert delinquent == sum(d for _, d in result.closing.values())
    assert (active, delinquent) == expected(h)
    assert all(e.amount != 0 for e in result.entries)
