"""What the replay of one customer carries from one event to the next.

Everything `timeline` needs to go on after an event, and nothing else: each live subscription's
payment state and figures, the ids of the ended ones (an ended subscription never comes back, so
nothing about it can change any more), the customer's own discounts and lifecycle, the latest
metered invoice lines, the reference terms read from the events so far, every question the
replay asked about reference terms with the answer it got, the running balances the
invariants check, and the customer's segments (lifecycles and monthly movement sums).
`state_codec` writes it down as a replay checkpoint.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from ledger.rules.movements import Lifecycle
from ledger.rules.payloads import (
    Coupon,
    Discount,
    Price,
    Subscription,
    Tier,
    read_coupon,
    read_discount,
    read_price,
)
from ledger.rules.pricing import Figures, Mrr, Standing, figures

__all__ = ["Answers", "Learned", "ReplayState", "SubState"]


@dataclass(slots=True)
class SubState:
    """A subscription's payment state during the replay."""

    id: str
    snapshot: Subscription | None = None
    snapshot_at: int = 0
    paid_once: bool = False
    ended: bool = False
    failed: dict[str, int] = field(default_factory=dict)  # invoice id -> failure time
    paid: set[str] = field(default_factory=set)
    voided: set[str] = field(default_factory=set)
    last_settled_at: int | None = None
    figures: Figures = field(default_factory=lambda: figures(Standing.UNPAID_FIRST, Mrr(0, {})))


@dataclass(slots=True)
class Learned:
    """Reference terms carried by events (coupons, discounts, tiers); a later event's replace
    an earlier one's."""

    coupons: dict[str, Coupon] = field(default_factory=dict)
    discounts: dict[str, Discount] = field(default_factory=dict)
    prices: dict[str, tuple[Tier, ...]] = field(default_factory=dict)

    def learn(self, kind: str, obj: Mapping[str, Any]) -> None:
        if kind == "coupon":
            coupon = read_coupon(obj)
            self.coupons[coupon.id] = coupon
        elif kind == "discount":
            discount = read_discount(obj)
            if discount is not None:
                self.discounts[discount.id] = discount
                if discount.coupon is not None:
                    self.coupons[discount.coupon.id] = discount.coupon
        elif kind == "price":
            price = read_price(obj)
            if price.tiers is not None:
                self.prices[price.id] = price.tiers

    def copy(self) -> Learned:
        return Learned(dict(self.coupons), dict(self.discounts), dict(self.prices))


@dataclass(slots=True)
class Answers:
    """What the replay asked about reference terms, and what it was told.

    A checkpoint's state holds only while every question still gets the same answer: terms
    learned from a later event, or a reference object stored since, may change one.
    """

    tiers: dict[Price, tuple[Tier, ...]] = field(default_factory=dict)
    coupons: dict[Discount, Coupon | None] = field(default_factory=dict)


@dataclass(slots=True)
class ReplayState:
    """A customer's replay after its first `events` relevant events, the last at `position`."""

    customer_id: str
    position: tuple[int, str] | None = None  # (created, id) of the last event replayed
    events: int = 0
    subs: dict[str, SubState] = field(default_factory=dict)  # live subscriptions only
    ended: set[str] = field(default_factory=set)
    customer_discounts: dict[str, Discount] = field(default_factory=dict)
    lifecycle: Lifecycle = Lifecycle.NEVER
    # (subscription, item or price id) -> (invoice created, invoice id, line amount)
    metered: dict[tuple[str, str], tuple[int, str, int]] = field(default_factory=dict)
    learned: Learned = field(default_factory=Learned)  # from the events up to `position`
    answers: Answers = field(default_factory=Answers)
    depends_on: set[tuple[str, str]] = field(default_factory=set)
    # The entries' running MRR per subscription and per customer and currency, where not zero
    # (ledger.rules.invariants.check_balances).
    balances: dict[str, tuple[int, int]] = field(default_factory=dict)
    # Segments (ledger.rules.segments): the customer's lifecycle in each (dimension, value), and
    # its movement sums per (dimension, value, currency, month index) so far.
    segment_lifecycles: dict[tuple[str, str], Lifecycle] = field(default_factory=dict)
    segment_months: dict[tuple[str, str, str, int], tuple[int, ...]] = field(default_factory=dict)
