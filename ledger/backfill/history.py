"""History rebuilt from Stripe objects: a subscription and its invoices -> synthetic events.

Stripe keeps events for 30 days; subscriptions and invoices are kept for ever. The backfill
turns the objects into the events Stripe would have sent (same types, same object shapes, in
the payload's own API shape) so they go through the same rules as webhooks. Pure: plain dicts
in, event dicts out.

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

__all__ = [
    "EVENT_RETENTION_SECONDS",
    "Synthesis",
    "cutoffs_from_real_events",
    "drop_overlapping",
    "is_synthetic",
    "start_at",
    "subscription_of",
    "synthesize",
]

EVENT_RETENTION_SECONDS = 30 * 86_400
PREFIX = "bf_"

Obj = dict[str, Any]
ItemKey = tuple[str, str, int]  # (subscription item id, price id, quantity)


def is_synthetic(event_id: str) -> bool:
    return event_id.startswith(PREFIX)


def subscription_of(obj: Mapping[str, Any]) -> str | None:
    """The subscription an event object concerns (both API shapes)."""
    kind = obj.get("object")
    if kind == "subscription":
        value: Any = obj.get("id")
    elif kind == "invoice":
        value = obj.get("subscription")
        if value is None:
            parent = obj.get("parent") or {}
            value = (parent.get("subscription_details") or {}).get("subscription")
    else:
        value = obj.get("subscription")
    if isinstance(value, dict):
        value = value.get("id")
    return value if isinstance(value, str) else None


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
            tuple(sorted((i, str(p.get("id")), q) for i, p, q, _ in self.items)),
            tuple(sorted(_discount_id(d) for d in self.discounts)),
        )


@dataclass(frozen=True, slots=True)
class _Change:
    at: int
    event_id: str
    origin: tuple[str, str]  # (object id, field)
    config: _Config


def _discount_id(discount: Any) -> str:
    return str(discount.get("id")) if isinstance(discount, dict) else str(discount)


def _is_old_shape(sub: Mapping[str, Any]) -> bool:
    return sub.get("current_period_start") is not None


def _line_subscription_item(line: Mapping[str, Any]) -> str | None:
    parent = line.get("parent") or {}
    details = parent.get("subscription_item_details") or {}
    value = details.get("subscription_item") or line.get("subscription_item")
    return value if isinstance(value, str) else None


def _line_is_proration(line: Mapping[str, Any]) -> bool:
    parent = line.get("parent") or {}
    for key in ("subscription_item_details", "invoice_item_details"):
        details = parent.get(key) or {}
        if details.get("proration"):
            return True
    return bool(line.get("proration"))


def _line_price(
    line: Mapping[str, Any], prices: Mapping[str, Obj], current: Mapping[str, Obj]
) -> Obj | None:
    price: Any = line.get("price") or line.get("plan")
    if price is None:
        details = (line.get("pricing") or {}).get("price_details") or {}
        price = details.get("price")
    if isinstance(price, dict):
        return price
    if isinstance(price, str):
        return prices.get(price) or current.get(price)
    return None


def _period(line: Mapping[str, Any]) -> tuple[int, int] | None:
    period = line.get("period") or {}
    start, end = period.get("start"), period.get("end")
    return (int(start), int(end)) if start is not None and end is not None else None


def _invoice_config(
    invoice: Mapping[str, Any],
    prices: Mapping[str, Obj],
    current: Mapping[str, Obj],
    warnings: list[str],
) -> tuple[int, int, _Config] | None:
    """The items billed for a full period by a subscription invoice, with that period."""
    items: list[tuple[str, Obj, int, tuple[Any, ...]]] = []
    period: tuple[int, int] | None = None
    for line in (invoice.get("lines") or {}).get("data") or []:
        item_id = _line_subscription_item(line)
        if item_id is None or _line_is_proration(line):
            continue
        price = _line_price(line, prices, current)
        if price is None:
            warnings.append(f"{invoice.get('id')}: line {line.get('id')} has an unknown price")
            continue
        items.append((item_id, price, int(line.get("quantity") or 1), _ids(line.get("discounts"))))
        period = period or _period(line)
    if not items or period is None:
        return None
    discounts = _ids(invoice.get("discounts"))
    if not discounts and invoice.get("discount"):
        discounts = (invoice["discount"],)
    return period[0], period[1], _Config(tuple(items), discounts)


def _ids(values: Any) -> tuple[Any, ...]:
    return tuple(values) if isinstance(values, list) else ()


def _current_config(sub: Mapping[str, Any]) -> _Config:
    items = []
    for item in (sub.get("items") or {}).get("data") or []:
        price = item.get("price") or item.get("plan") or {}
        discounts = _ids(item.get("discounts"))
        items.append((str(item.get("id")), price, int(item.get("quantity") or 1), discounts))
    discounts = _ids(sub.get("discounts"))
    if not discounts and sub.get("discount"):
        discounts = (sub["discount"],)
    return _Config(tuple(items), discounts)


def _first_proration(invoices: Sequence[Obj], after: int, until: int) -> tuple[int, str] | None:
    """When a change was made mid-period: the start of the first charged proration line."""
    found: tuple[int, str] | None = None
    for invoice in invoices:
        for line in (invoice.get("lines") or {}).get("data") or []:
            period = _period(line)
            if not _line_is_proration(line) or period is None or int(line.get("amount", 0)) <= 0:
                continue
            if after < period[0] <= until and (found is None or period[0] < found[0]):
                found = (period[0], str(line.get("id")))
    return found


def _billing_changes(
    sub: Obj, invoices: Sequence[Obj], prices: Mapping[str, Obj], now: int, warnings: list[str]
) -> tuple[list[_Change], list[tuple[int, int]]]:
    """Each time the billed items or discounts changed, and the billed periods."""
    current_prices = {
        str((i.get("price") or {}).get("id")): i.get("price") or {}
        for i in (sub.get("items") or {}).get("data") or []
    }
    observed = []
    for invoice in invoices:
        found = _invoice_config(invoice, prices, current_prices, warnings)
        if found is not None:
            observed.append((found[0], found[1], str(invoice["id"]), found[2]))
    observed.sort(key=lambda o: (o[0], o[2]))
    changes: list[_Change] = []
    periods: list[tuple[int, int]] = []
    start = int(sub.get("start_date") or sub.get("created") or 0)
    previous: _Config | None = None
    previous_at = start
    for period_start, period_end, invoice_id, config in observed:
        periods.append((period_start, period_end))
        if previous is None:
            changes.append(
                _Change(start, f"{PREFIX}{sub['id']}_start_date", (sub["id"], "start_date"), config)
            )
        elif config.signature() != previous.signature():
            changes.append(_dated_change(invoices, previous_at, period_start, invoice_id, config))
        previous, previous_at = config, period_start
    final = _current_config(sub)
    if previous is None:
        changes.append(
            _Change(start, f"{PREFIX}{sub['id']}_start_date", (sub["id"], "start_date"), final)
        )
    elif final.signature() != previous.signature() and sub.get("ended_at") is None:
        # Changed after the last invoice: a proration line dates it; without one, the change
        # is older than the event retention (a newer one would be a real event).
        proration = _first_proration(invoices, previous_at, now)
        if proration is not None:
            at, line_id = proration
            changes.append(
                _Change(at, f"{PREFIX}{line_id}_period_start", (line_id, "period.start"), final)
            )
        else:
            at = max(previous_at, now - EVENT_RETENTION_SECONDS)
            changes.append(_Change(at, f"{PREFIX}{sub['id']}_items", (sub["id"], "items"), final))
    return changes, periods


def _dated_change(
    invoices: Sequence[Obj], after: int, until: int, invoice_id: str, config: _Config
) -> _Change:
    proration = _first_proration(invoices, after, until)
    if proration is not None:
        at, line_id = proration
        return _Change(at, f"{PREFIX}{line_id}_period_start", (line_id, "period.start"), config)
    return _Change(
        until, f"{PREFIX}{invoice_id}_lines", (invoice_id, "lines.data.period.start"), config
    )


def _transitions(invoice: Mapping[str, Any]) -> Mapping[str, Any]:
    return invoice.get("status_transitions") or {}


def _failed_at(invoice: Mapping[str, Any]) -> int | None:
    """When an invoice's first automatic payment attempt failed, if it did."""
    attempts = int(invoice.get("attempt_count") or 0)
    paid_at = _transitions(invoice).get("paid_at")
    failed = (
        attempts > 1 if paid_at is not None else attempts >= 1 and bool(invoice.get("attempted"))
    )
    if not failed or invoice.get("status") == "void":
        return None
    at = _transitions(invoice).get("finalized_at") or invoice.get("created")
    return int(at) if at is not None else None


def _as_of_failure(invoice: Obj) -> Obj:
    """The invoice as it was when its payment failed: open, nothing paid."""
    then = dict(invoice)
    then["status"] = "open"
    then["paid"] = False
    then["amount_paid"] = 0
    then["amount_remaining"] = then.get("amount_due", 0)
    then["status_transitions"] = {**_transitions(invoice), "paid_at": None}
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
    sub: Obj, invoices: Sequence[Obj], now: int
) -> tuple[list[tuple[int, str, str, tuple[str, str]]], list[tuple[Obj, int]]]:
    """Status changes (at, status, event id, origin) and the failed invoices with their time."""
    sub_id = str(sub["id"])
    start = int(sub.get("start_date") or sub.get("created") or 0)
    trial_end = int(sub["trial_end"]) if sub.get("trial_end") is not None else None
    changes: list[tuple[int, str, str, tuple[str, str]]] = []
    in_trial = trial_end is not None and trial_end > start
    first = _first_invoice(invoices)
    incomplete = (
        not in_trial
        and sub.get("collection_method", "charge_automatically") == "charge_automatically"
        and first is not None
        and (_transitions(first).get("paid_at") is None or _failed_at(first) is not None)
    )
    initial = "trialing" if in_trial else "incomplete" if incomplete else "active"
    changes.append((start, initial, f"{PREFIX}{sub_id}_start_date", (sub_id, "start_date")))
    if trial_end is not None and in_trial and trial_end <= now:
        paused = sub.get("status") == "paused" and _paid_after(invoices, trial_end) is None
        changes.append(
            (
                trial_end,
                "paused" if paused else "active",
                f"{PREFIX}{sub_id}_trial_end",
                (sub_id, "trial_end"),
            )
        )
    failures: list[tuple[Obj, int]] = []
    for invoice in invoices:
        failed_at = _failed_at(invoice)
        if failed_at is None:
            continue
        failures.append((invoice, failed_at))
        inv_id = str(invoice["id"])
        if incomplete and invoice is first:
            paid_at = _transitions(invoice).get("paid_at")
            if paid_at is not None:
                origin = (inv_id, "status_transitions.paid_at")
                changes.append((int(paid_at), "active", f"{PREFIX}{inv_id}_paid_at_status", origin))
            continue
        origin = (inv_id, "status_transitions.finalized_at")
        changes.append((failed_at, "past_due", f"{PREFIX}{inv_id}_finalized_at", origin))
        paid_at = _transitions(invoice).get("paid_at")
        if paid_at is not None:
            origin = (inv_id, "status_transitions.paid_at")
            changes.append((int(paid_at), "active", f"{PREFIX}{inv_id}_paid_at_status", origin))
    if incomplete and first is not None and _failed_at(first) is None:
        paid_at = _transitions(first).get("paid_at")
        if paid_at is not None and int(paid_at) > start:
            inv_id = str(first["id"])
            origin = (inv_id, "status_transitions.paid_at")
            changes.append((int(paid_at), "active", f"{PREFIX}{inv_id}_paid_at_status", origin))
    pause = _pause_started(sub, invoices, now)
    if pause is not None:
        status = "paused" if sub.get("status") == "paused" else "pause_collection"
        changes.append(
            (pause, status, f"{PREFIX}{sub_id}_pause_collection", (sub_id, "pause_collection"))
        )
    changes.sort(key=lambda c: (c[0], c[2]))
    return changes, failures


def _first_invoice(invoices: Sequence[Obj]) -> Obj | None:
    created = [i for i in invoices if i.get("billing_reason") == "subscription_create"]
    return min(created, key=lambda i: int(i.get("created") or 0)) if created else None


def _paid_after(invoices: Sequence[Obj], at: int) -> int | None:
    times = [
        int(p)
        for i in invoices
        if (p := _transitions(i).get("paid_at")) is not None and int(p) >= at and i.get("total", 1)
    ]
    return min(times) if times else None


def _pause_started(sub: Obj, invoices: Sequence[Obj], now: int) -> int | None:
    """When a pause still in force began (an ended pause leaves no trace in the objects)."""
    if not sub.get("pause_collection") and sub.get("status") != "paused":
        return None
    if sub.get("status") == "paused" and sub.get("trial_end") and not sub.get("pause_collection"):
        trial_end = int(sub["trial_end"])
        if _paid_after(invoices, trial_end) is None:
            return None  # paused at trial end: the trial_end snapshot says so
    billed = sorted(
        (i for i in invoices if _period_start(i) is not None), key=lambda i: _period_start(i) or 0
    )
    paid_until = None
    unpaid_from = None
    for invoice in billed:
        if _transitions(invoice).get("paid_at") is not None:
            paid_until, unpaid_from = _period_start(invoice), None
        elif invoice.get("status") in ("void", "draft", "uncollectible") and unpaid_from is None:
            unpaid_from = _period_start(invoice)
    if unpaid_from is not None:
        return unpaid_from
    return max(paid_until or 0, now - EVENT_RETENTION_SECONDS)


def _period_start(invoice: Mapping[str, Any]) -> int | None:
    for line in (invoice.get("lines") or {}).get("data") or []:
        period = _period(line)
        if period is not None and not _line_is_proration(line):
            return period[0]
    return None


def _snapshot(
    sub: Obj,
    at: int,
    config: _Config,
    status: str,
    period: tuple[int, int] | None,
    *,
    ended: bool = False,
) -> Obj:
    """The subscription object as it stood at `at`, in the payload's own API shape."""
    then = dict(sub)
    old_shape = _is_old_shape(sub)
    current_items = {str(i.get("id")): i for i in (sub.get("items") or {}).get("data") or []}
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
    canceled_at = sub.get("canceled_at")
    requested = canceled_at is not None and int(canceled_at) <= at
    then["canceled_at"] = canceled_at if requested else None
    then["cancel_at_period_end"] = bool(sub.get("cancel_at_period_end")) if ended else requested
    then["ended_at"] = sub.get("ended_at") if ended else None
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
    sub_id = str(sub["id"])
    mine = [i for i in invoices if subscription_of(i) == sub_id]
    warnings: list[str] = []
    billing, periods = _billing_changes(sub, mine, prices, now, warnings)
    statuses, failures = _status_timeline(sub, mine, now)
    builder = _Builder(sub, api_version)

    moments: list[tuple[int, str, tuple[str, str], str]] = []  # (at, id, origin, kind)
    moments += [(c.at, c.event_id, c.origin, "billing") for c in billing]
    moments += [(at, eid, origin, "status") for at, _, eid, origin in statuses]
    canceled_at, ended_at = sub.get("canceled_at"), sub.get("ended_at")
    if canceled_at is not None and (ended_at is None or int(canceled_at) < int(ended_at)):
        moments.append(
            (int(canceled_at), f"{PREFIX}{sub_id}_canceled_at", (sub_id, "canceled_at"), "cancel")
        )
    moments.sort(key=lambda m: (m[0], 0 if m[1].endswith("_start_date") else 1, m[1]))

    seen: set[str] = set()
    for at, event_id, origin, _ in moments:
        if at > now or event_id in seen or (ended_at is not None and at >= int(ended_at)):
            continue
        seen.add(event_id)
        config = _latest(billing, at, lambda c: c.at).config
        status = _latest_status(statuses, at)
        kind = (
            "customer.subscription.created"
            if event_id.endswith("_start_date")
            else "customer.subscription.updated"
        )
        snapshot = _snapshot(sub, at, config, status, _period_at(periods, at))
        builder.add(event_id, kind, at, snapshot, origin)

    for invoice, failed_at in failures:
        if failed_at > now or (ended_at is not None and failed_at > int(ended_at)):
            continue
        origin = (str(invoice["id"]), "attempt_count")
        builder.add(
            f"{PREFIX}{invoice['id']}_attempt_count",
            "invoice.payment_failed",
            failed_at,
            _as_of_failure(invoice),
            origin,
        )
    for invoice in mine:
        paid_at = _transitions(invoice).get("paid_at")
        recovered = _failed_at(invoice) is not None
        if paid_at is None or int(paid_at) > now or not (recovered or _has_metered(sub)):
            continue
        origin = (str(invoice["id"]), "status_transitions.paid_at")
        builder.add(
            f"{PREFIX}{invoice['id']}_paid_at",
            "invoice.paid",
            int(paid_at),
            invoice,
            origin,
        )

    if ended_at is not None and int(ended_at) <= now:
        at = int(ended_at)
        config = _latest(billing, at, lambda c: c.at).config
        snapshot = _snapshot(
            sub,
            at,
            config,
            str(sub.get("status") or "canceled"),
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


def _has_metered(sub: Mapping[str, Any]) -> bool:
    for item in (sub.get("items") or {}).get("data") or []:
        price = item.get("price") or item.get("plan") or {}
        if (price.get("recurring") or price).get("usage_type") == "metered":
            return True
    return False


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
