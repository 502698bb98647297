"""Stripe as the judge: each subscription's live object against the ledger in effect (pure).

The live figures come from the same rules as every ledger entry: the live object is made into
the event `mrr reconcile --fix` would store (`reconciliation_event`, dated now) and replayed
alone through `ledger.rules.timeline`, so a fix gives the ledger exactly the figures compared
here. A difference is then explained by what the inbox holds for the subscription (`Clues`).
The Stripe reads are `workers/reconcile.py`; the database side `reconcile_store.py`.
"""

from __future__ import annotations

import enum
import hashlib
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from ledger.rules.events import parse_event
from ledger.rules.money import to_major
from ledger.rules.payloads import PayloadError, is_old_shape, read_subscription
from ledger.rules.pricing import MissingReference, Standing, standing_of_status
from ledger.rules.timeline import References, replay_customer

__all__ = [
    "FIELDS",
    "PREFIX",
    "SOURCE",
    "Cause",
    "Clues",
    "Difference",
    "InLedger",
    "Live",
    "compare",
    "customer_discount_event",
    "difference",
    "is_reconciliation",
    "likely_cause",
    "live_figures",
    "reconciliation_event",
]

PREFIX = "rc_"
SOURCE = "reconcile"  # the inbox `source` of reconciliation events
NOT_COUNTED = "none"  # the ledger's standing for a subscription with no MRR in effect
_ENDED_STATUSES = ("canceled", "incomplete_expired")
# Fields of a subscription that date a change of it: the newest is when it last changed, as far
# as the object can tell (a change of price or quantity leaves no date on the object).
_DATED_FIELDS = ("start_date", "current_period_start", "trial_end", "canceled_at", "ended_at")

Obj = dict[str, Any]
FIELDS = (
    "subscription_id", "customer_id", "currency",
    "ledger_standing", "ledger_mrr", "ledger_delinquent_mrr",
    "stripe_standing", "stripe_mrr", "stripe_delinquent_mrr",
    "cause", "detail",
)  # fmt: skip


def is_reconciliation(event_id: str) -> bool:
    return event_id.startswith(PREFIX)


def _digest(obj: Mapping[str, Any]) -> str:
    text = json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _event(event_id: str, kind: str, obj: Obj, now: int, api_version: str) -> Obj:
    return {
        "id": event_id,
        "object": "event",
        "type": kind,
        "created": int(now),
        "api_version": api_version,
        "livemode": bool(obj.get("livemode", False)),
        "pending_webhooks": 0,
        "request": {"id": None, "idempotency_key": None},
        "data": {"object": obj},
        "reconcile": {
            "object": obj.get("id"),
            "why": "Stripe's live object, stored by `mrr reconcile --fix` because the ledger "
            "differed from it",
            "checked_at": datetime.fromtimestamp(now, UTC).isoformat(),
        },
    }


def _api_version(sub: Mapping[str, Any]) -> str:
    """The API shape of a payload, named by the version that introduced it (as the backfill)."""
    return "2025-02-24.acacia" if is_old_shape(sub) else "2025-03-31.basil"


def reconciliation_event(sub: Obj, now: int) -> Obj:
    """The live subscription as the event Stripe would send for it now.

    Its id names the subscription and a digest of the object: the same object stores once,
    however often it is reconciled; a changed object is a new event.
    """
    ended = sub.get("status") in _ENDED_STATUSES
    kind = "customer.subscription.deleted" if ended else "customer.subscription.updated"
    event_id = f"{PREFIX}{sub['id']}_{_digest(sub)}"
    return _event(event_id, kind, sub, now, _api_version(sub))


def customer_discount_event(discount: Obj, now: int, api_version: str) -> Obj:
    """A customer's live discount as the `customer.discount.created` Stripe would send."""
    event_id = f"{PREFIX}{discount['id']}_{_digest(discount)}"
    return _event(event_id, "customer.discount.created", discount, now, api_version)


@dataclass(frozen=True, slots=True)
class Live:
    """What the rules give for a subscription's live object."""

    subscription_id: str
    customer_id: str
    currency: str
    status: str
    standing: str
    active: int
    delinquent: int
    changed_at: int | None  # the newest dated change the object shows
    changed_field: str | None
    event: Obj | None  # the event a fix stores; None when the object cannot be read
    problem: str | None = None


@dataclass(frozen=True, slots=True)
class InLedger:
    """A subscription's MRR in effect in the ledger (reversals netted)."""

    subscription_id: str
    customer_id: str
    currency: str
    active: int
    delinquent: int

    @property
    def standing(self) -> str:
        if self.active:
            return Standing.ACTIVE.value
        return Standing.DELINQUENT.value if self.delinquent else NOT_COUNTED


def _changed(sub: Mapping[str, Any], now: int) -> tuple[int | None, str | None]:
    dated = [
        (sub[name], name)
        for name in _DATED_FIELDS
        if isinstance(sub.get(name), int) and sub[name] <= now
    ]
    for item in (sub.get("items") or {}).get("data") or []:
        start = item.get("current_period_start") if isinstance(item, dict) else None
        if isinstance(start, int) and start <= now:
            dated.append((start, "items.current_period_start"))
    newest = max(dated, default=None)
    return (None, None) if newest is None else newest


def live_figures(sub: Obj, customer_discount: Obj | None, refs: References, now: int) -> Live:
    """The subscription's figures by the rules, as if its live object arrived now."""
    sub_id, customer = str(sub.get("id")), sub.get("customer")
    customer_id = customer.get("id") if isinstance(customer, dict) else customer
    changed_at, changed_field = _changed(sub, now)
    event = reconciliation_event(sub, now)
    bodies = [event]
    if customer_discount is not None:
        bodies.append(customer_discount_event(customer_discount, now, event["api_version"]))
    try:
        read = read_subscription(sub)
        replay = replay_customer(str(customer_id), [parse_event(b) for b in bodies], refs)
    except (PayloadError, MissingReference) as problem:
        return Live(
            sub_id, str(customer_id), str(sub.get("currency") or "?"), str(sub.get("status")),
            "unreadable", 0, 0, changed_at, changed_field, None, problem=str(problem),
        )  # fmt: skip
    active, delinquent = replay.closing.get(sub_id, (0, 0))
    if active:
        standing = Standing.ACTIVE.value
    elif delinquent:
        standing = Standing.DELINQUENT.value
    else:
        standing = standing_of_status(read.status, read.pause_collection).value
    return Live(
        sub_id, str(customer_id), read.currency, read.status, standing, active, delinquent,
        changed_at, changed_field, event,
    )  # fmt: skip


def compare(
    live: Iterable[Live], ledger: Mapping[str, InLedger]
) -> list[tuple[Live | None, InLedger | None]]:
    """Pairs that differ: a live subscription whose figures the ledger does not have, and a
    subscription with MRR in the ledger that Stripe did not list. In subscription id order."""
    found: list[tuple[Live | None, InLedger | None]] = []
    listed: set[str] = set()
    for one in live:
        listed.add(one.subscription_id)
        mine = ledger.get(one.subscription_id)
        have = (mine.currency, mine.active, mine.delinquent) if mine else (one.currency, 0, 0)
        if one.problem is not None or have != (one.currency, one.active, one.delinquent):
            if mine is None and not (one.active or one.delinquent) and one.problem is None:
                continue
            found.append((one, mine))
    for sub_id, mine in ledger.items():
        if sub_id not in listed and (mine.active or mine.delinquent):
            found.append((None, mine))
    return sorted(found, key=lambda pair: _id_of(*pair))


def _id_of(live: Live | None, mine: InLedger | None) -> str:
    return live.subscription_id if live is not None else mine.subscription_id if mine else ""


class Cause(enum.StrEnum):
    """Why a subscription's ledger figures likely differ from its live object, most specific
    first."""

    UNREADABLE = "unreadable_object"  # the rules refuse the live object
    UNKNOWN = "unknown_subscription"  # Stripe has no such subscription
    NO_EVENTS = "no_events"  # nothing stored for it
    FAILED_ROWS = "failed_rows"  # some of its stored events failed
    PENDING_ROWS = "pending_rows"  # some of its stored events wait for processing
    MISSED_EVENT = "missed_event"  # the stored events end before the object's last change


@dataclass(frozen=True, slots=True)
class Clues:
    """What the inbox holds for one subscription."""

    events: int = 0
    failed: Sequence[tuple[int, str]] = ()  # (inbox id, reason)
    pending: int = 0
    newest: tuple[int, str] | None = None  # (created, event id) of its newest stored event


@dataclass(frozen=True, slots=True)
class Difference:
    subscription_id: str
    customer_id: str
    currency: str
    ledger_standing: str
    ledger_active: int
    ledger_delinquent: int
    stripe_standing: str
    stripe_active: int
    stripe_delinquent: int
    cause: Cause
    detail: str
    event: Obj | None = field(default=None, compare=False)  # what a fix stores

    def fields(self) -> dict[str, str]:
        """Flat, amounts as decimal strings in major units: JSON, CSV and the runs table."""
        return {
            "subscription_id": self.subscription_id,
            "customer_id": self.customer_id,
            "currency": self.currency,
            "ledger_standing": self.ledger_standing,
            "ledger_mrr": str(to_major(self.ledger_active, self.currency)),
            "ledger_delinquent_mrr": str(to_major(self.ledger_delinquent, self.currency)),
            "stripe_standing": self.stripe_standing,
            "stripe_mrr": str(to_major(self.stripe_active, self.currency)),
            "stripe_delinquent_mrr": str(to_major(self.stripe_delinquent, self.currency)),
            "cause": self.cause.value,
            "detail": self.detail,
        }


def _day(moment: int) -> str:
    return datetime.fromtimestamp(moment, UTC).strftime("%Y-%m-%d %H:%M:%SZ")


def likely_cause(live: Live | None, mine: InLedger | None, clues: Clues) -> tuple[Cause, str]:
    """The likeliest cause of a difference, in words an operator can act on."""
    if live is not None and live.problem is not None:
        return Cause.UNREADABLE, f"the rules cannot read the live object: {live.problem}"
    if live is None:
        return Cause.UNKNOWN, (
            "Stripe has no such subscription (another account or mode, or test data?); "
            f"{clues.events} events stored for it"
        )
    if clues.events == 0:
        return Cause.NO_EVENTS, (
            "no event stored for it: webhooks missed (endpoint not subscribed to "
            "customer.subscription.*?) or the backfill not run"
        )
    if clues.failed:
        shown = "; ".join(f"inbox {i}: {reason}" for i, reason in clues.failed[:3])
        return Cause.FAILED_ROWS, f"{len(clues.failed)} of its events failed ({shown})"
    if clues.pending:
        return Cause.PENDING_ROWS, f"{clues.pending} of its events wait for a worker"
    newest = clues.newest
    stored = f"its newest stored event is {newest[1]} of {_day(newest[0])}" if newest else ""
    if newest is not None and live.changed_at is not None and newest[0] < live.changed_at:
        return Cause.MISSED_EVENT, (
            f"a missed event: {stored}, older than the object's {live.changed_field} "
            f"({_day(live.changed_at)})"
        )
    return Cause.MISSED_EVENT, (
        f"a missed event: {stored}, and the object changed since without a dated field "
        "(a price, quantity, discount or status change)"
    )


def difference(live: Live | None, mine: InLedger | None, clues: Clues) -> Difference:
    cause, detail = likely_cause(live, mine, clues)
    source = live or mine
    assert source is not None
    return Difference(
        subscription_id=source.subscription_id,
        customer_id=source.customer_id,
        currency=source.currency,
        ledger_standing=mine.standing if mine else "absent",
        ledger_active=mine.active if mine else 0,
        ledger_delinquent=mine.delinquent if mine else 0,
        stripe_standing=live.standing if live else "absent",
        stripe_active=live.active if live else 0,
        stripe_delinquent=live.delinquent if live else 0,
        cause=cause,
        detail=detail,
        event=live.event if live is not None else None,
    )
