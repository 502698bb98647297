"""Generated Stripe histories of one customer: trials, failures, pauses, discounts, both shapes."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from hypothesis import strategies as st

from ledger.rules.payloads import Coupon, Discount, Item, Price, Tier
from tests.rules import builders as b

CUSTOMER = "cus_p"
DAY = 86_400
START = 1_735_689_600  # 2025-01-01
HALF = b.coupon_object("co_half", percent_off=50)
PRICES = st.sampled_from(
    [(5_000, "month", 1), (100_000, "year", 1), (1_500, "week", 2), (999, "day", 1)]
)


class OwnTerms:
    """Terms as the generated events carry them (old-shape discounts hold their coupon)."""

    def tiers(self, price: Price) -> tuple[Tier, ...]:
        raise AssertionError("no tiered prices are generated")

    def coupon(self, discount: Discount) -> Coupon | None:
        return discount.coupon

    def metered_amount(self, subscription_id: str, item: Item) -> int | None:
        return None


@dataclass
class Sub:
    id: str
    status: str = (
        "none"  # none, trialing, incomplete, active, paused, past_due, unpaid_first, ended
    )
    price: tuple[int, str, int] = (5_000, "month", 1)
    quantity: int = 1
    invoices: int = 0
    latest: str | None = None
    snapshot: dict[str, Any] = field(default_factory=dict)


@dataclass
class History:
    shape: b.Shape
    subs: list[Sub]
    events: list[dict[str, Any]] = field(default_factory=list)
    discount_on: bool = False
    step: int = 0
    actions: int = 0

    def now(self) -> int:
        return START + self.step * DAY

    def ids(self, swap: bool) -> tuple[str, str]:
        """Ids sort in the order actions happen; within one action, either way round."""
        self.actions += 1
        first, second = f"evt_{self.actions:04d}_a", f"evt_{self.actions:04d}_b"
        return (second, first) if swap else (first, second)

    def invoice(self, sub: Sub) -> str:
        sub.invoices += 1
        sub.latest = f"in_{sub.id}_{sub.invoices}"
        return sub.latest

    def snapshot(
        self, sub: Sub, status: str, event_id: str, type: str = "updated", **kw: Any
    ) -> None:
        amount, interval, count = sub.price
        event = b.subscription_event(
            type, sub.id, CUSTOMER, self.now(), status, [(amount, interval, count, sub.quantity)],
            shape=self.shape, event_id=event_id, latest_invoice=sub.latest, **kw,
        )  # fmt: skip
        sub.snapshot = event["data"]["object"]
        self.events.append(event)

    def bill(
        self, type: str, sub: Sub, invoice: str, event_id: str, reason: str, amount: int = 1
    ) -> None:
        self.events.append(
            b.invoice_event(type, invoice, CUSTOMER, sub.id, self.now(), billing_reason=reason,
                            shape=self.shape, event_id=event_id, amount=amount)
        )  # fmt: skip


def act(
    h: History, action: str, sub: Sub, swap: bool, price: tuple[int, str, int], qty: int
) -> None:
    one, two = h.ids(swap)
    if action == "create" and sub.status == "none":
        sub.price, sub.quantity = price, qty
        kind = ("active", "trialing", "incomplete")[qty % 3]
        invoice = h.invoice(sub)
        if kind == "trialing":
            h.snapshot(sub, "trialing", one, "created", trial_end=h.now() + 14 * DAY)
            h.bill("paid", sub, invoice, two, "subscription_create", amount=0)  # trial invoice
        else:
            h.snapshot(sub, kind, one, "created")
            h.bill("paid" if kind == "active" else "payment_failed", sub, invoice, two,
                   "subscription_create")  # fmt: skip
        sub.status = kind
    elif action == "pay" and sub.status in ("incomplete", "unpaid_first", "trialing", "past_due"):
        if sub.status == "trialing":
            h.invoice(sub)
        h.bill("paid", sub, sub.latest or "", one, "subscription_cycle")
        h.snapshot(sub, "active", two)
        sub.status = "active"
    elif action == "fail" and sub.status in ("active", "trialing"):
        h.bill("payment_failed", sub, h.invoice(sub), one, "subscription_cycle")
        previous = {"status": sub.status}
        h.snapshot(sub, "past_due", two, previous_attributes=previous)
        sub.status = "past_due" if sub.status == "active" else "unpaid_first"
    elif action == "fail_only" and sub.status == "active":
        # the renewal fails; the subscription's own update has not arrived (yet)
        h.bill("payment_failed", sub, h.invoice(sub), one, "subscription_cycle")
        sub.status = "past_due"
    elif action == "uncollectible" and sub.status == "past_due":
        h.bill("marked_uncollectible", sub, sub.latest or "", one, "subscription_cycle")
        h.snapshot(sub, "unpaid", two)
    elif action == "void" and sub.status == "past_due":
        h.bill("voided", sub, sub.latest or "", one, "subscription_cycle")
        h.snapshot(sub, "active", two)
        sub.status = "active"
    elif action == "change" and sub.status in ("active", "past_due", "paused"):
        sub.price, sub.quantity = price, qty
        h.snapshot(sub, sub.status, one, pause_collection=sub.status == "paused")
    elif action == "pause" and sub.status == "active":
        if swap:
            h.snapshot(sub, "active", one, pause_collection=True)
        else:
            h.snapshot(sub, "paused", one, "paused")
        sub.status = "paused"
    elif action == "resume" and sub.status == "paused":
        h.snapshot(sub, "active", one, "resumed")
        sub.status = "active"
    elif action == "cancel" and sub.status not in ("none", "ended"):
        h.snapshot(sub, "canceled", one, "deleted")
        sub.status = "ended"
    elif action == "discount":
        h.discount_on = not h.discount_on
        coupon: dict[str, Any] | str = HALF if h.shape == "old" else "co_half"
        type = "created" if h.discount_on else "deleted"
        h.events.append(
            b.discount_event(
                type, "di_cust", CUSTOMER, h.now(), coupon, shape=h.shape, event_id=one
            )
        )


ACTIONS = st.sampled_from(
    [
        *("create", "pay", "fail", "void", "change", "pause", "resume", "cancel", "discount"),
        *("create", "fail", "pay", "fail_only", "uncollectible"),  # the common ones twice
    ]
)


@st.composite
def histories(draw: st.DrawFn) -> History:
    shape: b.Shape = draw(st.sampled_from(["old", "new"]))
    h = History(shape, [Sub(f"sub_{n}") for n in range(draw(st.integers(1, 3)))])
    if shape == "new":
        h.events.append(b.coupon_event("created", HALF, START - DAY, event_id="evt_coupon"))
    for _ in range(draw(st.integers(1, 16))):
        h.step += draw(st.sampled_from([0, 1, 1, 2, 30]))  # 0: the same second as the last
        sub = h.subs[draw(st.integers(0, len(h.subs) - 1))]
        act(h, draw(ACTIONS), sub, draw(st.booleans()), draw(PRICES), draw(st.integers(1, 4)))
    return h
