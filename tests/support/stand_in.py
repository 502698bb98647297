"""A stand-in Stripe account: 40 customers over 24 months, served as Stripe's API serves one.

`make_stand_in(seed)` simulates a small business in two currencies: sign-ups (some with a
trial, some on an archived price), plan changes with and without prorations, repeating and
forever discounts (one removed early), renewals that fail and are paid late, or recovered by
paying the next renewal while the old invoice stays open, cards that keep failing until Stripe
cancels, pauses of collection that void the renewals they span (ended and in force), trials
that end paused for want of a payment method (resumed later, or not), cancellations at period
end. It keeps what Stripe keeps for ever (an `Account` for `FakeStripe`: customers,
subscriptions, invoices, prices, coupons, discounts that only an `expand[]` shows) and the
events Stripe sent along the way (`account.events`, what a webhook received).

`told` holds the same events dated as the objects can tell them: a change with no invoice of
its own (no proration line, a pause, an early removal of a discount) at the next invoice; a
pause still in force at the earlier of its first voided invoice and the event retention start.
"""

from __future__ import annotations

import copy
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from tests.support.fake_stripe import Account

DAY = 86_400
HOUR = 3_600
MONTH = 30 * DAY
YEAR = 365 * DAY
NOW = 1_780_000_000
MONTHS = 24
START = NOW - MONTHS * MONTH
RETENTION = NOW - 30 * DAY
API_VERSION = "2025-03-31.basil"

Obj = dict[str, Any]


def _price(price_id: str, amount: int, currency: str, interval: str, active: bool = True) -> Obj:
    return {
        "id": price_id,
        "object": "price",
        "active": active,
        "billing_scheme": "per_unit",
        "currency": currency,
        "product": f"prod_{price_id.split('_')[1]}",
        "recurring": {"interval": interval, "interval_count": 1, "usage_type": "licensed"},
        "type": "recurring",
        "unit_amount": amount,
        "unit_amount_decimal": str(amount),
        "created": START - YEAR,
    }


PRICES = {
    p["id"]: p
    for p in (
        _price("price_basic_usd", 2900, "usd", "month"),
        _price("price_pro_usd", 9900, "usd", "month"),
        _price("price_pro_usd_yearly", 99000, "usd", "year"),
        _price("price_legacy_usd", 1900, "usd", "month", active=False),  # archived
        _price("price_basic_eur", 2500, "eur", "month"),
        _price("price_pro_eur", 8900, "eur", "month"),
        _price("price_pro_eur_yearly", 89000, "eur", "year"),
    )
}
COUPONS = {
    "RETAIN25": {
        "id": "RETAIN25",
        "object": "coupon",
        "percent_off": 25,
        "amount_off": None,
        "currency": None,
        "duration": "repeating",
        "duration_in_months": 3,
        "valid": True,
    },
    "LOYAL10": {
        "id": "LOYAL10",
        "object": "coupon",
        "percent_off": None,
        "amount_off": 1000,
        "currency": "usd",
        "currency_options": {"eur": {"amount_off": 900}},
        "duration": "forever",
        "duration_in_months": None,
        "valid": True,
    },
}


@dataclass
class StandIn:
    account: Account
    told: list[Obj]


@dataclass
class _World:
    account: Account
    rng: random.Random
    told: list[Obj] = field(default_factory=list)
    n: int = 0

    def next_id(self, prefix: str) -> str:
        self.n += 1
        return f"{prefix}_{self.n:06d}"

    def emit(self, kind: str, at: int, obj: Obj, told_at: int | None = None) -> Obj:
        """An event Stripe sent at `at`; the objects tell it at `told_at` (default `at`)."""
        event = {
            "id": self.next_id("evt"),
            "object": "event",
            "type": kind,
            "created": at,
            "api_version": API_VERSION,
            "livemode": False,
            "pending_webhooks": 1,
            "request": {"id": None, "idempotency_key": None},
            "data": {"object": copy.deepcopy(obj)},
        }
        self.account.events.append(event)
        told = {**event, "created": at if told_at is None else told_at}
        self.told.append(told)
        return told


class _Life:
    """One subscription while its history is written: what Stripe knows of it now."""

    def __init__(self, w: _World, customer: str, price: str, start: int, trial: bool) -> None:
        self.w = w
        self.customer = customer
        self.price = price
        self.quantity = 1
        self.start = start
        self.id = w.next_id("sub")
        self.item_id = w.next_id("si")
        self.currency = PRICES[price]["currency"]
        self.status = "trialing" if trial else "active"
        self.trial = (start, start + 14 * DAY) if trial else None
        self.anchor = start if not trial else start + 14 * DAY
        self.period = (start, start + 14 * DAY) if trial else (start, start + self.interval())
        self.discounts: list[str] = []
        self.pause: Obj | None = None
        self.pause_event: Obj | None = None  # the told event of a pause, dated at the end
        self.pause_at = 0
        self.first_void: int | None = None
        self.latest_invoice: str | None = None
        self.pending: list[Obj] = []  # proration lines for the next invoice
        self.fail: tuple[str, int] | None = None  # how the next renewal fails
        self.cancel_at_period_end = False
        self.canceled_at: int | None = None
        self.ended_at: int | None = None
        self.trial_pause = False
        self.unprorated: list[Obj] = []  # told events waiting for the next invoice

    def interval(self) -> int:
        return YEAR if PRICES[self.price]["recurring"]["interval"] == "year" else MONTH

    # rendering ------------------------------------------------------------------------------

    def item(self) -> Obj:
        return {
            "id": self.item_id,
            "object": "subscription_item",
            "created": self.start,
            "current_period_start": self.period[0],
            "current_period_end": self.period[1],
            "discounts": [],
            "metadata": {},
            "price": dict(PRICES[self.price]),
            "quantity": self.quantity,
            "subscription": self.id,
        }

    def snapshot(self) -> Obj:
        return {
            "id": self.id,
            "object": "subscription",
            "billing_cycle_anchor": self.anchor,
            "cancel_at_period_end": self.cancel_at_period_end,
            "canceled_at": self.canceled_at,
            "collection_method": "charge_automatically",
            "created": self.start,
            "currency": self.currency,
            "customer": self.customer,
            "discounts": list(self.discounts),
            "ended_at": self.ended_at,
            "items": {"object": "list", "data": [self.item()], "has_more": False},
            "latest_invoice": self.latest_invoice,
            "livemode": False,
            "pause_collection": copy.deepcopy(self.pause),
            "start_date": self.start,
            "status": self.status,
            "trial_end": None if self.trial is None else self.trial[1],
            "trial_start": None if self.trial is None else self.trial[0],
            "trial_settings": {"end_behavior": {"missing_payment_method": "pause"}},
        }

    def updated(self, at: int, told_at: int | None = None) -> Obj:
        return self.w.emit("customer.subscription.updated", at, self.snapshot(), told_at)

    def line(
        self, price: str, quantity: int, period: tuple[int, int], amount: int, proration: bool
    ) -> Obj:
        parent: Obj
        if proration:
            details = {
                "invoice_item": self.w.next_id("ii"),
                "proration": True,
                "subscription": self.id,
            }
            parent = {"type": "invoice_item_details", "invoice_item_details": details}
        else:
            details = {
                "proration": False,
                "subscription": self.id,
                "subscription_item": self.item_id,
            }
            parent = {"type": "subscription_item_details", "subscription_item_details": details}
        return {
            "id": self.w.next_id("il"),
            "object": "line_item",
            "amount": amount,
            "currency": self.currency,
            "discounts": [],
            "parent": parent,
            "period": {"start": period[0], "end": period[1]},
            "pricing": {
                "type": "price_details",
                "price_details": {"price": price, "product": PRICES[price]["product"]},
                "unit_amount_decimal": PRICES[price]["unit_amount_decimal"],
            },
            "quantity": quantity,
        }

    def invoice(self, at: int, reason: str, lines: list[Obj]) -> Obj:
        inv_id = self.w.next_id("in")
        subtotal = sum(line["amount"] for line in lines)
        total = max(0, self._discounted(subtotal))
        for line in lines:
            line["invoice"] = inv_id
        invoice = {
            "id": inv_id,
            "object": "invoice",
            "amount_due": total,
            "amount_paid": total,
            "amount_remaining": 0,
            "attempt_count": 1 if total else 0,
            "attempted": total > 0,
            "billing_reason": reason,
            "collection_method": "charge_automatically",
            "created": at,
            "currency": self.currency,
            "customer": self.customer,
            "discounts": list(self.discounts),
            "lines": {"object": "list", "data": lines, "has_more": False},
            "livemode": False,
            "parent": {
                "type": "subscription_details",
                "subscription_details": {"metadata": {}, "subscription": self.id},
            },
            "status": "paid",
            "status_transitions": {
                "finalized_at": at + HOUR,
                "marked_uncollectible_at": None,
                "paid_at": at + HOUR,
                "voided_at": None,
            },
            "subtotal": subtotal,
            "total": total,
        }
        self.w.account.invoices.append(invoice)
        self.latest_invoice = inv_id
        return invoice

    def _discounted(self, amount: int) -> int:
        for discount_id in self.discounts:
            coupon = self.w.account.discounts[discount_id]["coupon"]
            if coupon["percent_off"]:
                amount = amount * (100 - int(coupon["percent_off"])) // 100
            else:
                off = coupon["amount_off"]
                if self.currency != coupon["currency"]:
                    off = coupon["currency_options"][self.currency]["amount_off"]
                amount -= int(off)
        return amount

    # what happens ---------------------------------------------------------------------------

    def sign_up(self) -> None:
        self.w.emit("customer.subscription.created", self.start, self.snapshot())
        full = self.line(self.price, 1, self.period, 0 if self.trial else self.amount(), False)
        first = self.invoice(self.start, "subscription_create", [full])
        if first["total"]:
            first["status_transitions"]["paid_at"] = self.start + 5
            first["status_transitions"]["finalized_at"] = self.start
            self.w.emit("invoice.paid", self.start + 5, first)

    def amount(self) -> int:
        return int(PRICES[self.price]["unit_amount"]) * self.quantity

    def advance(self, until: int) -> None:
        """Every renewal before `until`; each sends the subscription with its new period."""
        while self.ended_at is None and self.status != "paused" and self.period[1] < until:
            at = self.period[1]
            if self.cancel_at_period_end:
                self.end(at)
                return
            if self.status == "trialing" and self.trial_pause:
                self.status = "paused"
                self.updated(at)
                return
            self._expire_discounts(at)
            if self.status == "trialing":
                self.status = "active"
            self.period = (at, at + self.interval())
            self._renew(at)

    def _expire_discounts(self, at: int) -> None:
        """A repeating coupon has run its months: Stripe removes it at the renewal."""
        for discount_id in list(self.discounts):
            discount = self.w.account.discounts[discount_id]
            if discount.get("end") is not None and discount["end"] <= at:
                self.discounts.remove(discount_id)
                self.w.emit("customer.discount.deleted", at, discount)

    def _renew(self, at: int) -> None:
        lines = [
            *self.pending,
            self.line(self.price, self.quantity, self.period, self.amount(), False),
        ]
        self.pending = []
        invoice = self.invoice(at, "subscription_cycle", lines)
        for told in self.unprorated:
            told["created"] = at
        self.unprorated = []
        transitions = invoice["status_transitions"]
        if self.pause is not None:
            invoice.update(status="void", attempt_count=0, attempted=False, amount_paid=0)
            transitions.update(paid_at=None, voided_at=at + HOUR)
            self.first_void = self.first_void or at
        self.updated(at)
        if self.pause is not None:
            return
        if self.fail is None or not invoice["total"]:
            self.w.emit("invoice.paid", at + HOUR, invoice)
            if self.status == "past_due":  # a later invoice paid: Stripe makes it active again
                self.status = "active"
                self.updated(at + HOUR)
            return
        how, days = self.fail
        self.fail = None
        paid = dict(invoice)
        invoice.update(status="open", amount_paid=0, amount_remaining=invoice["total"])
        transitions["paid_at"] = None
        self.w.emit("invoice.payment_failed", at + HOUR, invoice)
        if self.status != "past_due":
            self.status = "past_due"
            self.updated(at + HOUR)
        if how == "late":
            invoice.update(
                status="paid", amount_paid=paid["total"], amount_remaining=0, attempt_count=2
            )
            transitions["paid_at"] = at + days * DAY
            self.w.emit("invoice.paid", at + days * DAY, invoice)
            self.status = "active"
            self.updated(at + days * DAY)
        elif how == "cancel":
            for retry in (3, 7):
                invoice["attempt_count"] += 1
                self.w.emit("invoice.payment_failed", at + retry * DAY, invoice)
            self.end(at + days * DAY)

    def change(self, at: int, price: str, quantity: int, prorate: bool) -> None:
        self.advance(at)
        old_amount, old_price, old_qty = self.amount(), self.price, self.quantity
        self.price, self.quantity = price, quantity
        if prorate:
            share = (self.period[1] - at) / (self.period[1] - self.period[0])
            span = (at, self.period[1])
            self.pending += [
                self.line(old_price, old_qty, span, -int(old_amount * share), True),
                self.line(price, quantity, span, int(self.amount() * share), True),
            ]
            self.updated(at)
        else:
            self.unprorated.append(self.updated(at))

    def add_discount(self, at: int, coupon: str) -> None:
        self.advance(at)
        months = COUPONS[coupon]["duration_in_months"]
        discount = {
            "id": self.w.next_id("di"),
            "object": "discount",
            "checkout_session": None,
            "coupon": dict(COUPONS[coupon]),
            "customer": self.customer,
            "end": None if months is None else at + months * MONTH,
            "invoice": None,
            "invoice_item": None,
            "promotion_code": None,
            "start": at,
            "subscription": self.id,
            "subscription_item": None,
        }
        self.w.account.discounts[discount["id"]] = discount
        self.discounts.append(discount["id"])
        self.w.emit("customer.discount.created", at, discount)
        self.updated(at)

    def remove_discount(self, at: int) -> None:
        """Removed before its end: afterwards Stripe shows it as a deleted discount."""
        self.advance(at)
        discount_id = self.discounts.pop()
        discount = self.w.account.discounts[discount_id]
        deleted = {k: v for k, v in discount.items() if k != "end"} | {"deleted": True}
        self.w.account.discounts[discount_id] = deleted
        self.unprorated.append(self.w.emit("customer.discount.deleted", at, discount))
        self.unprorated.append(self.updated(at))

    def fail_next(self, how: str, days: int = 0) -> None:
        self.fail = (how, days)

    def pause_collection(self, at: int) -> None:
        self.advance(at)
        self.pause = {"behavior": "void", "resumes_at": None}
        self.first_void, self.pause_at = None, at
        self.pause_event = self.updated(at)
        self.unprorated.append(self.pause_event)

    def resume_collection(self, at: int) -> None:
        self.advance(at)
        self.pause = None
        self.pause_event = None
        self.unprorated.append(self.updated(at))

    def resume_from_trial(self, at: int) -> None:
        """Paused since the trial ended (no payment method): a payment method, a new period."""
        assert self.status == "paused"
        self.status, self.anchor = "active", at
        self.period = (at, at + self.interval())
        invoice = self.invoice(
            at,
            "subscription_update",
            [self.line(self.price, self.quantity, self.period, self.amount(), False)],
        )
        self.updated(at)
        self.w.emit("invoice.paid", at + HOUR, invoice)

    def cancel(self, at: int) -> None:
        self.advance(at)
        self.cancel_at_period_end, self.canceled_at = True, at
        self.updated(at)

    def end(self, at: int) -> None:
        self.status, self.ended_at = "canceled", at
        self.canceled_at = self.canceled_at or at
        self.w.emit("customer.subscription.deleted", at, self.snapshot())

    def finish(self) -> None:
        self.advance(NOW)
        for told in self.unprorated:  # no invoice since: nothing in the objects dates it
            told["created"] = max(told["created"], RETENTION)
        if self.pause is not None and self.pause_event is not None and self.pause_at < RETENTION:
            self.pause_event["created"] = min(self.first_void or RETENTION, RETENTION)
        self.w.account.subscriptions.append(self.snapshot())


Story = Callable[[_Life, random.Random], None]


def _mid(life: _Life, periods: int, rng: random.Random) -> int:
    """A moment in the middle of the billing period `periods` renewals from the anchor."""
    return life.anchor + periods * life.interval() + rng.randint(8, 20) * DAY + rng.randint(0, DAY)


def _renewal(life: _Life, periods: int) -> int:
    return life.anchor + periods * life.interval()


def _other(price: str, rng: random.Random) -> str:
    currency = PRICES[price]["currency"]
    options = [p for p in (f"price_basic_{currency}", f"price_pro_{currency}") if p != price]
    return rng.choice(options)


def stayed(life: _Life, rng: random.Random) -> None:
    pass


def changed_with_prorations(life: _Life, rng: random.Random) -> None:
    life.change(
        _mid(life, rng.randint(1, 8), rng), _other(life.price, rng), rng.randint(1, 3), True
    )


def changed_without_prorations(life: _Life, rng: random.Random) -> None:
    life.change(_mid(life, rng.randint(1, 8), rng), life.price, life.quantity + 1, False)


def discounted_for_three_months(life: _Life, rng: random.Random) -> None:
    life.add_discount(_mid(life, rng.randint(1, 6), rng), "RETAIN25")


def discounted_for_ever(life: _Life, rng: random.Random) -> None:
    life.add_discount(_mid(life, rng.randint(1, 6), rng), "LOYAL10")


def discount_removed_early(life: _Life, rng: random.Random) -> None:
    first = rng.randint(1, 4)
    life.add_discount(_mid(life, first, rng), "LOYAL10")
    life.remove_discount(_mid(life, first + rng.randint(2, 4), rng))


def paid_late(life: _Life, rng: random.Random) -> None:
    period = rng.randint(2, 8)
    life.advance(_renewal(life, period) - DAY)
    life.fail_next("late", rng.randint(2, 9))


def recovered_by_the_next_invoice(life: _Life, rng: random.Random) -> None:
    period = rng.randint(2, 8)
    life.advance(_renewal(life, period) - DAY)
    life.fail_next("next")


def card_kept_failing(life: _Life, rng: random.Random) -> None:
    period = rng.randint(3, 9)
    life.advance(_renewal(life, period) - DAY)
    life.fail_next("cancel", 14)


def still_unpaid(life: _Life, rng: random.Random) -> None:
    last = max(r for r in range(0, 40) if _renewal(life, r) + DAY < NOW)
    life.advance(_renewal(life, last) - DAY)
    life.fail_next("never")


def paused_for_a_while(life: _Life, rng: random.Random) -> None:
    first = rng.randint(1, 6)
    life.pause_collection(_mid(life, first, rng))
    life.resume_collection(_mid(life, first + rng.randint(2, 4), rng))


def paused_still(life: _Life, rng: random.Random) -> None:
    life.pause_collection(NOW - rng.randint(40, 150) * DAY)


def trial_paused_then_resumed(life: _Life, rng: random.Random) -> None:
    life.trial_pause = True
    life.advance(life.trial[1] + DAY if life.trial else life.start)
    life.resume_from_trial(life.trial[1] + rng.randint(5, 40) * DAY if life.trial else life.start)


def trial_paused_still(life: _Life, rng: random.Random) -> None:
    life.trial_pause = True


def cancelled(life: _Life, rng: random.Random) -> None:
    life.cancel(_mid(life, rng.randint(2, 9), rng))


def discounted_then_paid_late(life: _Life, rng: random.Random) -> None:
    discounted_for_three_months(life, rng)
    paid_late_at = rng.randint(8, 11)
    life.advance(_renewal(life, paid_late_at) - DAY)
    life.fail_next("late", 3)


# (story, currency, price, trial); 40 customers
CAST: tuple[tuple[Story, str, bool], ...] = (
    (stayed, "price_basic_usd", False),
    (stayed, "price_pro_usd", True),
    (stayed, "price_pro_usd_yearly", False),
    (stayed, "price_legacy_usd", False),
    (stayed, "price_basic_eur", False),
    (stayed, "price_pro_eur_yearly", False),
    (changed_with_prorations, "price_basic_usd", False),
    (changed_with_prorations, "price_pro_usd", False),
    (changed_with_prorations, "price_legacy_usd", False),
    (changed_with_prorations, "price_basic_eur", True),
    (changed_without_prorations, "price_basic_usd", False),
    (changed_without_prorations, "price_pro_eur", False),
    (changed_without_prorations, "price_basic_usd", False),
    (discounted_for_three_months, "price_pro_usd", False),
    (discounted_for_three_months, "price_basic_usd", False),
    (discounted_for_three_months, "price_pro_eur", False),
    (discounted_for_three_months, "price_basic_eur", True),
    (discounted_for_ever, "price_pro_usd", False),
    (discounted_for_ever, "price_basic_eur", False),
    (discounted_for_ever, "price_basic_usd", False),
    (discount_removed_early, "price_pro_usd", False),
    (discounted_then_paid_late, "price_pro_usd", False),
    (discounted_then_paid_late, "price_pro_eur", False),
    (paid_late, "price_basic_usd", False),
    (paid_late, "price_pro_eur", False),
    (recovered_by_the_next_invoice, "price_pro_usd", False),
    (recovered_by_the_next_invoice, "price_basic_usd", False),
    (recovered_by_the_next_invoice, "price_basic_eur", False),
    (card_kept_failing, "price_basic_usd", False),
    (card_kept_failing, "price_basic_eur", False),
    (still_unpaid, "price_pro_usd", False),
    (still_unpaid, "price_basic_eur", False),
    (paused_for_a_while, "price_basic_usd", False),
    (paused_for_a_while, "price_pro_eur", False),
    (paused_still, "price_pro_usd", False),
    (paused_still, "price_basic_eur", False),
    (trial_paused_then_resumed, "price_basic_usd", True),
    (trial_paused_still, "price_pro_eur", True),
    (cancelled, "price_basic_usd", False),
    (cancelled, "price_pro_eur", False),
)


def make_stand_in(seed: int = 15) -> StandIn:
    account = Account(now=NOW, shape="new")
    account.prices.update(copy.deepcopy(PRICES))
    account.coupons.update(copy.deepcopy(COUPONS))
    world = _World(account, random.Random(seed))
    rng = world.rng
    for n, (story, price, trial) in enumerate(CAST):
        customer_id = f"cus_{n:06d}"
        start = START + rng.randint(0, 8 * MONTH) + rng.randint(0, DAY)
        account.customers.append(
            {"id": customer_id, "object": "customer", "created": start - 600, "livemode": False}
        )
        life = _Life(world, customer_id, price, start, trial)
        life.sign_up()
        story(life, rng)
        life.finish()
    account.events.sort(key=lambda e: (e["created"], e["id"]))
    return StandIn(account, _told(account.events, world.told))


def _owner(event: Obj) -> str:
    obj = event["data"]["object"]
    if obj["object"] == "subscription":
        return str(obj["id"])
    if obj["object"] == "invoice":
        return str(obj["parent"]["subscription_details"]["subscription"])
    return str(obj.get("subscription"))


def _told(sent: list[Obj], told: list[Obj]) -> list[Obj]:
    """From a subscription's first event Stripe still keeps (the last 30 days) on, the events
    themselves are read: each is told when it was sent."""
    first: dict[str, int] = {}
    for event in sent:
        if event["created"] >= RETENTION:
            first.setdefault(_owner(event), event["created"])
    true = {e["id"]: e["created"] for e in sent}
    for event in told:
        cutoff = first.get(_owner(event))
        if cutoff is not None and true[event["id"]] >= cutoff:
            event["created"] = true[event["id"]]
    return sorted(told, key=lambda e: (e["created"], e["id"]))
