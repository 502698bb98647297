"""History rebuilt from Stripe objects: a subscription and its invoices -> synthetic events.

Stripe keeps events for 30 days; subscriptions and invoices are kept for ever. The backfill
turns the objects into the events Stripe would have sent (same types, same object shapes, in
the payload's own API shape) so they go through the same rules as webhooks. Pure: plain dicts
in, event dicts out. Every field the synthesis decides on is read by the payload readers
(`ledger.rules.payloads`), as the rules read it; the plain dicts are only copied into events.

Events share nested objects with the input (they are serialized, never mutated), so copies
here are shallow: the backfill builds tens of thousands of snapshots.

Each synthetic event id is `bf_<object id>_<field>`: the Stripe object and the field that
dates it (`bf_sub_1_start_date`, `bf_in_1_paid_at`), so a re-run produces the same ids and
every ledger entry derived from one names where it came from. The assumptions made where the
objects are ambiguous are listed in docs/backfill.md.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from ledger.rules.payloads import (
    Invoice,
    InvoiceLine,
    PayloadError,
    Subscription,
    is_old_shape,
    object_id,
    read_discount,
    read_invoice,
    read_subscription,
    subscription_of,
)

__all__ = [
    "EVENT_RETENTION_SECONDS",
    "GUESSES",
    "Guess",
    "Synthesis",
    "cutoffs_from_real_events",
    "drop_overlapping",
    "guess_of",
    "is_synthetic",
    "start_at",
    "synthesize",
]

EVENT_RETENTION_SECONDS = 30 * 86_400
PREFIX = "bf_"
# A paid period that starts this long after a trial ended was not billed at the trial's end.
TRIAL_SLACK_SECONDS = 86_400

Obj = dict[str, Any]

# What the backfill had to guess, by kind: each synthesized event that rests on a guess says
# which (`backfill.guess`) and why (`backfill.explanation`); the summary counts them.
GUESSES: Mapping[str, str] = {
    "next_invoice": "changes dated at the next invoice (no proration line dates them)",
    "retention": "states dated at the start of the event retention (no object dates them)",
    "voided_pause": "pauses inferred from voided (or uncollected) renewal invoices",
    "trial_pause": "trials that ended paused, inferred from a late first invoice",
    "discount_dates": "discounts whose start or end is approximate",
}


def is_synthetic(event_id: str) -> bool:
    return event_id.startswith(PREFIX)


@dataclass(frozen=True, slots=True)
class Guess:
    kind: str  # a key of GUESSES
    why: str


def guess_of(event: Mapping[str, Any]) -> Guess | None:
    """The guess a synthesized event rests on, if any."""
    origin = event.get("backfill") or {}
    kind = origin.get("guess")
    return Guess(str(kind), str(origin.get("explanation", ""))) if kind else None


@dataclass(frozen=True, slots=True)
class Synthesis:
    events: list[Obj]
    warnings: list[str] = field(default_factory=list)
    unknown_discounts: tuple[str, ...] = ()  # ids whose terms no listing gave


@dataclass(frozen=True, slots=True)
class _Config:
    """What a subscription bills at one time: its items and discounts."""

    items: tuple[tuple[str, Obj, int, tuple[Any, ...]], ...]  # (item id, price, qty, discounts)
    discounts: tuple[Any, ...]

    def items_signature(self) -> tuple[Any, ...]:
        return tuple(sorted((i, str(object_id(p)), q) for i, p, q, _ in self.items))

    def discount_ids(self) -> frozenset[str]:
        found = {_discount_id(d) for d in self.discounts}
        found |= {_discount_id(d) for *_, ds in self.items for d in ds}
        return frozenset(found)

    def signature(self) -> tuple[Any, ...]:
        return (
            tuple(sorted((i, str(object_id(p)), q, _ids_of(ds)) for i, p, q, ds in self.items)),
            _ids_of(self.discounts),
        )

    def discount_objects(self) -> dict[str, Any]:
        found = {_discount_id(d): d for d in self.discounts}
        found |= {_discount_id(d): d for *_, ds in self.items for d in ds}
        return found


def _ids_of(discounts: Iterable[Any]) -> tuple[str, ...]:
    return tuple(sorted(_discount_id(d) for d in discounts))


@dataclass(frozen=True, slots=True)
class _Change:
    at: int
    event_id: str
    origin: tuple[str, str]  # (object id, field)
    config: _Config
    guess: Guess | None = None


@dataclass(frozen=True, slots=True)
class _Status:
    """The subscription's status from `at` on; `pause_collection` is an active subscription
    whose collection is paused (`pause` names Stripe's behavior)."""

    at: int
    status: str
    event_id: str
    origin: tuple[str, str]
    guess: Guess | None = None
    pause: Obj | None = None


@dataclass(frozen=True, slots=True)
class _Bill:
    """An invoice as the payload readers read it, and as Stripe sent it (to copy from)."""

    raw: Obj
    read: Invoice
    lines: tuple[tuple[Obj, InvoiceLine], ...]  # each line as sent and as read

    @classmethod
    def of(cls, raw: Obj) -> _Bill:
        sent = (raw.get("lines") or {}).get("data") or []
        read = read_invoice(raw)
        return cls(raw, read, tuple(zip(sent, read.lines, strict=True)))


class _Discounts:
    """Discount ids resolved to the objects an expanded listing gave; the ids it could not."""

    def __init__(self, known: Mapping[str, Obj]) -> None:
        self.known = known
        self.unknown: dict[str, None] = {}

    def resolve(self, values: Any) -> tuple[Any, ...]:
        found = []
        for value in values if isinstance(values, list) else ():
            if isinstance(value, str):
                if value in self.known:
                    value = self.known[value]
                elif not value.startswith("coupon:"):
                    self.unknown[value] = None
            found.append(value)
        return tuple(found)

    def of(self, carrier: Mapping[str, Any]) -> tuple[Any, ...]:
        """A subscription's, item's, invoice's or line's discounts (either API shape)."""
        found = self.resolve(carrier.get("discounts"))
        if not found and carrier.get("discount"):
            found = self.resolve([carrier["discount"]])
        return found


def _discount_id(discount: Any) -> str:
    read = read_discount(discount)
    return read.id if read is not None else str(discount)


def _discount_time(discount: Any, name: str) -> int | None:
    value = discount.get(name) if isinstance(discount, Mapping) else None
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _price_object(carrier: Mapping[str, Any]) -> Obj | None:
    """The price object an item or an old-shape line carries (a legacy `plan` if no `price`)."""
    price = carrier.get("price") or carrier.get("plan")
    return price if isinstance(price, dict) else None


def _line_price(
    sent: Obj, line: InvoiceLine, prices: Mapping[str, Obj], current: Mapping[str, Obj]
) -> Obj | None:
    embedded = _price_object(sent)
    if embedded is not None or line.price_id is None:
        return embedded
    return prices.get(line.price_id) or current.get(line.price_id)


def _invoice_config(
    bill: _Bill,
    prices: Mapping[str, Obj],
    current: Mapping[str, Obj],
    discounts: _Discounts,
    warnings: list[str],
) -> tuple[int, int, _Config] | None:
    """The items billed for a full period by a subscription invoice, with that period."""
    items: list[tuple[str, Obj, int, tuple[Any, ...]]] = []
    period: tuple[int, int] | None = None
    for sent, line in bill.lines:
        if line.subscription_item is None or line.proration:
            continue
        price = _line_price(sent, line, prices, current)
        if price is None:
            warnings.append(f"{bill.read.id}: line {line.id} names price {line.price_id}, unknown")
            continue
        items.append((line.subscription_item, price, line.quantity or 1, discounts.of(sent)))
        period = period or line.period
    if not items or period is None:
        return None
    return period[0], period[1], _Config(tuple(items), discounts.of(bill.raw))


def _sent_items(sub: Mapping[str, Any]) -> list[Obj]:
    return list((sub.get("items") or {}).get("data") or [])


def _current_config(sub: Obj, read: Subscription, discounts: _Discounts) -> _Config:
    items = []
    for sent, item in zip(_sent_items(sub), read.items, strict=True):
        price = _price_object(sent) or {}
        items.append((item.id, price, item.quantity or 1, discounts.of(sent)))
    return _Config(tuple(items), discounts.of(sub))


def _first_proration(bills: Sequence[_Bill], after: int, until: int) -> tuple[int, str] | None:
    """When a change was made mid-period: the start of the first charged proration line."""
    found: tuple[int, str] | None = None
    for bill in bills:
        for _, line in bill.lines:
            if not line.proration or line.period is None or line.amount <= 0:
                continue
            start = line.period[0]
            if after < start <= until and (found is None or start < found[0]):
                found = (start, str(line.id))
    return found


def _described(config: _Config) -> str:
    items = ", ".join(f"{object_id(p)} x {q}" for _, p, q, _ in config.items) or "no items"
    discounts = sorted(config.discount_ids())
    return items + (f" with {', '.join(discounts)}" if discounts else "")


def _discount_change(
    previous: _Config, config: _Config, after: int, until: int
) -> tuple[int, Guess | None] | None:
    """When only the discounts changed: a discount's own `start` dates its addition; a removal
    is seen at the first period billed without it (where a repeating coupon ends). None when
    the billed items changed too."""
    if previous.items_signature() != config.items_signature():
        return None
    had, has = previous.discount_objects(), config.discount_objects()
    added = [has[d] for d in has.keys() - had.keys()]
    removed = [had[d] for d in had.keys() - has.keys()]
    starts = [_discount_time(d, "start") for d in added]
    exact_starts = [s for s in starts if s is not None and after < s <= until]
    if added and len(exact_starts) == len(added) and not removed:
        return max(exact_starts), None
    ends = [_discount_time(d, "end") for d in removed]
    if removed and all(e is not None and after < e <= until for e in ends) and not added:
        return until, None
    names = ", ".join(sorted(_discount_id(d) for d in added + removed))
    why = (
        f"discount {names}: its start or end is not in the objects, or falls outside the "
        "period before it shows on an invoice; dated at the first period billed with the change"
    )
    return until, Guess("discount_dates", why)


def _billing_changes(
    sub: Obj,
    read: Subscription,
    bills: Sequence[_Bill],
    prices: Mapping[str, Obj],
    discounts: _Discounts,
    now: int,
    warnings: list[str],
) -> tuple[list[_Change], list[tuple[int, int]]]:
    """Each time the billed items or discounts changed, and the billed periods."""
    current_prices = {
        str(object_id(price)): price
        for price in (_price_object(item) for item in _sent_items(sub))
        if price is not None
    }
    observed = []
    for bill in bills:
        found = _invoice_config(bill, prices, current_prices, discounts, warnings)
        if found is not None:
            observed.append((found[0], found[1], bill.read.id, found[2]))
    observed.sort(key=lambda o: (o[0], o[2]))
    changes: list[_Change] = []
    periods: list[tuple[int, int]] = []
    sub_id, start = read.id, _start(read)

    def created(config: _Config) -> _Change:
        return _Change(start, f"{PREFIX}{sub_id}_start_date", (sub_id, "start_date"), config)

    previous: _Config | None = None
    previous_at = start
    for period_start, period_end, invoice_id, config in observed:
        periods.append((period_start, period_end))
        if previous is None:
            changes.append(created(config))
        elif config.signature() != previous.signature():
            changes.append(
                _dated_change(bills, previous, previous_at, period_start, invoice_id, config)
            )
        previous, previous_at = config, period_start
    final = _current_config(sub, read, discounts)
    if previous is None:
        changes.append(created(final))
    elif final.signature() != previous.signature() and read.ended_at is None:
        changes.append(_after_last_invoice(sub_id, bills, previous, previous_at, final, now))
    return changes, periods


def _after_last_invoice(
    sub_id: str, bills: Sequence[_Bill], previous: _Config, after: int, final: _Config, now: int
) -> _Change:
    """A change made after the last invoice: a proration line or a discount's own dates date
    it; without them it is older than the event retention (a newer one is a real event)."""
    proration = _first_proration(bills, after, now)
    if proration is not None:
        at, line_id = proration
        return _Change(at, f"{PREFIX}{line_id}_period_start", (line_id, "period.start"), final)
    dated = _discount_change(previous, final, after, now)
    if dated is not None and dated[1] is None:
        return _Change(dated[0], f"{PREFIX}{sub_id}_discounts", (sub_id, "discounts"), final)
    at = max(after, now - EVENT_RETENTION_SECONDS)
    why = (
        f"now billed as {_described(final)}, after the last invoice ({_described(previous)}) "
        "with no proration line: dated at the start of the event retention"
    )
    return _Change(at, f"{PREFIX}{sub_id}_items", (sub_id, "items"), final, Guess("retention", why))


def _dated_change(
    bills: Sequence[_Bill],
    previous: _Config,
    after: int,
    until: int,
    invoice_id: str,
    config: _Config,
) -> _Change:
    proration = _first_proration(bills, after, until)
    if proration is not None:
        at, line_id = proration
        return _Change(at, f"{PREFIX}{line_id}_period_start", (line_id, "period.start"), config)
    origin = (invoice_id, "lines.data.period.start")
    dated = _discount_change(previous, config, after, until)
    if dated is not None:
        at, guess = dated
        return _Change(at, f"{PREFIX}{invoice_id}_lines", origin, config, guess)
    why = (
        f"{_described(previous)} became {_described(config)} with no proration line: dated at "
        f"the start of the first period billed at it ({invoice_id}); it was made in the period "
        "before"
    )
    return _Change(until, f"{PREFIX}{invoice_id}_lines", origin, config, Guess("next_invoice", why))


def _start(sub: Subscription) -> int:
    return sub.start_date or sub.created or 0


def _failed_at(invoice: Invoice) -> int | None:
    """When an invoice's first automatic payment attempt failed, if it did."""
    attempts = invoice.attempt_count
    failed = attempts > 1 if invoice.paid_at is not None else attempts >= 1 and invoice.attempted
    if not failed or invoice.status == "void":
        return None
    return invoice.finalized_at or invoice.created


def _as_of_failure(bill: _Bill) -> Obj:
    """The invoice as it was when its payment failed: open, nothing paid."""
    then = dict(bill.raw)
    then["status"] = "open"
    then["paid"] = False
    then["amount_paid"] = 0
    then["amount_remaining"] = bill.read.amount_due
    then["status_transitions"] = {**(bill.raw.get("status_transitions") or {}), "paid_at": None}
    return then


class _Builder:
    """Collects the synthetic events of one subscription."""

    def __init__(self, sub: Obj, api_version: str | None) -> None:
        self.sub = sub
        self.api_version = api_version
        self.events: list[Obj] = []

    def add(
        self,
        event_id: str,
        kind: str,
        at: int,
        obj: Obj,
        origin: tuple[str, str],
        guess: Guess | None = None,
    ) -> None:
        backfill: Obj = {"object": origin[0], "field": origin[1]}
        if guess is not None:
            backfill |= {"guess": guess.kind, "explanation": guess.why}
        self.events.append(
            {
                "id": event_id,
                "object": "event",
                "type": kind,
                "created": int(at),
                "api_version": self.api_version,
                "livemode": bool(self.sub.get("livemode", False)),
                "pending_webhooks": 0,
                "request": {"id": None, "idempotency_key": None},
                "data": {"object": obj},
                "backfill": backfill,
            }
        )


def _recovered_at(bill: _Bill, failed_at: int, bills: Sequence[_Bill]) -> tuple[int, _Bill] | None:
    """When a failed invoice stopped making its subscription past_due: its own payment, or the
    payment of a later invoice of the subscription (Stripe makes it active again while the old
    one stays open)."""
    found: tuple[int, _Bill] | None = None
    if bill.read.paid_at is not None:
        found = (bill.read.paid_at, bill)
    for later in bills:
        paid_at = later.read.paid_at
        if later is bill or paid_at is None or paid_at <= failed_at or later.read.total == 0:
            continue
        if (later.read.created or 0) <= (bill.read.created or 0):
            continue
        if found is None or paid_at < found[0]:
            found = (paid_at, later)
    return found


def _status_timeline(
    sub: Subscription, bills: Sequence[_Bill], now: int
) -> tuple[list[_Status], list[tuple[_Bill, int]], list[_Bill]]:
    """Status changes, the failed invoices with their time, and the invoices whose payment
    ended a delinquency."""
    sub_id = sub.id
    start = _start(sub)
    trial_end = sub.trial_end
    changes: list[_Status] = []
    in_trial = trial_end is not None and trial_end > start
    first = _first_invoice(bills)
    incomplete = (
        not in_trial
        and (sub.collection_method or "charge_automatically") == "charge_automatically"
        and first is not None
        and (first.read.paid_at is None or _failed_at(first.read) is not None)
    )
    initial = "trialing" if in_trial else "incomplete" if incomplete else "active"
    changes.append(_Status(start, initial, f"{PREFIX}{sub_id}_start_date", (sub_id, "start_date")))
    if trial_end is not None and in_trial and trial_end <= now:
        changes += _trial_end(sub, bills, trial_end, now)
    failures: list[tuple[_Bill, int]] = []
    recoveries: list[_Bill] = []
    for bill in bills:
        invoice = bill.read
        failed_at = _failed_at(invoice)
        if failed_at is None:
            continue
        failures.append((bill, failed_at))
        recovered = _recovered_at(bill, failed_at, bills)
        if incomplete and bill is first:
            if invoice.paid_at is not None:
                paid = (invoice.id, "status_transitions.paid_at")
                changes.append(
                    _Status(invoice.paid_at, "active", f"{PREFIX}{invoice.id}_paid_at_status", paid)
                )
            continue
        origin = (invoice.id, "status_transitions.finalized_at")
        changes.append(_Status(failed_at, "past_due", f"{PREFIX}{invoice.id}_finalized_at", origin))
        if recovered is not None:
            at, payer = recovered
            paid = (payer.read.id, "status_transitions.paid_at")
            changes.append(_Status(at, "active", f"{PREFIX}{payer.read.id}_paid_at_status", paid))
            if payer is not bill:
                recoveries.append(payer)
    if incomplete and first is not None and _failed_at(first.read) is None:
        paid_at = first.read.paid_at
        if paid_at is not None and paid_at > start:
            inv_id = first.read.id
            origin = (inv_id, "status_transitions.paid_at")
            changes.append(_Status(paid_at, "active", f"{PREFIX}{inv_id}_paid_at_status", origin))
    changes += _pauses(sub, bills, now)
    changes.sort(key=lambda c: (c.at, c.event_id))
    return changes, failures, recoveries


def _trial_end(
    sub: Subscription, bills: Sequence[_Bill], trial_end: int, now: int
) -> list[_Status]:
    """The status the trial ended in: active, or paused (no payment method) until the first
    invoice after it, when the subscription resumed with a new billing period."""
    sub_id = sub.id
    origin = (sub_id, "trial_end")
    event_id = f"{PREFIX}{sub_id}_trial_end"
    resumed = _first_billed_after(bills, trial_end)
    if resumed is None:
        paused = sub.status == "paused" and not sub.pause_collection
        return [_Status(trial_end, "paused" if paused else "active", event_id, origin)]
    bill, period_start = resumed
    if period_start <= trial_end + TRIAL_SLACK_SECONDS:
        return [_Status(trial_end, "active", event_id, origin)]
    why = (
        f"the trial ended with no invoice; the first one ({bill.read.id}) bills from "
        f"{period_start}: paused at the trial's end, resumed then"
    )
    resume_origin = (bill.read.id, "lines.data.period.start")
    return [
        _Status(trial_end, "paused", event_id, origin, Guess("trial_pause", why)),
        _Status(period_start, "active", f"{PREFIX}{bill.read.id}_resumed", resume_origin),
    ]


def _first_billed_after(bills: Sequence[_Bill], at: int) -> tuple[_Bill, int] | None:
    """The first invoice billing a period that starts at or after `at`, with that start."""
    found: tuple[_Bill, int] | None = None
    for bill in bills:
        start = _period_start(bill)
        if start is None or start < at or bill.read.total == 0:
            continue
        if found is None or start < found[1]:
            found = (bill, start)
    return found


_UNCOLLECTED = {"void": "void", "draft": "keep_as_draft", "uncollectible": "mark_uncollectible"}


def _uncollected(bill: _Bill) -> str | None:
    """Stripe's pause_collection behavior that left this renewal invoice uncollected, if any:
    a paused subscription's renewals are voided, left in draft or marked uncollectible without
    a payment attempt."""
    invoice = bill.read
    if invoice.billing_reason != "subscription_cycle" or invoice.attempt_count or invoice.attempted:
        return None
    return _UNCOLLECTED.get(invoice.status or "")


def _pauses(sub: Subscription, bills: Sequence[_Bill], now: int) -> list[_Status]:
    """Pauses of collection: each run of uncollected renewal invoices, from the first of them
    to the next collected one, and a pause still in force."""
    sub_id = sub.id
    billed = sorted(
        (b for b in bills if _period_start(b) is not None),
        key=lambda b: (_period_start(b), b.read.id),
    )
    found: list[_Status] = []
    paid_until: int | None = None
    run: list[_Bill] = []
    for bill in billed:
        if _uncollected(bill) is not None:
            run.append(bill)
            continue
        if run:
            found += _ended_pause(run, bill)
            run = []
        if bill.read.paid_at is not None:
            paid_until = _period_start(bill)
    if not sub.pause_collection and sub.status != "paused":
        if run:  # no longer paused, and not billed since: resumed after the last invoice
            found += _ended_pause(run, None, now)
        return found
    if _paused_since_trial(sub, bills):
        return found  # the trial_end snapshot says so
    retention = now - EVENT_RETENTION_SECONDS
    first_void = _period_start(run[0]) if run else None
    at = min(first_void, retention) if first_void is not None else retention
    at = max(at, paid_until or 0)
    guess = None
    if first_void is None or at != first_void:
        why = "a pause in force: dated at the start of the event retention"
        if first_void is not None:
            why += f" (earlier than its first uncollected invoice, {run[0].read.id})"
        guess = Guess("retention", why)
    status = "paused" if sub.status == "paused" else "pause_collection"
    origin = (sub_id, "pause_collection")
    found.append(_Status(at, status, f"{PREFIX}{sub_id}_pause_collection", origin, guess))
    return found


def _ended_pause(run: Sequence[_Bill], resumed: _Bill | None, now: int = 0) -> list[_Status]:
    first = run[0]
    behavior = _uncollected(first)
    start = _period_start(first) or 0
    ids = f"{first.read.id}" + (f" .. {run[-1].read.id}" if len(run) > 1 else "")
    why = (
        f"{len(run)} renewal invoice(s) left uncollected ({ids}, {behavior}): collection paused "
        "from the first of them; it was paused in the period before"
    )
    pause = {"behavior": behavior, "resumes_at": None}
    origin = (first.read.id, "status")
    found = [
        _Status(
            start, "pause_collection", f"{PREFIX}{first.read.id}_uncollected", origin,
            Guess("voided_pause", why), pause,
        )
    ]  # fmt: skip
    if resumed is not None:
        at = _period_start(resumed) or start
        resume_why = (
            f"collection resumed: dated at the first renewal collected after the pause "
            f"({resumed.read.id}); it resumed in the period before"
        )
        origin = (resumed.read.id, "lines.data.period.start")
        event_id = f"{PREFIX}{resumed.read.id}_resumed"
    else:
        at = max(_period_end(run[-1]) or start, now - EVENT_RETENTION_SECONDS)
        at = min(at, now)
        resume_why = "collection resumed after the last uncollected invoice; no invoice dates it"
        origin = (run[-1].read.id, "period.end")
        event_id = f"{PREFIX}{run[-1].read.id}_resumed"
    found.append(_Status(at, "active", event_id, origin, Guess("voided_pause", resume_why)))
    return found


def _paused_since_trial(sub: Subscription, bills: Sequence[_Bill]) -> bool:
    trial_end = sub.trial_end
    return bool(
        sub.status == "paused"
        and trial_end
        and not sub.pause_collection
        and _paid_after(bills, trial_end) is None
    )


def _first_invoice(bills: Sequence[_Bill]) -> _Bill | None:
    created = [b for b in bills if b.read.billing_reason == "subscription_create"]
    return min(created, key=lambda b: b.read.created or 0) if created else None


def _paid_after(bills: Sequence[_Bill], at: int) -> int | None:
    times = [
        b.read.paid_at
        for b in bills
        if b.read.paid_at is not None and b.read.paid_at >= at and b.read.total != 0
    ]
    return min(times) if times else None


def _period_start(bill: _Bill) -> int | None:
    for _, line in bill.lines:
        if line.period is not None and not line.proration:
            return line.period[0]
    return None


def _period_end(bill: _Bill) -> int | None:
    for _, line in bill.lines:
        if line.period is not None and not line.proration:
            return line.period[1]
    return None


def _latest_invoice(bills: Sequence[_Bill], at: int) -> str | None:
    """The subscription's latest invoice at `at`: the newest one created by then."""
    made = [b for b in bills if (b.read.created or 0) <= at]
    return max(made, key=lambda b: (b.read.created or 0, b.read.id)).read.id if made else None


def _snapshot(
    sub: Obj,
    read: Subscription,
    at: int,
    config: _Config,
    status: _Status,
    period: tuple[int, int] | None,
    latest_invoice: str | None,
    *,
    ended: bool = False,
) -> Obj:
    """The subscription object as it stood at `at`, in the payload's own API shape."""
    then = dict(sub)
    old_shape = is_old_shape(sub)
    current_items = {item.id: sent for sent, item in zip(_sent_items(sub), read.items, strict=True)}
    template = next(iter(current_items.values()), {"object": "subscription_item"})
    items = []
    for item_id, price, quantity, discounts in config.items:
        item = dict(current_items.get(item_id, template))
        item["id"] = item_id
        item["price"] = price
        if "plan" in item:
            item["plan"] = price
        item["quantity"] = quantity
        item["discounts"] = list(discounts)
        if not old_shape and period is not None:
            item["current_period_start"], item["current_period_end"] = period
        items.append(item)
    then["items"] = {**(sub.get("items") or {}), "data": items}
    if old_shape:
        if period is not None:
            then["current_period_start"], then["current_period_end"] = period
        then["discount"] = config.discounts[0] if config.discounts else None
    else:
        then["discounts"] = list(config.discounts)
    paused_collection = status.status == "pause_collection"
    then["status"] = "active" if paused_collection else status.status
    if not paused_collection:
        then["pause_collection"] = None
    elif status.pause is not None:
        then["pause_collection"] = status.pause
    elif not sub.get("pause_collection"):
        then["pause_collection"] = {"behavior": "void", "resumes_at": None}
    if "latest_invoice" in sub or latest_invoice is not None:
        then["latest_invoice"] = latest_invoice
    requested = read.canceled_at is not None and read.canceled_at <= at
    then["canceled_at"] = read.canceled_at if requested else None
    then["cancel_at_period_end"] = read.cancel_at_period_end if ended else requested
    then["ended_at"] = read.ended_at if ended else None
    return then


def _current_status(sub: Obj, read: Subscription) -> str:
    if read.status == "active" and read.pause_collection:
        return "pause_collection"
    return read.status


def _present(
    sub: Obj,
    read: Subscription,
    billing: list[_Change],
    statuses: list[_Status],
    final: _Config,
    now: int,
) -> None:
    """The history ends in the subscription's present state: where the last state rebuilt
    differs from the object, the object's state enters at the start of the event retention (a
    newer change would be a real event), or after the last state rebuilt."""
    if read.ended_at is not None or not statuses:
        return
    dated = [c.at for c in billing if c.at <= now] + [s.at for s in statuses if s.at <= now]
    last_at = max(dated, default=_start(read))
    status = _latest_status(statuses, now)
    config = _latest(billing, now, lambda c: c.at).config
    current = _current_status(sub, read)
    if status.status == current and config.signature() == final.signature():
        return
    at = min(now, max(last_at, now - EVENT_RETENTION_SECONDS))
    why = (
        f"the subscription is {current} ({_described(final)}) but its history rebuilt from "
        f"invoices ends {status.status} ({_described(config)}): its present state is dated at "
        "the start of the event retention"
    )
    sub_id = read.id
    event_id, origin = f"{PREFIX}{sub_id}_present", (sub_id, "status")
    guess = Guess("retention", why)
    statuses.append(_Status(at, current, event_id, origin, guess, sub.get("pause_collection")))
    billing.append(_Change(at, event_id, origin, final, guess))


def synthesize(
    sub: Obj,
    invoices: Iterable[Obj],
    prices: Mapping[str, Obj],
    *,
    now: int,
    api_version: str | None = None,
    discounts: Mapping[str, Obj] | None = None,
) -> Synthesis:
    """The events Stripe would have sent for one subscription, from its object and invoices.

    `invoices` are the subscription's invoices (others are ignored); `prices` resolves price ids
    on invoice lines (current API shape lines carry only the id); `discounts` resolves discount
    ids to the objects an expanded listing gave. Nothing is dated after `now`. An invoice the
    payload readers refuse is left out with a warning; a subscription they refuse raises.
    """
    read = read_subscription(sub)
    sub_id = read.id
    warnings: list[str] = []
    mine = []
    for raw in invoices:
        try:
            bill = _Bill.of(raw)
        except PayloadError as problem:
            if subscription_of_safe(raw) == sub_id:
                warnings.append(f"{sub_id}: invoice {raw.get('id')} refused: {problem}")
            continue
        if bill.read.subscription == sub_id:
            mine.append(bill)
    resolver = _Discounts(discounts or {})
    billing, periods = _billing_changes(sub, read, mine, prices, resolver, now, warnings)
    statuses, failures, recoveries = _status_timeline(read, mine, now)
    _present(sub, read, billing, statuses, _current_config(sub, read, resolver), now)
    if resolver.unknown:
        names = ", ".join(resolver.unknown)
        warnings.append(
            f"{sub_id}: discount {names}: terms not available (Stripe serves a discount only "
            "expanded inside its subscription or invoice); its MRR is counted without it"
        )
    builder = _Builder(sub, api_version)

    moments: list[tuple[int, str, tuple[str, str], Guess | None]] = []  # (at, id, origin, guess)
    moments += [(c.at, c.event_id, c.origin, c.guess) for c in billing]
    moments += [(s.at, s.event_id, s.origin, s.guess) for s in statuses]
    canceled_at, ended_at = read.canceled_at, read.ended_at
    if canceled_at is not None and (ended_at is None or canceled_at < ended_at):
        moments.append(
            (canceled_at, f"{PREFIX}{sub_id}_canceled_at", (sub_id, "canceled_at"), None)
        )
    moments.sort(key=lambda m: (m[0], 0 if m[1].endswith("_start_date") else 1, m[1]))

    seen: set[str] = set()
    for at, event_id, origin, guess in moments:
        if at > now or event_id in seen or (ended_at is not None and at >= ended_at):
            continue
        seen.add(event_id)
        config = _latest(billing, at, lambda c: c.at).config
        status = _latest_status(statuses, at)
        kind = (
            "customer.subscription.created"
            if event_id.endswith("_start_date")
            else "customer.subscription.updated"
        )
        latest = _latest_invoice(mine, at)
        if event_id.endswith("_present"):
            latest = object_id(sub.get("latest_invoice")) or latest
        snapshot = _snapshot(sub, read, at, config, status, _period_at(periods, at), latest)
        builder.add(event_id, kind, at, snapshot, origin, guess)

    for bill, failed_at in failures:
        if failed_at > now or (ended_at is not None and failed_at > ended_at):
            continue
        builder.add(
            f"{PREFIX}{bill.read.id}_attempt_count",
            "invoice.payment_failed",
            failed_at,
            _as_of_failure(bill),
            (bill.read.id, "attempt_count"),
        )
    metered = any(item.price.is_metered for item in read.items)
    recovering = {b.read.id for b in recoveries}
    for bill in mine:
        paid_at = bill.read.paid_at
        recovered = _failed_at(bill.read) is not None or bill.read.id in recovering
        if paid_at is None or paid_at > now or not (recovered or metered):
            continue
        builder.add(
            f"{PREFIX}{bill.read.id}_paid_at",
            "invoice.paid",
            paid_at,
            bill.raw,
            (bill.read.id, "status_transitions.paid_at"),
        )

    if ended_at is not None and ended_at <= now:
        at = ended_at
        config = _latest(billing, at, lambda c: c.at).config
        last = _latest_status(statuses, at)
        ending = replace(last, status=read.status or "canceled")
        snapshot = _snapshot(
            sub, read, at, config, ending, _period_at(periods, at), _latest_invoice(mine, at),
            ended=True,
        )  # fmt: skip
        builder.add(
            f"{PREFIX}{sub_id}_ended_at",
            "customer.subscription.deleted",
            at,
            snapshot,
            (sub_id, "ended_at"),
        )

    builder.events.sort(key=lambda e: (e["created"], e["id"]))
    return Synthesis(builder.events, warnings, tuple(resolver.unknown))


def subscription_of_safe(raw: Mapping[str, Any]) -> str | None:
    """The subscription an invoice names, read without the checks that refused it."""
    parent = (raw.get("parent") or {}) if isinstance(raw.get("parent"), Mapping) else {}
    details = parent.get("subscription_details") or {}
    return object_id(raw.get("subscription")) or object_id(details.get("subscription"))


def _latest(changes: Sequence[_Change], at: int, when: Any) -> _Change:
    found = changes[0]
    for change in changes:
        if when(change) <= at:
            found = change
    return found


def _latest_status(statuses: Sequence[_Status], at: int) -> _Status:
    found = statuses[0]
    for status in sorted(statuses, key=lambda s: (s.at, s.event_id)):
        if status.at <= at:
            found = status
    return found


def _period_at(periods: Sequence[tuple[int, int]], at: int) -> tuple[int, int] | None:
    found = None
    for start, end in sorted(periods):
        if start <= at:
            found = (start, end)
    return found


def cutoffs_from_real_events(events: Iterable[Mapping[str, Any]]) -> dict[str, int | None]:
    """Per subscription, the time from which real events are authoritative.

    None means real events include the subscription's creation, so they hold its whole history
    and nothing synthetic is needed.
    """
    cutoffs: dict[str, int | None] = {}
    for event in events:
        if is_synthetic(str(event.get("id", ""))):
            continue
        obj = (event.get("data") or {}).get("object") or {}
        sub_id = subscription_of(obj)
        if sub_id is None:
            continue
        if event.get("type") == "customer.subscription.created":
            cutoffs[sub_id] = None
        elif sub_id not in cutoffs or cutoffs[sub_id] is not None:
            known = cutoffs.get(sub_id)
            created = int(event.get("created") or 0)
            cutoffs[sub_id] = created if known is None else min(known, created)
    return cutoffs


def drop_overlapping(events: Iterable[Obj], cutoffs: Mapping[str, int | None]) -> list[Obj]:
    """Synthetic events only fill the time before a subscription's first real event.

    Real events (webhook or events API) are authoritative from the first one on; a synthetic
    event never contradicts them, so a backfill over ingested history changes no number.
    """
    kept = []
    for event in events:
        sub_id = subscription_of(event["data"]["object"])
        if sub_id is not None and sub_id in cutoffs:
            cutoff = cutoffs[sub_id]
            if cutoff is None or int(event["created"]) >= cutoff:
                continue
            origin = event["backfill"]
            if origin["field"] == "items" or origin.get("guess") == "retention":
                # Read off today's object: the state the real events already carry, from a
                # time the objects cannot tell.
                continue
        kept.append(event)
    return kept


def start_at(events: Sequence[Obj], since: int) -> list[Obj]:
    """Only history from `since`: a subscription running then enters with its state at `since`."""
    later = [e for e in events if int(e["created"]) >= since]
    earlier = [
        e
        for e in events
        if int(e["created"]) < since and e["type"].startswith("customer.subscription.")
    ]
    if not earlier:
        return later
    last = max(earlier, key=lambda e: (e["created"], e["id"]))
    if last["type"].endswith(".deleted"):
        return later
    obj = last["data"]["object"]
    opening = dict(last)
    opening["id"] = f"{PREFIX}{obj['id']}_since_{since}"
    opening["type"] = "customer.subscription.created"
    opening["created"] = since
    opening["backfill"] = {"object": obj["id"], "field": f"state at --since {since}"}
    return sorted([opening, *later], key=lambda e: (e["created"], e["id"]))
