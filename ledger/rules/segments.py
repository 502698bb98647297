"""Segments: a customer's MRR within one plan, product or billing interval, classified as if the
segment were the whole business (docs/mrr-rules.md §13).

A subscription's MRR is shared among its items (`pricing.allocate`: each item's monthly amount
after its own discounts, the subscription's discounts spread in proportion), and each item
belongs to one segment per dimension: its price (`plan`), the price's product, its billing
interval. Within a segment, the customer's figures move as the sum of its subscriptions' parts
there, and each event's change is classified by `movements.classify` with the customer's
lifecycle in that segment. An item that leaves a segment (a plan switch) ends the
subscription's presence there: Basic → Pro is churn in Basic and new in Pro, one expansion in
the total.

Pure: `SegmentBook` follows one customer's replay (`timeline`), event by event, and keeps, per
segment, currency and month, the sums of the movements (in `Category` order), which the replay
state carries from one checkpoint to the next.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from ledger.rules.entries import Category
from ledger.rules.movements import Change, Lifecycle, classify, next_lifecycle
from ledger.rules.payloads import Item, Subscription
from ledger.rules.pricing import Figures, Standing

__all__ = [
    "DIMENSIONS",
    "MOVEMENT_SLOTS",
    "Segment",
    "SegmentBook",
    "SegmentMonths",
    "interval_name",
    "item_segments",
    "parts_of",
]

DIMENSIONS = ("plan", "product", "interval")
NO_PRODUCT = "(no product)"
Segment = tuple[str, str]  # (dimension, value)
# (dimension, value, currency, month index) -> movement sums in `Category` order
SegmentMonths = dict[tuple[str, str, str, int], tuple[int, ...]]
MOVEMENT_SLOTS = {category: slot for slot, category in enumerate(Category)}
_HOLDING = frozenset({Standing.ACTIVE, Standing.PAUSED, Standing.DELINQUENT})


def interval_name(interval: str, interval_count: int) -> str:
    """`month`, `year`; `3 months` when the count is above 1."""
    return interval if interval_count == 1 else f"{interval_count} {interval}s"


def item_segments(item: Item) -> tuple[Segment, ...]:
    price = item.price
    return (
        ("plan", price.id),
        ("product", price.product or NO_PRODUCT),
        ("interval", interval_name(price.interval, price.interval_count)),
    )


def parts_of(snapshot: Subscription | None, figures: Figures) -> dict[Segment, tuple[int, int]]:
    """A subscription's (active, delinquent) MRR in each segment its items are in (zero where
    it counts nothing: paused, trialing...)."""
    if snapshot is None:
        return {}
    shares = figures.mrr.parts
    if len(shares) != len(snapshot.items):
        shares = (0,) * len(snapshot.items)
    found: dict[Segment, tuple[int, int]] = {}
    for item, share in zip(snapshot.items, shares, strict=True):
        active = share if figures.standing is Standing.ACTIVE else 0
        delinquent = share if figures.standing is Standing.DELINQUENT else 0
        for segment in item_segments(item):
            a, d = found.get(segment, (0, 0))
            found[segment] = (a + active, d + delinquent)
    return found


@dataclass(frozen=True, slots=True)
class SubView:
    """A subscription as the segments see it around one event."""

    parts: Mapping[Segment, tuple[int, int]]
    holding: bool  # active, paused or delinquent: not ended, not a trial
    currency: str


def _view(snapshot: Subscription | None, figures: Figures) -> SubView:
    return SubView(
        parts_of(snapshot, figures),
        figures.standing in _HOLDING,
        snapshot.currency if snapshot is not None else "usd",
    )


class SegmentBook:
    """Segment movements of one customer's replay, added into `months` (changed in place)."""

    def __init__(self, lifecycles: dict[Segment, Lifecycle], months: SegmentMonths) -> None:
        self.lifecycles = lifecycles
        self.months = months

    @staticmethod
    def view(snapshot: Subscription | None, figures: Figures) -> SubView:
        return _view(snapshot, figures)

    def step(
        self,
        before: Mapping[str, SubView],
        after: Mapping[str, SubView],
        touched: Iterable[str],
        ended: Mapping[str, bool],
        month_of: Mapping[str, int],
        default_month: int,
    ) -> None:
        """One event: `before`/`after` every subscription live before it or touched by it
        (an untouched one is the same in both), `ended` the touched ones that ended, and the
        month each movement of a subscription is effective in."""
        touched = list(touched)
        segments = sorted(
            {s for sub in touched for v in (before, after) if sub in v for s in v[sub].parts}
        )
        for segment in segments:
            changes: list[Change] = []
            for sub in touched:
                old = before[sub].parts.get(segment) if sub in before else None
                new = after[sub].parts.get(segment) if sub in after else None
                if old is None and new is None:
                    continue
                (ab, db), (aa, da) = old or (0, 0), new or (0, 0)
                if (ab, db) != (aa, da):
                    gone = ended.get(sub, False) or new is None
                    changes.append(Change(sub, ab, db, aa, da, ended=gone))
            lifecycle = self.lifecycles.get(segment, Lifecycle.NEVER)
            if changes:
                active_before = sum(v.parts.get(segment, (0, 0))[0] for v in before.values())
                for movement in classify(changes, lifecycle, active_before):
                    sub = movement.subscription_id
                    view = after.get(sub) or before[sub]
                    month = month_of.get(sub, default_month)
                    self._add(segment, view.currency, month, movement.category, movement.amount)
            held = [v for s, v in after.items() if segment in v.parts and not ended.get(s, False)]
            self.lifecycles[segment] = next_lifecycle(
                lifecycle,
                sum(v.parts[segment][0] for v in held),
                sum(v.parts[segment][1] for v in held),
                any(v.holding for v in held),
            )

    def _add(
        self, segment: Segment, currency: str, month: int, category: Category, amount: int
    ) -> None:
        key = (segment[0], segment[1], currency, month)
        sums = list(self.months.get(key, (0,) * len(MOVEMENT_SLOTS)))
        sums[MOVEMENT_SLOTS[category]] += amount
        self.months[key] = tuple(sums)
