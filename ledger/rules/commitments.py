"""Committed MRR: what Stripe has already told us about the coming months (docs/mrr-rules.md §12).

Pure. `Commitments` folds a subscription's stored objects (its `customer.subscription.*`
snapshots and its `subscription_schedule.*` objects, in the order of §5.3) into what is
scheduled: cancellations (`cancel_at_period_end` at `current_period_end`, `cancel_at`), the
next phases of a subscription schedule (and its end, when it ends by cancelling), a pending
update, and a pause's `resumes_at`. Each scheduled step remembers the event that first
announced it: the earliest event of the unbroken run of objects that carried it.

`committed` then starts from each subscription's active MRR in the ledger today and applies
the steps in time order. A step's MRR is priced by the rules of §3 (`pricing.subscription_mrr`)
and applied as a difference: the subscription's ledger MRR plus (the new items' price minus the
current items' price), so what the pricing cannot see from the payload alone (metered lines,
discounts known only by id) cancels out. MRR at risk and potential MRR are kept apart, never
added in.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol

from ledger.rules.months import Month
from ledger.rules.payloads import (
    Coupon,
    Discount,
    Item,
    PayloadError,
    Price,
    Subscription,
    Tier,
    object_id,
    read_price,
    read_subscription,
)
from ledger.rules.pricing import MissingReference, subscription_mrr
from ledger.rules.state_codec import decode_as, encode_as

__all__ = [
    "Adjustment",
    "Base",
    "Commitment",
    "Commitments",
    "CommittedMonth",
    "CommittedMrr",
    "Folded",
    "Held",
    "Planned",
    "PriceHistory",
    "Step",
    "committed",
    "prices_on",
]

Json = Mapping[str, Any]

CANCEL_AT_PERIOD_END = "cancel_at_period_end"
CANCEL_AT = "cancel_at"
SCHEDULE_PHASE = "schedule_phase"
SCHEDULE_END = "schedule_end"
PENDING_UPDATE = "pending_update"
RESUME = "resume"
_LIVE_SCHEDULES = ("active", "not_started")
_ENDED = ("canceled", "incomplete_expired")
_CANCELS = (CANCEL_AT, CANCEL_AT_PERIOD_END, SCHEDULE_END)


@dataclass(frozen=True, slots=True)
class Step:
    """Something Stripe has scheduled for one subscription, and the event that announced it."""

    kind: str
    at: int  # unix seconds
    subscription_id: str
    event_id: str
    items: tuple[Item, ...] | None = None  # the items from then on (phases, pending updates)
    detail: str = ""

    @property
    def key(self) -> tuple[str, int, str]:
        return (self.kind, self.at, self.detail)


@dataclass(frozen=True, slots=True)
class Planned:
    """A step as `committed` needs it: the items already priced (None: unpriceable)."""

    kind: str
    at: int
    event_id: str
    detail: str = ""
    price: int | None = None


@dataclass(frozen=True, slots=True)
class Commitment:
    """One subscription folded: what `committed` needs of its latest snapshot, its steps in
    time order, and the events that announced them. Independent of the ledger and of today."""

    subscription_id: str
    customer: str
    currency: str
    status: str
    paused: bool
    ended: bool
    trial_end: int | None
    price: int | None  # its items' MRR by §3, from the payload alone
    snapshot_event: str
    trial_event: str
    first_created: int  # with `first_event`, where it was first named: the order
    first_event: str  # `committed` walks subscriptions in
    steps: tuple[Planned, ...]


@dataclass(frozen=True, slots=True)
class Folded:
    """Every subscription folded, in the order each was first named, and the fold's notes."""

    commitments: Sequence[Commitment]
    notes: Sequence[str]


class PriceHistory(Protocol):
    """Prices seen on snapshots stored elsewhere: the newest seen at or before an event (§5.3
    order), as the whole fold would have known it there."""

    def at(self, price_id: str, created: int, event_id: str) -> Price | None: ...


@dataclass(frozen=True, slots=True)
class Base:
    """A subscription's figures in the ledger today (minor units)."""

    subscription_id: str
    customer_id: str
    currency: str
    active: int
    delinquent: int


@dataclass(frozen=True, slots=True)
class Adjustment:
    """One change to committed MRR, traced to its subscription and the announcing event."""

    subscription_id: str
    customer_id: str
    kind: str
    effective_at: datetime
    amount: int  # signed minor units
    event_id: str
    detail: str


@dataclass(frozen=True, slots=True)
class Held:
    """A subscription's MRR kept apart from committed MRR: at risk, or potential."""

    subscription_id: str
    customer_id: str
    kind: str  # "delinquent", "scheduled_to_cancel" or "trial"
    amount: int
    event_id: str
    detail: str


@dataclass(frozen=True, slots=True)
class CommittedMonth:
    month: Month
    committed_mrr: int  # at the month's end
    change: int  # the adjustments effective in the month


@dataclass(frozen=True, slots=True)
class CommittedMrr:
    currency: str
    today: datetime
    mrr_today: int
    months: list[CommittedMonth]
    adjustments: list[Adjustment]
    at_risk: list[Held]
    potential: list[Held]
    notes: list[str] = field(default_factory=list)

    @property
    def at_risk_mrr(self) -> int:
        return sum(h.amount for h in self.at_risk)

    @property
    def potential_mrr(self) -> int:
        return sum(h.amount for h in self.potential)


class _PayloadTerms:
    """Terms from the payload alone: a price's own tiers, a discount's own coupon, no metered
    lines. Applied to both sides of a difference, what it cannot see cancels out."""

    def tiers(self, price: Price) -> tuple[Tier, ...]:
        raise MissingReference("price", price.id, "tiers not in the stored payload")

    def coupon(self, discount: Discount) -> Coupon | None:
        return discount.coupon

    def metered_amount(self, subscription_id: str, item: Item) -> int | None:
        return None


_TERMS = _PayloadTerms()


@dataclass(slots=True)
class _Tracked:
    """What is known of one subscription: its latest snapshot and schedule, and who announced
    each step they carry."""

    snapshot: Subscription | None = None
    snapshot_event: str = ""
    snapshot_steps: list[Step] = field(default_factory=list)
    schedule_steps: list[Step] = field(default_factory=list)
    trial_event: str = ""


@dataclass(slots=True)
class _State:
    """A fold's state: what `saved` writes. `subs` and `first` in the order first named."""

    subs: dict[str, _Tracked]
    first: dict[str, tuple[int, str]]  # subscription id -> where it was first named
    schedule_of: dict[str, str]  # schedule id -> subscription id
    notes: list[str]
    noted_at: list[tuple[int, str]]  # each note's event
    looked_up: set[str]


class Commitments:
    """Fold stored subscription and schedule objects, in §5.3 order, into scheduled steps.

    Price ids in schedule phases and pending updates are resolved from the prices seen on
    earlier snapshots: those this fold has read, or, given a `history`, those the history
    holds at the event's place in the order (a fold of part of the stored objects, giving the
    same answer for them as the fold of all)."""

    def __init__(self, history: PriceHistory | None = None) -> None:
        self._state = _State({}, {}, {}, [], [], set())
        self._prices: dict[str, Price] = {}
        self._history = history
        self._created = 0

    @classmethod
    def resumed(cls, saved: str, history: PriceHistory) -> Commitments:
        """A fold continuing from `saved` (`saved()` of one given the same history); raises
        ValueError or TypeError on a text that does not decode."""
        folded = cls(history)
        folded._state = decode_as(_State, json.loads(saved))
        return folded

    def saved(self) -> str:
        """The fold so far as text, to continue with later events (`resumed`)."""
        return json.dumps(encode_as(_State, self._state), separators=(",", ":"))

    @property
    def notes(self) -> list[str]:
        return self._state.notes

    @property
    def noted_at(self) -> list[tuple[int, str]]:
        """Each note's event: (created, event id)."""
        return self._state.noted_at

    @property
    def looked_up(self) -> set[str]:
        """Price ids resolved by id from the history (or not found there)."""
        return self._state.looked_up

    def add(self, event_id: str, event_type: str, obj: Json, created: int = 0) -> None:
        """One stored event's object; objects Stripe would never send are noted and skipped.
        `created` places the event in the order a `history` answers at."""
        self._created = created
        lookup = self._lookup(created, event_id)
        try:
            if event_type.startswith("customer.subscription."):
                self._add_subscription(event_id, event_type, obj, lookup)
            elif event_type.startswith("subscription_schedule."):
                self._add_schedule(event_id, obj, lookup)
        except PayloadError as problem:
            self.note(event_id, f"{event_id}: {problem}", created)

    def note(self, event_id: str, text: str, created: int = 0) -> None:
        self._state.notes.append(text)
        self._state.noted_at.append((created, event_id))

    def _lookup(self, created: int, event_id: str) -> Callable[[str], Price | None]:
        history = self._history
        if history is None:
            return self._prices.get

        def at(price_id: str) -> Price | None:
            self.looked_up.add(price_id)
            return history.at(price_id, created, event_id)

        return at

    def _track(self, sub_id: str, event_id: str) -> _Tracked:
        self._state.first.setdefault(sub_id, (self._created, event_id))
        return self._state.subs.setdefault(sub_id, _Tracked())

    def _add_subscription(
        self, event_id: str, event_type: str, obj: Json, lookup: Callable[[str], Price | None]
    ) -> None:
        sub = read_subscription(obj)
        if event_type == "customer.subscription.deleted" and sub.status not in _ENDED:
            sub = dataclasses.replace(sub, status="canceled")
        for item in sub.items:
            self._prices[item.price.id] = item.price
        tracked = self._track(sub.id, event_id)
        steps = _snapshot_steps(sub, obj, event_id, lookup)
        tracked.snapshot_steps = _announced(tracked.snapshot_steps, steps)
        if sub.status == "trialing" and (tracked.snapshot is None or not tracked.trial_event):
            tracked.trial_event = event_id
        elif sub.status != "trialing":
            tracked.trial_event = ""
        tracked.snapshot, tracked.snapshot_event = sub, event_id

    def _add_schedule(
        self, event_id: str, obj: Json, lookup: Callable[[str], Price | None]
    ) -> None:
        schedule_id = object_id(obj) or ""
        schedule_of = self._state.schedule_of
        sub_id = object_id(obj.get("subscription")) or schedule_of.get(schedule_id)
        if sub_id is None:
            return  # a schedule that has not started a subscription yet commits nothing
        schedule_of[schedule_id] = sub_id
        tracked = self._track(sub_id, event_id)
        steps = _schedule_steps(obj, sub_id, schedule_id, event_id, lookup)
        tracked.schedule_steps = _announced(tracked.schedule_steps, steps)

    def tracked(self) -> Iterable[tuple[str, Subscription, str, list[Step], str]]:
        """(subscription id, latest snapshot, its event, steps, trial announcer) per
        subscription with a snapshot."""
        for sub_id, t in self._state.subs.items():
            if t.snapshot is not None:
                steps = sorted([*t.snapshot_steps, *t.schedule_steps], key=lambda s: s.at)
                yield sub_id, t.snapshot, t.snapshot_event, steps, t.trial_event

    def commitments(self) -> list[Commitment]:
        """Each subscription with a snapshot, its steps priced, in the order first named."""
        return [
            _commitment(sub, snapshot_event, steps, trial_event, self._state.first[sub_id])
            for sub_id, sub, snapshot_event, steps, trial_event in self.tracked()
        ]

    def folded(self) -> Folded:
        return Folded(self.commitments(), list(self.notes))


def _commitment(
    sub: Subscription,
    snapshot_event: str,
    steps: list[Step],
    trial_event: str,
    first: tuple[int, str],
) -> Commitment:
    return Commitment(
        subscription_id=sub.id,
        customer=sub.customer or "",
        currency=sub.currency,
        status=sub.status,
        paused=sub.pause_collection,
        ended=sub.status in _ENDED or sub.ended_at is not None,
        trial_end=sub.trial_end,
        price=_priced(sub),
        snapshot_event=snapshot_event,
        trial_event=trial_event,
        first_created=first[0],
        first_event=first[1],
        steps=tuple(_planned(sub, step) for step in steps),
    )


def _planned(sub: Subscription, step: Step) -> Planned:
    priced = step.kind not in (*_CANCELS, RESUME)
    price = _priced(sub, step.items) if priced else None
    return Planned(step.kind, step.at, step.event_id, step.detail, price)


def prices_on(event_type: str, obj: Json) -> list[Price]:
    """The prices a stored object makes known to later events: a snapshot's items' prices."""
    if not event_type.startswith("customer.subscription."):
        return []
    try:
        return [item.price for item in read_subscription(obj).items]
    except PayloadError:
        return []


def _announced(before: Sequence[Step], now: Sequence[Step]) -> list[Step]:
    """`now`'s steps, each keeping the event of the same step in `before` (its announcer)."""
    first = {step.key: step.event_id for step in before}
    return [dataclasses.replace(s, event_id=first.get(s.key, s.event_id)) for s in now]


def _int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _dict(value: Any) -> Json:
    return value if isinstance(value, Mapping) else {}


def _period_end(obj: Json) -> int | None:
    """`current_period_end`: on the subscription before 2025-03-31, on its items after."""
    found = _int(obj.get("current_period_end"))
    if found is not None:
        return found
    items = obj.get("items")
    data = _dict(items).get("data") if isinstance(items, Mapping) else items
    ends = [_int(_dict(raw).get("current_period_end")) for raw in data or []]
    return min((end for end in ends if end is not None), default=None)


def _read_items(
    raw_items: Any, owner: str, prices: Callable[[str], Price | None]
) -> tuple[Item, ...]:
    """Phase or pending-update items: prices as objects, or ids of prices seen on snapshots."""
    if isinstance(raw_items, Mapping):
        raw_items = raw_items.get("data")
    if not isinstance(raw_items, list):
        raise PayloadError(f"items of {owner} are not a list")
    items = []
    for index, raw in enumerate(raw_items):
        raw = _dict(raw)
        found = raw.get("price") if raw.get("price") is not None else raw.get("plan")
        if isinstance(found, Mapping):
            price = read_price(found)
        else:
            price_id = object_id(found) or ""
            seen = prices(price_id)
            if seen is None:
                raise PayloadError(f"price {price_id or '?'} of {owner} was never seen")
            price = seen
        quantity = _int(raw.get("quantity"))
        item_id = object_id(raw) or f"{owner}#{index}"
        items.append(Item(id=item_id, price=price, quantity=quantity, discounts=()))
    return tuple(items)


def _snapshot_steps(
    sub: Subscription, obj: Json, event_id: str, prices: Callable[[str], Price | None]
) -> list[Step]:
    if sub.status in _ENDED or sub.ended_at is not None:
        return []
    steps: list[Step] = []
    cancel_at = _int(obj.get("cancel_at"))
    period_end = _period_end(obj)
    if sub.cancel_at_period_end and period_end is not None:
        steps.append(Step(CANCEL_AT_PERIOD_END, period_end, sub.id, event_id))
    elif cancel_at is not None:
        steps.append(Step(CANCEL_AT, cancel_at, sub.id, event_id))
    resumes_at = _int(_dict(obj.get("pause_collection")).get("resumes_at"))
    if sub.pause_collection and resumes_at is not None:
        steps.append(Step(RESUME, resumes_at, sub.id, event_id))
    pending = _dict(obj.get("pending_update"))
    if pending.get("subscription_items"):
        changed = _read_items(pending["subscription_items"], f"{sub.id} pending_update", prices)
        by_id = {item.id: item for item in sub.items}
        merged = {**by_id, **{item.id: item for item in changed}}
        expires = _int(pending.get("expires_at"))
        detail = "applies once the latest invoice is paid"
        if expires is not None:
            detail += f", expires {_iso(expires)}"
        at = _int(obj.get("created")) or 0  # due now: placed at the start of the projection
        steps.append(Step(PENDING_UPDATE, at, sub.id, event_id, tuple(merged.values()), detail))
    return steps


def _schedule_steps(
    obj: Json,
    sub_id: str,
    schedule_id: str,
    event_id: str,
    prices: Callable[[str], Price | None],
) -> list[Step]:
    if obj.get("status") not in _LIVE_SCHEDULES:
        return []
    phases = obj.get("phases")
    if not isinstance(phases, list):
        raise PayloadError(f"phases of {schedule_id} are not a list")
    current_start = _int(_dict(obj.get("current_phase")).get("start_date"))
    steps: list[Step] = []
    last_end: int | None = None
    for number, raw in enumerate(phases, start=1):
        phase = _dict(raw)
        start, last_end = _int(phase.get("start_date")), _int(phase.get("end_date"))
        if start is None or (current_start is not None and start <= current_start):
            continue
        owner = f"{schedule_id} phase {number}"
        items = _read_items(phase.get("items"), owner, prices)
        steps.append(
            Step(SCHEDULE_PHASE, start, sub_id, event_id, items, f"{schedule_id} phase {number}")
        )
    if obj.get("end_behavior") == "cancel" and last_end is not None:
        steps.append(Step(SCHEDULE_END, last_end, sub_id, event_id, None, f"{schedule_id} ends"))
    return steps


def _iso(seconds: int) -> str:
    return datetime.fromtimestamp(seconds, UTC).isoformat().replace("+00:00", "Z")


def _priced(sub: Subscription, items: tuple[Item, ...] | None = None) -> int | None:
    """The subscription's MRR by §3 on `items` (its own by default), None when unpriceable."""
    try:
        chosen = sub if items is None else dataclasses.replace(sub, items=items)
        return subscription_mrr(chosen, _TERMS).amount
    except (MissingReference, PayloadError):
        return None


def committed(
    folded: Commitments | Folded,
    bases: Iterable[Base],
    currency: str,
    today: datetime,
    months: int,
) -> CommittedMrr:
    """Committed MRR at the end of `months` months from today's, in one currency."""
    if isinstance(folded, Commitments):
        folded = folded.folded()
    by_sub = {b.subscription_id: b for b in bases if b.currency == currency}
    first = Month.of(today)
    horizon = Month(first.index + months).start()
    now = int(today.timestamp())
    adjustments: list[Adjustment] = []
    at_risk: list[Held] = []
    potential: list[Held] = []
    notes = list(folded.notes)
    for c in folded.commitments:
        sub_id = c.subscription_id
        base = by_sub.get(sub_id)
        customer = (base.customer_id if base else None) or c.customer
        if c.currency != currency and base is None:
            continue
        if base is not None and base.delinquent:
            at_risk.append(
                Held(
                    sub_id,
                    customer,
                    "delinquent",
                    base.delinquent,
                    c.snapshot_event,
                    "payment failed",
                )
            )
        if c.status == "trialing" and not _cancels(c.steps):
            if c.price:
                ends = f"trial ends {_iso(c.trial_end)}" if c.trial_end else "trialing"
                event = c.trial_event or c.snapshot_event
                potential.append(Held(sub_id, customer, "trial", c.price, event, ends))
            continue
        found, held, unpriced = _apply_steps(c, base, customer, now, horizon)
        adjustments.extend(found)
        at_risk.extend(held)
        notes.extend(unpriced)
    mrr_today = sum(b.active for b in by_sub.values())
    adjustments.sort(key=lambda a: (a.effective_at, a.subscription_id, a.kind))
    return CommittedMrr(
        currency=currency,
        today=today,
        mrr_today=mrr_today,
        months=_months(mrr_today, adjustments, first, months),
        adjustments=adjustments,
        at_risk=sorted(at_risk, key=lambda h: (h.kind, h.subscription_id)),
        potential=sorted(potential, key=lambda h: h.subscription_id),
        notes=notes,
    )


def _cancels(steps: Sequence[Planned]) -> bool:
    return any(s.kind in _CANCELS for s in steps)


def _apply_steps(
    c: Commitment,
    base: Base | None,
    customer: str,
    now: int,
    horizon: datetime,
) -> tuple[list[Adjustment], list[Held], list[str]]:
    """Walk one subscription's steps in time order: its level (committed MRR) after each."""
    ledger_active = base.active if base else 0
    paused = c.paused or c.status == "paused"
    if c.ended:
        return [], [], []
    if not paused and c.status != "active":
        return [], [], []  # delinquent, incomplete: nothing active to commit
    offset = ledger_active - c.price if c.price is not None and not paused else 0
    price = c.price
    level, ended = ledger_active, False
    found: list[Adjustment] = []
    held: list[Held] = []
    notes: list[str] = []
    sub_id = c.subscription_id
    for step in c.steps:
        at = datetime.fromtimestamp(max(step.at, now), UTC)
        if ended:
            break
        if step.kind in _CANCELS:
            ended, new_level = True, 0
            if level:
                detail = f"{step.kind} {_iso(step.at)}"
                held.append(
                    Held(sub_id, customer, "scheduled_to_cancel", level, step.event_id, detail)
                )
        elif step.kind == RESUME:
            paused = False
            if price is None:
                notes.append(f"{sub_id}: cannot price its return on {_iso(step.at)}")
                continue
            new_level = price + offset
        else:
            if step.price is None or price is None:
                notes.append(
                    f"{sub_id}: {step.detail or step.kind} cannot be priced from the payloads"
                )
                continue
            price = step.price
            new_level = 0 if paused else price + offset
        if new_level != level and at < horizon:
            detail = step.detail or _iso(step.at)
            found.append(
                Adjustment(
                    sub_id, customer, step.kind, at, new_level - level, step.event_id, detail
                )
            )
        level = new_level
    return found, held, notes


def _months(
    mrr_today: int, adjustments: Sequence[Adjustment], first: Month, months: int
) -> list[CommittedMonth]:
    result: list[CommittedMonth] = []
    level = mrr_today
    for index in range(first.index, first.index + months):
        month = Month(index)
        change = sum(a.amount for a in adjustments if Month.of(a.effective_at) == month)
        level += change
        result.append(CommittedMonth(month, level, change))
    return result
