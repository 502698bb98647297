"""Replay one customer's Stripe events into the ledger entries the MRR rules ask for.

This is the pure heart of the product: events in, desired entries out. The store diffs the
result against the ledger in effect, so any arrival order yields the same ledger in effect:
events are deduplicated by id and sorted by (created, id) here, and reference terms (coupon
terms, which coupon a discount applies, a price's tiers) are timeless facts gathered from the
whole event set before the replay starts.

Payment state (docs/mrr-rules.md §4), per subscription:
- A `past_due`/`unpaid` snapshot is delinquent once the subscription has been paid at least once;
  before its first payment (incomplete, a trial whose first charge fails) it counts nothing.
- `invoice.payment_failed` for a renewal (billing_reason `subscription_cycle`, or a subscription
  already paid once) makes an `active` subscription delinquent before its own update arrives.
  The failure stands until an invoice of the subscription is paid or the failed invoice is
  voided, or a snapshot created strictly later says `active`. A snapshot from the same second
  as the failure may predate it, so it never clears the failure.
- `invoice.paid` / `invoice.payment_succeeded` settle the invoice. A `past_due` (or
  `incomplete`) snapshot whose `latest_invoice` is settled is stale: the subscription counts
  as active. Both recovery paths reach the same state, so they never count twice.
- `invoice.voided`: the failed invoice is no longer owed, so it stops making the subscription
  delinquent; it recovers if the subscription is otherwise active.
- `invoice.marked_uncollectible`: the debt is written off but the subscription keeps its
  standing: it stays delinquent until it ends or a later snapshot changes its status.
- `cancel_at_period_end` changes nothing; only an actual end (`.deleted`, `canceled`,
  `incomplete_expired`) does, and an ended subscription never comes back.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol, TypeGuard

from ledger.rules.entries import DesiredEntry
from ledger.rules.events import EventRecord
from ledger.rules.invariants import check_balances
from ledger.rules.movements import Change, Lifecycle, Movement, classify, next_lifecycle
from ledger.rules.payloads import (
    Coupon,
    Discount,
    Invoice,
    Item,
    Price,
    RefusedInput,
    Subscription,
    Tier,
    read_coupon,
    read_discount,
    read_invoice,
    read_price,
    read_subscription,
)
from ledger.rules.pricing import (
    Figures,
    MissingReference,
    Mrr,
    Standing,
    figures,
    standing_of_status,
    subscription_mrr,
)

__all__ = [
    "RELEVANT_TYPES",
    "MissingReference",
    "References",
    "Replay",
    "is_relevant",
    "references_in",
    "replay_customer",
]

SUBSCRIPTION_EVENTS = frozenset(
    {
        "customer.subscription.created",
        "customer.subscription.updated",
        "customer.subscription.deleted",
        "customer.subscription.paused",
        "customer.subscription.resumed",
        "customer.subscription.pending_update_applied",
    }
)
PAID_EVENTS = frozenset({"invoice.paid", "invoice.payment_succeeded"})
FAILED_EVENTS = frozenset({"invoice.payment_failed", "invoice.marked_uncollectible"})
INVOICE_EVENTS = PAID_EVENTS | FAILED_EVENTS | {"invoice.voided"}
DISCOUNT_EVENTS = frozenset(
    {"customer.discount.created", "customer.discount.updated", "customer.discount.deleted"}
)
COUPON_EVENTS = frozenset({"coupon.created", "coupon.updated", "coupon.deleted"})
RELEVANT_TYPES = SUBSCRIPTION_EVENTS | INVOICE_EVENTS | DISCOUNT_EVENTS | COUPON_EVENTS

_HOLDING = frozenset({Standing.ACTIVE, Standing.PAUSED, Standing.DELINQUENT})


class References(Protocol):
    """Reference objects (coupons, discounts, prices with tiers) the rules may need."""

    def get(self, kind: str, object_id: str) -> dict[str, Any] | None: ...


@dataclass(frozen=True, slots=True)
class Replay:
    entries: list[DesiredEntry]
    depends_on: frozenset[tuple[str, str]] = field(default_factory=frozenset)
    # Each subscription's (active, delinquent) MRR after the last event.
    closing: Mapping[str, tuple[int, int]] = field(default_factory=dict)


def is_relevant(event_type: str) -> bool:
    return event_type in RELEVANT_TYPES


def _has_terms(obj: Any) -> TypeGuard[dict[str, Any]]:
    return isinstance(obj, dict) and ("percent_off" in obj or "amount_off" in obj)


def _objects(value: Any) -> list[dict[str, Any]]:
    """The objects in a list or a Stripe list object; the readers refuse anything else."""
    if isinstance(value, dict):
        value = value.get("data")
    return [found for found in value if isinstance(found, dict)] if isinstance(value, list) else []


def _discount_refs(obj: Any) -> list[tuple[str, str, dict[str, Any]]]:
    if not isinstance(obj, dict) or not isinstance(obj.get("id"), str):
        return []
    found: list[tuple[str, str, dict[str, Any]]] = [("discount", obj["id"], obj)]
    source = obj.get("source")
    for coupon in (obj.get("coupon"), source.get("coupon") if isinstance(source, dict) else None):
        if _has_terms(coupon) and isinstance(coupon.get("id"), str):
            found.append(("coupon", coupon["id"], coupon))
    return found


def _subscription_refs(sub: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    found = _discount_refs(sub.get("discount"))
    for discount in _objects(sub.get("discounts")):
        found += _discount_refs(discount)
    for item in _objects(sub.get("items")):
        price = item.get("price") if isinstance(item.get("price"), dict) else item.get("plan")
        if isinstance(price, dict) and isinstance(price.get("tiers"), list) and price.get("id"):
            found.append(("price", str(price["id"]), price))
        found += _discount_refs(item.get("discount"))
        for discount in _objects(item.get("discounts")):
            found += _discount_refs(discount)
    return found


_READERS: dict[str, Callable[[Mapping[str, Any]], object]] = {
    "coupon": read_coupon,
    "discount": read_discount,
    "price": read_price,
}


def references_in(event: EventRecord) -> list[tuple[str, str, dict[str, Any]]]:
    """Reference objects carried by an event, as (kind, id, object), each read once so that
    one Stripe never sends is refused before it is kept (a coupon's event has no customer)."""
    found = _carried(event)
    for kind, _, obj in found:
        _READERS[kind](obj)
    return found


def _carried(event: EventRecord) -> list[tuple[str, str, dict[str, Any]]]:
    obj = event.object
    if event.type in COUPON_EVENTS and isinstance(obj.get("id"), str):
        return [("coupon", obj["id"], obj)]
    if event.type in DISCOUNT_EVENTS:
        return _discount_refs(obj)
    if event.type in SUBSCRIPTION_EVENTS:
        return _subscription_refs(obj)
    return []


def _ordered(events: Iterable[EventRecord]) -> list[EventRecord]:
    unique: dict[str, EventRecord] = {}
    for event in sorted(events, key=lambda e: e.sort_key):
        unique.setdefault(event.id, event)
    return list(unique.values())


class _Terms:
    """Timeless reference terms from the event set, then from `refs`; records what it used."""

    def __init__(self, events: Sequence[EventRecord], refs: References) -> None:
        self._refs = refs
        self._coupons: dict[str, Coupon] = {}
        self._discounts: dict[str, Discount] = {}
        self._prices: dict[str, tuple[Tier, ...]] = {}
        self.depends_on: set[tuple[str, str]] = set()
        self.metered: dict[tuple[str, str], tuple[int, str, int]] = {}
        for event in events:
            for kind, _, obj in _carried(event):
                self._learn(kind, obj)

    def _learn(self, kind: str, obj: Mapping[str, Any]) -> None:
        if kind == "coupon":
            coupon = read_coupon(obj)
            self._coupons[coupon.id] = coupon
        elif kind == "discount":
            discount = read_discount(obj)
            if discount is not None:
                self._discounts[discount.id] = discount
                if discount.coupon is not None:
                    self._coupons[discount.coupon.id] = discount.coupon
        elif kind == "price":
            price = read_price(obj)
            if price.tiers is not None:
                self._prices[price.id] = price.tiers

    def _ref(self, kind: str, object_id: str) -> dict[str, Any] | None:
        self.depends_on.add((kind, object_id))
        return self._refs.get(kind, object_id)

    def tiers(self, price: Price) -> tuple[Tier, ...]:
        if price.tiers is not None:
            return price.tiers
        if price.id not in self._prices:
            fetched = self._ref("price", price.id)
            if fetched is not None:
                self._learn("price", fetched)
        if price.id not in self._prices:
            raise MissingReference(
                "price", price.id, "tiered price without tiers and no stored or fetched tiers"
            )
        return self._prices[price.id]

    def _discount(self, discount: Discount) -> Discount:
        if discount.coupon is not None or discount.coupon_id is not None:
            return discount
        known = self._discounts.get(discount.id)
        if known is None and not discount.id.startswith("coupon:"):
            fetched = self._ref("discount", discount.id)
            known = read_discount(fetched) if fetched is not None else None
        return known or discount

    def coupon(self, discount: Discount) -> Coupon | None:
        resolved = self._discount(discount)
        if resolved.coupon is not None:
            return resolved.coupon
        if resolved.coupon_id is None:
            self.depends_on.add(("discount", discount.id))
            return None
        if resolved.coupon_id not in self._coupons:
            fetched = self._ref("coupon", resolved.coupon_id)
            if fetched is not None and _has_terms(fetched):
                self._learn("coupon", fetched)
        return self._coupons.get(resolved.coupon_id)

    def metered_amount(self, subscription_id: str, item: Item) -> int | None:
        for key in (item.id, item.price.id):
            found = self.metered.get((subscription_id, key))
            if found is not None:
                return found[2]
        return None

    def record_invoice(self, invoice: Invoice, subscription_id: str) -> None:
        """Keep each item's latest finalized (non-proration) line, by the invoice's age."""
        stamp = (invoice.created or 0, invoice.id)
        for line in invoice.lines:
            if line.proration or line.subscription not in (None, subscription_id):
                continue
            for key in (line.subscription_item, line.price_id):
                if key is None:
                    continue
                current = self.metered.get((subscription_id, key))
                if current is None or (current[0], current[1]) <= stamp:
                    self.metered[(subscription_id, key)] = (*stamp, line.amount)


@dataclass(slots=True)
class _Sub:
    """A subscription's payment state during the replay (mutable, private to one replay)."""

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


def _first_charge_failed(sub: Subscription, event: EventRecord) -> bool:
    previous = (event.previous_attributes or {}).get("status")
    if previous in ("trialing", "incomplete"):
        return True
    starts, trial_end = sub.current_period_start, sub.trial_end
    return trial_end is not None and starts is not None and trial_end >= starts


def _same_currency(before: Subscription | None, sub: Subscription) -> None:
    if before is not None and before.currency != sub.currency:
        rule = f"a Stripe subscription keeps its currency ({before.currency})"
        raise RefusedInput("currency", sub.currency, sub.id, rule)


def _observe_subscription(state: _Sub, sub: Subscription, event: EventRecord) -> None:
    if state.snapshot is None and sub.status in ("past_due", "unpaid"):
        state.paid_once = state.paid_once or not _first_charge_failed(sub, event)
    state.snapshot, state.snapshot_at = sub, event.created
    if sub.status == "active":
        state.paid_once = True
        state.failed = {i: t for i, t in state.failed.items() if t >= event.created}
    if event.type.endswith(".deleted") or standing_of_status(sub.status, False) is Standing.ENDED:
        state.ended = True


def _renewal_failure(state: _Sub, invoice: Invoice) -> bool:
    """A failed renewal; it only counts while the snapshot says `active` (a trial never is)."""
    if invoice.id in state.paid | state.voided:
        return False
    return invoice.billing_reason == "subscription_cycle" or state.paid_once


def _observe_invoice(state: _Sub, invoice: Invoice, event: EventRecord) -> None:
    if event.type in PAID_EVENTS:
        state.paid.add(invoice.id)
        state.failed.clear()
        state.last_settled_at = event.created
        if invoice.amount_paid > 0 or invoice.billing_reason == "subscription_cycle":
            state.paid_once = True
    elif event.type == "invoice.voided":
        state.voided.add(invoice.id)
        state.failed.pop(invoice.id, None)
        state.last_settled_at = event.created
    elif event.type in FAILED_EVENTS and _renewal_failure(state, invoice):
        state.failed.setdefault(invoice.id, event.created)


def _stale_delinquency(state: _Sub, sub: Subscription) -> bool:
    if sub.latest_invoice is not None:
        return sub.latest_invoice in state.paid | state.voided
    return state.last_settled_at is not None and state.last_settled_at >= state.snapshot_at


def _standing(state: _Sub) -> Standing:
    sub = state.snapshot
    if state.ended:
        return Standing.ENDED
    if sub is None:
        return Standing.UNPAID_FIRST
    base = standing_of_status(sub.status, sub.pause_collection)
    if base is Standing.DELINQUENT:
        if _stale_delinquency(state, sub):
            return Standing.ACTIVE
        return Standing.DELINQUENT if state.paid_once else Standing.UNPAID_FIRST
    if base is Standing.ACTIVE and state.failed:
        return Standing.DELINQUENT
    if base is Standing.UNPAID_FIRST and sub.latest_invoice in state.paid:
        return Standing.ACTIVE
    return base


class _Replayer:
    def __init__(self, customer_id: str, events: Sequence[EventRecord], refs: References):
        self.customer_id = customer_id
        self.terms = _Terms(events, refs)
        self.subs: dict[str, _Sub] = {}
        self.customer_discounts: dict[str, Discount] = {}
        self.lifecycle = Lifecycle.NEVER
        self.entries: list[DesiredEntry] = []

    def _sub(self, sub_id: str) -> _Sub:
        return self.subs.setdefault(sub_id, _Sub(sub_id))

    def _belongs(self, owner: str | None) -> bool:
        return owner is None or owner == self.customer_id

    def _mutate(self, event: EventRecord) -> list[str]:
        """Apply an event to the state; the subscriptions whose figures may have moved."""
        if event.type in SUBSCRIPTION_EVENTS:
            sub = read_subscription(event.object)
            if not sub.id or not self._belongs(sub.customer) or self._sub(sub.id).ended:
                return []
            _same_currency(self.subs[sub.id].snapshot, sub)
            _observe_subscription(self.subs[sub.id], sub, event)
            return [sub.id]
        if event.type in INVOICE_EVENTS:
            invoice = read_invoice(event.object)
            if invoice.subscription is None or not self._belongs(invoice.customer):
                return []
            state = self._sub(invoice.subscription)
            if event.type != "invoice.voided" and invoice.status not in ("draft", "void"):
                self.terms.record_invoice(invoice, state.id)
            _observe_invoice(state, invoice, event)
            return [state.id]
        if event.type in DISCOUNT_EVENTS:
            return self._customer_discount(event)
        return []

    def _customer_discount(self, event: EventRecord) -> list[str]:
        discount = read_discount(event.object)
        if discount is None or not self._belongs(discount.customer):
            return []
        if discount.subscription is not None or discount.subscription_item is not None:
            return []  # the subscription's own snapshot says whether it applies
        if event.type.endswith(".deleted"):
            self.customer_discounts.pop(discount.id, None)
        else:
            self.customer_discounts[discount.id] = discount
        return sorted(self.subs)

    def _figures(self, state: _Sub) -> Figures:
        standing = _standing(state)
        if state.snapshot is None or standing not in (Standing.ACTIVE, Standing.DELINQUENT):
            return figures(standing, Mrr(0, {"not_counted": standing.value}))
        customer_discounts = [self.customer_discounts[k] for k in sorted(self.customer_discounts)]
        mrr = subscription_mrr(state.snapshot, self.terms, customer_discounts)
        return figures(standing, mrr)

    def step(self, event: EventRecord) -> None:
        touched = self._mutate(event)
        active_before = sum(s.figures.active for s in self.subs.values())
        changes: list[Change] = []
        before: dict[str, Figures] = {}
        for sub_id in touched:
            state = self.subs[sub_id]
            before[sub_id], state.figures = state.figures, self._figures(state)
            old, new = before[sub_id], state.figures
            if (old.active, old.delinquent) != (new.active, new.delinquent):
                changes.append(
                    Change(
                        sub_id, old.active, old.delinquent, new.active, new.delinquent,
                        ended=new.standing is Standing.ENDED,
                    )
                )  # fmt: skip
        lifecycle = self.lifecycle
        for movement in classify(changes, lifecycle, active_before):
            self._emit(event, movement, before[movement.subscription_id], lifecycle)
        self.lifecycle = next_lifecycle(
            lifecycle,
            sum(s.figures.active for s in self.subs.values()),
            sum(s.figures.delinquent for s in self.subs.values()),
            any(s.figures.standing in _HOLDING for s in self.subs.values()),
        )

    def _emit(
        self, event: EventRecord, movement: Movement, old: Figures, lifecycle: Lifecycle
    ) -> None:
        state = self.subs[movement.subscription_id]
        new, snapshot = state.figures, state.snapshot
        at = event.created
        if new.standing is Standing.ENDED and snapshot is not None and snapshot.ended_at:
            at = snapshot.ended_at
        arithmetic = new.mrr if new.standing is not Standing.ENDED else old.mrr
        explanation = {
            "event": event.type,
            "why": movement.reason,
            "customer_lifecycle": lifecycle.value,
            "before": _summary(old),
            "after": _summary(new),
            "mrr": arithmetic.explanation,
        }
        self.entries.append(
            DesiredEntry(
                customer_id=self.customer_id,
                subscription_id=movement.subscription_id,
                category=movement.category,
                currency=snapshot.currency if snapshot is not None else "usd",
                amount=movement.amount,
                effective_at=datetime.fromtimestamp(at, UTC),
                source_event_id=event.id,
                explanation=explanation,
            )
        )


def _summary(value: Figures) -> dict[str, Any]:
    return {
        "standing": value.standing.value,
        "active": value.active,
        "delinquent": value.delinquent,
    }


def replay_customer(customer_id: str, events: Sequence[EventRecord], refs: References) -> Replay:
    """The entries the rules want for one customer, from the whole set of its events."""
    ordered = [e for e in _ordered(events) if is_relevant(e.type)]
    replayer = _Replayer(customer_id, ordered, refs)
    for event in ordered:
        replayer.step(event)
    check_balances(replayer.entries)
    return Replay(
        entries=replayer.entries,
        depends_on=frozenset(replayer.terms.depends_on),
        closing={
            k: (s.figures.active, s.figures.delinquent) for k, s in sorted(replayer.subs.items())
        },
    )
