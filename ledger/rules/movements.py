"""A customer's before/after figures -> categorized movements (docs/mrr-rules.md §5).

Each subscription's change is split into its delinquent-side part (delinquent, recovered,
delinquent_churn, delinquent_change) and a plain active-side rest, which is classified at
customer level: whether the customer's active MRR was above zero, never existed, or churned.

Two cases the rules leave open, decided here: a renewal that fails at a different MRR moves the
old active MRR (`delinquent`) and books the difference as `delinquent_change`; a delinquent
subscription leaving delinquency without payment or ending (paused) is `delinquent_change`.
"""

from __future__ import annotations

import enum
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

from ledger.rules.entries import Category

__all__ = ["Change", "Lifecycle", "Movement", "classify", "next_lifecycle"]


class Lifecycle(enum.StrEnum):
    NEVER = "never"  # the customer never had MRR
    LIVE = "live"  # has had MRR and has not churned (paused and delinquent customers are live)
    CHURNED = "churned"


@dataclass(frozen=True, slots=True)
class Change:
    """One subscription's figures before and after an event."""

    subscription_id: str
    active_before: int
    delinquent_before: int
    active_after: int
    delinquent_after: int
    ended: bool  # the subscription ended with this event


@dataclass(frozen=True, slots=True)
class Movement:
    subscription_id: str
    category: Category
    amount: int
    reason: str


@dataclass(frozen=True, slots=True)
class _Customer:
    active_before: int
    active_after: int
    recovering: bool
    lifecycle: Lifecycle


def _rise(customer: _Customer) -> tuple[Category, str]:
    if customer.active_before > 0:
        return Category.EXPANSION, "active MRR rises from above zero"
    if customer.recovering:
        return Category.EXPANSION, "customer is recovering: never new or reactivation"
    if customer.lifecycle is Lifecycle.NEVER:
        return Category.NEW, "first MRR of a customer who never had any"
    if customer.lifecycle is Lifecycle.CHURNED:
        return Category.REACTIVATION, "MRR returns after the customer churned"
    return Category.EXPANSION, "MRR returns to a customer who had not churned (pause, delinquent)"


def _fall(customer: _Customer, ended: bool) -> tuple[Category, str]:
    if customer.active_after > 0:
        return Category.CONTRACTION, "active MRR falls and stays above zero"
    if ended:
        return Category.CHURN, "active MRR falls to zero because subscriptions ended"
    return Category.CONTRACTION, "active MRR falls to zero without an ending (pause, discount)"


def _plain(change: Change, delta: int, customer: _Customer) -> Iterator[Movement]:
    if delta == 0:
        return
    category, reason = _rise(customer) if delta > 0 else _fall(customer, change.ended)
    yield Movement(change.subscription_id, category, delta, reason)


def _from_delinquent(change: Change, customer: _Customer) -> Iterator[Movement]:
    sub, held = change.subscription_id, change.delinquent_before
    if change.delinquent_after > 0:
        delta = change.delinquent_after - held
        if delta:
            yield Movement(sub, Category.DELINQUENT_CHANGE, delta, "MRR changed while delinquent")
    elif change.ended:
        yield Movement(sub, Category.DELINQUENT_CHURN, -held, "delinquent subscription ended")
    elif change.active_after > 0:
        yield Movement(sub, Category.RECOVERED, held, "payment made: the delinquent balance held")
        yield from _plain(change, change.active_after - held, customer)
    else:
        yield Movement(
            sub, Category.DELINQUENT_CHANGE, -held, "left delinquency without payment or ending"
        )


def _to_delinquent(change: Change) -> Iterator[Movement]:
    sub, moved = change.subscription_id, change.active_before
    if moved > 0:
        yield Movement(sub, Category.DELINQUENT, -moved, "renewal payment failed")
    rest = change.delinquent_after - moved
    if rest:
        yield Movement(sub, Category.DELINQUENT_CHANGE, rest, "delinquent MRR differs from active")


def _movements(change: Change, customer: _Customer) -> Iterator[Movement]:
    if change.delinquent_before > 0:
        yield from _from_delinquent(change, customer)
    elif change.delinquent_after > 0:
        yield from _to_delinquent(change)
    else:
        yield from _plain(change, change.active_after - change.active_before, customer)


def classify(
    changes: Sequence[Change], lifecycle: Lifecycle, customer_active_before: int
) -> list[Movement]:
    """Movements for one event, given every subscription's change and the customer's past.

    `customer_active_before` is the customer's active MRR before the event, over all of its
    subscriptions (the unchanged ones included).
    """
    delta = sum(c.active_after - c.active_before for c in changes)
    customer = _Customer(
        active_before=customer_active_before,
        active_after=customer_active_before + delta,
        recovering=any(c.delinquent_before > 0 and c.active_after > 0 for c in changes),
        lifecycle=lifecycle,
    )
    ordered = sorted(changes, key=lambda c: c.subscription_id)
    return [m for change in ordered for m in _movements(change, customer) if m.amount != 0]


def next_lifecycle(lifecycle: Lifecycle, active: int, delinquent: int, holding: bool) -> Lifecycle:
    """The customer's lifecycle after an event.

    `holding`: some subscription is still active, paused or delinquent (not ended, not a trial),
    so a customer at zero is not churned yet.
    """
    if active > 0 or delinquent > 0:
        return Lifecycle.LIVE
    if lifecycle is Lifecycle.LIVE and not holding:
        return Lifecycle.CHURNED
    return lifecycle
