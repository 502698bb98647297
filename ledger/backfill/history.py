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
from dataclasses import dataclass, field
from typing import Any

from ledger.rules.payloads import (
    Invoice,
    InvoiceLine,
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
    "Synthesis",
    "cutoffs_from_real_events",
    "drop_overlapping",
    "is_synthetic",
    "start_at",
    "synthesize",
]

EVENT_RETENTION_SECONDS = 30 * 86_400
PREFIX = "bf_"

Obj = dict[str, Any]


def is_synthetic(event_id: str) -> bool:
    return event_id.startswith(PREFIX)


@dataclass(frozen=True, slots=True)
class Synthesis:
    events: list[Obj]
    warnings: list[str] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class _Config:
    """What a subscription bills at one time: its items and discounts."""

    items: tuple[tuple[str, Obj, int, tuple[Any, ...]], ...]  # (item id, price, qty, discounts)
    discounts: tuple[Any, ...]

    def signature(self) -> tuple[Any, ...]:
        return (
            tuple(sorted((i, str(object_id(p)), q) for i, p, q, _ in self.items)),
            tuple(sorted(_discount_id(d) for d in self.discounts)),
        )


@dataclass(frozen=True, slots=True)
class _Change:
    at: int
    event_id: str
    origin: tuple[str, str]  # (object id, field)
    config: _Config


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


def _discount_id(discount: Any) -> str:
    read = read_discount(discount)
    return read.id if read is not None else str(discount)


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
            warnings.append(f"{bill.read.id}: line {line.id} has an unknown price")
            continue
        items.append(
            (line.subscription_item, price, line.quantity or 1, _ids(sent.get("discounts")))
        )
        period = period or line.period
    if not items or period is None:
        return None
    discounts = _ids(bill.raw.get("discounts"))
    if not discounts and bill.raw.get("discount"):
        discounts = (bill.raw["discount"],)
    return period[0], period[1], _Config(tuple(items), discounts)


def _ids(values: Any) -> tuple[Any, ...]:
    return tuple(values) if isinstance(values, list) else ()


def _sent_items(sub: Mapping[str, Any]) -> list[Obj]:
    return list((sub.get("items") or {}).get("data") or [])


def _current_config(sub: Obj, read: Subscription) -> _Config:
    items = []
    for sent, item in zip(_sent_items(sub), read.items, strict=True):
        price = _price_object(sent) or {}
        items.append((item.id, price, item.quantity or 1, _ids(sent.get("discounts"))))
    discounts = _ids(sub.get("discounts"))
    if not discounts and sub.get("discount"):
        discounts = (sub["discount"],)
    return _Config(tuple(items), discounts)


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


def _billing_changes(
    sub: Obj,
    read: Subscription,
    bills: Sequence[_Bill],
    prices: Mapping[str, Obj],
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
        found = _invoice_config(bill, prices, current_prices, warnings)
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
            changes.append(_dated_change(bills, previous_at, period_start, invoice_id, config))
        previous, previous_at = config, period_start
    final = _current_config(sub, read)
    if previous is None:
        changes.append(created(final))
    elif final.signature() != previous.signature() and read.ended_at is None:
        # Changed after the last invoice: a proration line dates it; without one, the change
        # is older than the event retention (a newer one would be a real event).
        proration = _first_proration(bills, previous_at, now)
        if proration is not None:
            at, line_id = proration
            changes.append(
                _Change(at, f"{PREFIX}{line_id}_period_start", (line_id, "period.start"), final)
            )
        else:
            at = max(previous_at, now - EVENT_RETENTION_SECONDS)
            changes.append(_Change(at, f"{PREFIX}{sub_id}_items", (sub_id, "items"), final))
    return changes, periods


def _dated_change(
    bills: Sequence[_Bill], after: int, until: int, invoice_id: str, config: _Config
) -> _Change:
    proration = _first_proration(bills, after, until)
    if proration is not None:
        at, line_id = proration
        return _Change(at, f"{PREFIX}{line_id}_period_start", (line_id, "period.start"), config)
    return _Change(
        until, f"{PREFIX}{invoice_id}_lines", (invoice_id, "lines.data.period.start"), config
    )


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

    def add(self, event_id: str, kind: str, at: int, obj: Obj, origin: tuple[str, str]) -> None:
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
                "backfill": {"object": origin[0], "field": origin[1]},
            }
        )


def _status_timeline(
    sub: Subscription, bills: Sequence[_Bill], now: int
) -> tuple[list[tuple[int, str, str, tuple[str, str]]], list[tuple[_Bill, int]]]:
    """Status changes (at, status, event id, origin) and the failed invoices with their time."""
    sub_id = sub.id
    start = _start(sub)
    trial_end = sub.trial_end
    changes: list[tuple[int, str, str, tuple[str, str]]] = []
    in_trial = trial_end is not None and trial_end > start
    first = _first_invoice(bills)
    incomplete = (
        not in_trial
        and (sub.collection_method or "charge_automatically") == "charge_automatically"
        and first is not None
        and (first.read.paid_at is None or _failed_at(first.read) is not None)
    )
    initial = "trialing" if in_trial else "incomplete" if incomplete else "active"
    changes.append((start, initial, f"{PREFIX}{sub_id}_start_date", (sub_id, "start_date")))
    if trial_end is not None and in_trial and trial_end <= now:
        paused = sub.status == "paused" and _paid_after(bills, trial_end) is None
        changes.append(
            (
                trial_end,
                "paused" if paused else "active",
                f"{PREFIX}{sub_id}_trial_end",
                (sub_id, "trial_end"),
            )
        )
    failures: list[tuple[_Bill, int]] = []
    for bill in bills:
        invoice = bill.read
        failed_at = _failed_at(invoice)
        if failed_at is None:
            continue
        failures.append((bill, failed_at))
        paid = (invoice.id, "status_transitions.paid_at")
        if incomplete and bill is first:
            if invoice.paid_at is not None:
                changes.append(
                    (invoice.paid_at, "active", f"{PREFIX}{invoice.id}_paid_at_status", paid)
                )
            continue
        origin = (invoice.id, "status_transitions.finalized_at")
        changes.append((failed_at, "past_due", f"{PREFIX}{invoice.id}_finalized_at", origin))
        if invoice.paid_at is not None:
            changes.append(
                (invoice.paid_at, "active", f"{PREFIX}{invoice.id}_paid_at_status", paid)
            )
    if incomplete and first is not None and _failed_at(first.read) is None:
        paid_at = first.read.paid_at
        if paid_at is not None and paid_at > start:
            inv_id = first.read.id
            origin = (inv_id, "status_transitions.paid_at")
            changes.append((paid_at, "active", f"{PREFIX}{inv_id}_paid_at_status", origin))
    pause = _pause_started(sub, bills, now)
    if pause is not None:
        status = "paused" if sub.status == "paused" else "pause_collection"
        changes.append(
            (pause, status, f"{PREFIX}{sub_id}_pause_collection", (sub_id, "pause_collection"))
        )
    changes.sort(key=lambda c: (c[0], c[2]))
    return changes, failures


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


def _pause_started(sub: Subscription, bills: Sequence[_Bill], now: int) -> int | None:
    """When a pause still in force began (an ended pause leaves no trace in the objects)."""
    if not sub.pause_collection and sub.status != "paused":
        return None
    trial_end = sub.trial_end
    paused_at_trial_end = (
        sub.status == "paused"
        and trial_end
        and not sub.pause_collection
        and _paid_after(bills, trial_end) is None
    )
    if paused_at_trial_end:
        return None  # the trial_end snapshot says so
    billed = sorted(
        (b for b in bills if _period_start(b) is not None), key=lambda b: _period_start(b) or 0
    )
    paid_until = None
    unpaid_from = None
    for bill in billed:
        if bill.read.paid_at is not None:
            paid_until, unpaid_from = _period_start(bill), None
        elif bill.read.status in ("void", "draft", "uncollectible") and unpaid_from is None:
            unpaid_from = _period_start(bill)
    if unpaid_from is not None:
        return unpaid_from
    return max(paid_until or 0, now - EVENT_RETENTION_SECONDS)


def _period_start(bill: _Bill) -> int | None:
    for _, line in bill.lines:
        if line.period is not None and not line.proration:
            return line.period[0]
    return None


def _snapshot(
    sub: Obj,
    read: Subscription,
    at: int,
    config: _Config,
    status: str,
    period: tuple[int, int] | None,
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
    paused_collection = status == "pause_collection"
    then["status"] = "active" if paused_collection else status
    if not paused_collection:
        then["pause_collection"] = None
    requested = read.canceled_at is not None and read.canceled_at <= at
    then["canceled_at"] = read.canceled_at if requested else None
    then["cancel_at_period_end"] = read.cancel_at_period_end if ended else requested
    then["ended_at"] = read.ended_at if ended else None
    return then


def synthesize(
    sub: Obj,
    invoices: Iterable[Obj],
    prices: Mapping[str, Obj],
    *,
    now: int,
    api_version: str | None = None,
) -> Synthesis:
    """The events Stripe would have sent for one subscription, from its object and invoices.

    `invoices` are the subscription's invoices (others are ignored); `prices` resolves price ids
    on invoice lines (current API shape lines carry only the id). Nothing is dated after `now`.
    """
    read = read_subscription(sub)
    sub_id = read.id
    mine = [bill for bill in map(_Bill.of, invoices) if bill.read.subscription == sub_id]
    warnings: list[str] = []
    billing, periods = _billing_changes(sub, read, mine, prices, now, warnings)
    statuses, failures = _status_timeline(read, mine, now)
    builder = _Builder(sub, api_version)

    moments: list[tuple[int, str, tuple[str, str], str]] = []  # (at, id, origin, kind)
    moments += [(c.at, c.event_id, c.origin, "billing") for c in billing]
    moments += [(at, eid, origin, "status") for at, _, eid, origin in statuses]
    canceled_at, ended_at = read.canceled_at, read.ended_at
    if canceled_at is not None and (ended_at is None or canceled_at < ended_at):
        moments.append(
            (canceled_at, f"{PREFIX}{sub_id}_canceled_at", (sub_id, "canceled_at"), "cancel")
        )
    moments.sort(key=lambda m: (m[0], 0 if m[1].endswith("_start_date") else 1, m[1]))

    seen: set[str] = set()
    for at, event_id, origin, _ in moments:
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
        snapshot = _snapshot(sub, read, at, config, status, _period_at(periods, at))
        builder.add(event_id, kind, at, snapshot, origin)

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
    for bill in mine:
        paid_at = bill.read.paid_at
        recovered = _failed_at(bill.read) is not None
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
        snapshot = _snapshot(
            sub,
            read,
            at,
            config,
            read.status or "canceled",
            _period_at(periods, at),
            ended=True,
        )
        builder.add(
            f"{PREFIX}{sub_id}_ended_at",
            "customer.subscription.deleted",
            at,
            snapshot,
            (sub_id, "ended_at"),
        )

    builder.events.sort(key=lambda e: (e["created"], e["id"]))
    return Synthesis(builder.events, warnings)


def _latest(changes: Sequence[_Change], at: int, when: Any) -> _Change:
    found = changes[0]
    for change in changes:
        if when(change) <= at:
            found = change
    return found


def _latest_status(statuses: Sequence[tuple[int, str, str, tuple[str, str]]], at: int) -> str:
    found = statuses[0][1]
    for when, status, _, _ in statuses:
        if when <= at:
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
            if event["backfill"]["field"] == "items":
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
