"""Replay one customer's Stripe events into the ledger entries the MRR rules ask for.

This is the pure heart of the product: events in, desired entries out. The store diffs the
result against the ledger in effect, so any arrival order yields the same ledger in effect:
events are deduplicated by id and sorted by (created, id) here, and reference terms (coupon
terms, which coupon a discount applies, a price's tiers) are timeless facts gathered from the
whole event set before the replay starts.

A replay can leave checkpoints (`Saving`): its state (`replay_state`) after some of the events,
sealed (`state_codec`). `resume_customer` continues from one with the later events only, and
gives exactly the entries the whole replay gives for them, or None if the state relied on
reference terms that now read differently.

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
from ledger.rules.months import month_index
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
from ledger.rules.replay_state import Answers, Learned, ReplayState, SubState
from ledger.rules.segments import SegmentBook, SegmentMonths, SubView
from ledger.rules.state_codec import seal

__all__ = [
    "RELEVANT_TYPES",
    "Checkpoint",
    "MissingReference",
    "References",
    "Replay",
    "Saving",
    "is_relevant",
    "references_in",
    "replay_customer",
    "resume_customer",
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
class Checkpoint:
    """The replay's state after the customer's first `events` relevant events, sealed."""

    events: int
    position: tuple[int, str]  # (created, id) of the last of them
    sealed: str


@dataclass(frozen=True, slots=True)
class Saving:
    """Where a replay leaves checkpoints, sealed under `rules_version`.

    After every `spacing`-th event, never at or after `ceiling` (an event whose processing is
    not settled yet), thinned with distance from the newest: of the multiples of
    spacing x 2^k, the `recent` newest are kept, for every k. A late event finds one close
    before it, and a long history keeps a few dozen.
    """

    rules_version: str
    spacing: int
    ceiling: tuple[int, str] | None = None
    recent: int = 4

    def allows(self, position: tuple[int, str]) -> bool:
        return self.ceiling is None or position < self.ceiling

    def keeps(self, events: int, newest: int) -> bool:
        """Whether the checkpoint after `events` events stays while the newest is after
        `newest`."""
        step = self.spacing
        while events % step == 0:
            if newest - events < self.recent * step:
                return True
            step *= 2
        return False


@dataclass(frozen=True, slots=True)
class Replay:
    entries: list[DesiredEntry]
    depends_on: frozenset[tuple[str, str]] = field(default_factory=frozenset)
    checkpoints: tuple[Checkpoint, ...] = ()
    # After the last event: each live subscription's (active, delinquent) MRR; the ended ones.
    live: Mapping[str, tuple[int, int]] = field(default_factory=dict)
    ended: frozenset[str] = frozenset()
    # The customer's segment movement sums per (dimension, value, currency, month index), over
    # all of its events (ledger.rules.segments), whether replayed from a checkpoint or not.
    segment_months: SegmentMonths = field(default_factory=dict)

    @property
    def closing(self) -> dict[str, tuple[int, int]]:
        """Each subscription's (active, delinquent) MRR after the last event."""
        return dict(sorted({**dict.fromkeys(self.ended, (0, 0)), **self.live}.items()))


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


def _ordered(events: Iterable[EventRecord], after: tuple[int, str] | None) -> list[EventRecord]:
    """The relevant events sorting after `after`, each id once, in (created, id) order."""
    unique: dict[str, EventRecord] = {}
    for event in sorted(events, key=lambda e: e.sort_key):
        if is_relevant(event.type) and (after is None or event.sort_key > after):
            unique.setdefault(event.id, event)
    return list(unique.values())


class _Terms:
    """Timeless reference terms from the event set, then from `refs`.

    Records, in the replay's state, what it looked up in `refs`, the latest metered invoice
    lines, and every question it answered from terms the payload itself did not carry.
    """

    def __init__(self, known: Learned, refs: References, state: ReplayState) -> None:
        self._known = known
        self._refs = refs
        self.depends_on = state.depends_on
        self.metered = state.metered
        self.answers = state.answers

    def _ref(self, kind: str, object_id: str) -> dict[str, Any] | None:
        self.depends_on.add((kind, object_id))
        return self._refs.get(kind, object_id)

    def tiers(self, price: Price) -> tuple[Tier, ...]:
        if price.tiers is not None:
            return price.tiers
        found = self.answers.tiers[price] = self._tiers(price)
        return found

    def _tiers(self, price: Price) -> tuple[Tier, ...]:
        prices = self._known.prices
        if price.id not in prices:
            fetched = self._ref("price", price.id)
            if fetched is not None:
                self._known.learn("price", fetched)
        if price.id not in prices:
            raise MissingReference(
                "price", price.id, "tiered price without tiers and no stored or fetched tiers"
            )
        return prices[price.id]

    def _discount(self, discount: Discount) -> Discount:
        if discount.coupon is not None or discount.coupon_id is not None:
            return discount
        known = self._known.discounts.get(discount.id)
        if known is None and not discount.id.startswith("coupon:"):
            fetched = self._ref("discount", discount.id)
            known = read_discount(fetched) if fetched is not None else None
        return known or discount

    def coupon(self, discount: Discount) -> Coupon | None:
        if discount.coupon is not None:
            return discount.coupon
        found = self.answers.coupons[discount] = self._coupon(discount)
        return found

    def _coupon(self, discount: Discount) -> Coupon | None:
        resolved = self._discount(discount)
        if resolved.coupon is not None:
            return resolved.coupon
        if resolved.coupon_id is None:
            self.depends_on.add(("discount", discount.id))
            return None
        if resolved.coupon_id not in self._known.coupons:
            fetched = self._ref("coupon", resolved.coupon_id)
            if fetched is not None and _has_terms(fetched):
                self._known.learn("coupon", fetched)
        return self._known.coupons.get(resolved.coupon_id)

    def confirms(self, answers: Answers) -> bool:
        """Whether every question in `answers` still gets the same answer."""
        try:
            return all(self._tiers(p) == t for p, t in answers.tiers.items()) and all(
                self._coupon(d) == c for d, c in answers.coupons.items()
            )
        except MissingReference:
            return False

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


def _observe_subscription(state: SubState, sub: Subscription, event: EventRecord) -> None:
    if state.snapshot is None and sub.status in ("past_due", "unpaid"):
        state.paid_once = state.paid_once or not _first_charge_failed(sub, event)
    state.snapshot, state.snapshot_at = sub, event.created
    if sub.status == "active":
        state.paid_once = True
        state.failed = {i: t for i, t in state.failed.items() if t >= event.created}
    if event.type.endswith(".deleted") or standing_of_status(sub.status, False) is Standing.ENDED:
        state.ended = True


def _renewal_failure(state: SubState, invoice: Invoice) -> bool:
    """A failed renewal; it only counts while the snapshot says `active` (a trial never is)."""
    if invoice.id in state.paid | state.voided:
        return False
    return invoice.billing_reason == "subscription_cycle" or state.paid_once


def _observe_invoice(state: SubState, invoice: Invoice, event: EventRecord) -> None:
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


def _stale_delinquency(state: SubState, sub: Subscription) -> bool:
    if sub.latest_invoice is not None:
        return sub.latest_invoice in state.paid | state.voided
    return state.last_settled_at is not None and state.last_settled_at >= state.snapshot_at


def _standing(state: SubState) -> Standing:
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
    """Replays `events` on from `state`, which it changes in place."""

    def __init__(self, state: ReplayState, events: Sequence[EventRecord], refs: References):
        self.state = state
        self.events = events
        self.carried = [_carried(event) for event in events]
        known = state.learned.copy()
        for carried in self.carried:
            for kind, _, obj in carried:
                known.learn(kind, obj)
        self.terms = _Terms(known, refs, state)
        self.entries: list[DesiredEntry] = []
        self.segments = SegmentBook(state.segment_lifecycles, state.segment_months)
        # Each live subscription's segment view; it changes only when the subscription is
        # touched, so it is kept from one event to the next rather than recomputed.
        self.views: dict[str, SubView] = {
            k: SegmentBook.view(s.snapshot, s.figures) for k, s in state.subs.items()
        }

    @property
    def customer_id(self) -> str:
        return self.state.customer_id

    def _sub(self, sub_id: str) -> SubState:
        return self.state.subs.setdefault(sub_id, SubState(sub_id))

    def _belongs(self, owner: str | None) -> bool:
        return owner is None or owner == self.customer_id

    def _mutate(self, event: EventRecord) -> list[str]:
        """Apply an event to the state; the live subscriptions whose figures may have moved.

        Nothing can move an ended subscription's figures: its events change nothing.
        """
        ended = self.state.ended
        if event.type in SUBSCRIPTION_EVENTS:
            sub = read_subscription(event.object)
            if not sub.id or not self._belongs(sub.customer) or sub.id in ended:
                return []
            state = self._sub(sub.id)
            _same_currency(state.snapshot, sub)
            _observe_subscription(state, sub, event)
            return [sub.id]
        if event.type in INVOICE_EVENTS:
            invoice = read_invoice(event.object)
            owner = invoice.subscription
            if owner is None or not self._belongs(invoice.customer) or owner in ended:
                return []
            state = self._sub(owner)
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
            self.state.customer_discounts.pop(discount.id, None)
        else:
            self.state.customer_discounts[discount.id] = discount
        return sorted(self.state.subs)

    def _figures(self, state: SubState) -> Figures:
        standing = _standing(state)
        if state.snapshot is None or standing not in (Standing.ACTIVE, Standing.DELINQUENT):
            return figures(standing, Mrr(0, {"not_counted": standing.value}))
        discounts = self.state.customer_discounts
        customer_discounts = [discounts[k] for k in sorted(discounts)]
        mrr = subscription_mrr(state.snapshot, self.terms, customer_discounts)
        return figures(standing, mrr)

    def step(self, event: EventRecord, carried: Sequence[tuple[str, str, dict[str, Any]]]) -> None:
        for kind, _, obj in carried:
            self.state.learned.learn(kind, obj)
        emitted = len(self.entries)
        subs = self.state.subs
        views = self.views
        touched = self._mutate(event)
        active_before = sum(s.figures.active for s in subs.values())
        changes: list[Change] = []
        before: dict[str, Figures] = {}
        for sub_id in touched:
            state = subs[sub_id]
            before[sub_id], state.figures = state.figures, self._figures(state)
            old, new = before[sub_id], state.figures
            if (old.active, old.delinquent) != (new.active, new.delinquent):
                changes.append(
                    Change(
                        sub_id, old.active, old.delinquent, new.active, new.delinquent,
                        ended=new.standing is Standing.ENDED,
                    )
                )  # fmt: skip
        lifecycle = self.state.lifecycle
        for movement in classify(changes, lifecycle, active_before):
            self._emit(event, movement, before[movement.subscription_id], lifecycle)
        check_balances(self.entries[emitted:], self.state.balances)
        self._segments(event, touched, views)
        self.state.lifecycle = next_lifecycle(
            lifecycle,
            sum(s.figures.active for s in subs.values()),
            sum(s.figures.delinquent for s in subs.values()),
            any(s.figures.standing in _HOLDING for s in subs.values()),
        )
        for sub_id in touched:
            if subs[sub_id].ended:
                self.state.ended.add(sub_id)
                del subs[sub_id]
        self.state.position = event.sort_key
        self.state.events += 1

    def _segments(self, event: EventRecord, touched: list[str], before: dict[str, SubView]) -> None:
        subs = self.state.subs
        after = dict(before)
        if not touched:
            return
        ended: dict[str, bool] = {}
        month_of: dict[str, int] = {}
        for sub_id in touched:
            state = subs[sub_id]
            after[sub_id] = SegmentBook.view(state.snapshot, state.figures)
            ended[sub_id] = state.figures.standing is Standing.ENDED
            month_of[sub_id] = month_index(self._effective_at(event, state))
        default = month_index(datetime.fromtimestamp(event.created, UTC))
        self.segments.step(before, after, touched, ended, month_of, default)
        self.views = {k: v for k, v in after.items() if not ended.get(k, False)}

    @staticmethod
    def _effective_at(event: EventRecord, state: SubState) -> datetime:
        """When a change of the subscription counts: the event, or its end (§5.3)."""
        at, snapshot = event.created, state.snapshot
        if state.figures.standing is Standing.ENDED and snapshot is not None and snapshot.ended_at:
            at = snapshot.ended_at
        return datetime.fromtimestamp(at, UTC)

    def run(self, saving: Saving | None) -> Replay:
        checkpoints: list[Checkpoint] = []
        allowed = self.state.events + sum(
            1 for e in self.events if saving is None or saving.allows(e.sort_key)
        )
        newest = allowed - allowed % saving.spacing if saving is not None else 0
        for event, carried in zip(self.events, self.carried, strict=True):
            self.step(event, carried)
            done = self.state.events
            if saving is not None and done <= newest and saving.keeps(done, newest):
                sealed = seal(self.state, saving.rules_version)
                checkpoints.append(Checkpoint(done, event.sort_key, sealed))
        return Replay(
            entries=self.entries,
            depends_on=frozenset(self.state.depends_on),
            checkpoints=tuple(checkpoints),
            live={k: (s.figures.active, s.figures.delinquent) for k, s in self.state.subs.items()},
            ended=frozenset(self.state.ended),
            segment_months=dict(self.state.segment_months),
        )

    def _emit(
        self, event: EventRecord, movement: Movement, old: Figures, lifecycle: Lifecycle
    ) -> None:
        state = self.state.subs[movement.subscription_id]
        new, snapshot = state.figures, state.snapshot
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
                effective_at=self._effective_at(event, state),
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


def replay_customer(
    customer_id: str,
    events: Sequence[EventRecord],
    refs: References,
    saving: Saving | None = None,
) -> Replay:
    """The entries the rules want for one customer, from the whole set of its events."""
    state = ReplayState(customer_id)
    return _Replayer(state, _ordered(events, None), refs).run(saving)


def resume_customer(
    start: ReplayState,
    events: Sequence[EventRecord],
    refs: References,
    saving: Saving | None = None,
) -> Replay | None:
    """What `replay_customer` gives for the customer's events sorting after `start`, continuing
    from `start` (which it changes): only those events' entries. `events` holds every event of
    the customer after `start.position`; earlier ones are left out.

    None if `start` no longer holds: a question it answered about reference terms gets another
    answer now (terms a later event carries, a reference object stored since).
    """
    replayer = _Replayer(start, _ordered(events, start.position), refs)
    if not replayer.terms.confirms(start.answers):
        return None
    return replayer.run(saving)
