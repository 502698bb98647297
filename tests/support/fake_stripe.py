"""A seeded fake Stripe account and its HTTP API, for the backfill tests and benchmark.

`make_account` simulates customers over years: sign-ups (some with a trial), mid-period
upgrades with proration lines, failed renewals later paid, cancellations. It keeps both what
Stripe keeps for ever (customers, subscriptions, invoices, prices) and the events Stripe sent
along the way (`account.events`, what a webhook would have received).

`FakeStripe(account)` answers Stripe's list endpoints with real list objects (`has_more`,
`starting_after`), in either API shape, and the retrieval of prices and coupons; it can inject
429s and 500s or refuse keys. `install(rsps, base)` serves it through `responses`,
`transport()` through the `stripe` library's pluggable HTTP client.

`tier(account, price_id)` makes a price tiered the way Stripe shows one: its tiers only where a
request expands them, never inside events, subscriptions or invoice lines.
"""

from __future__ import annotations

import copy
import json
import random
import re
from collections import deque
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import responses

from tests.support.stripe_transport import FakeTransport

DAY = 86_400
MONTH = 30 * DAY
GOOD_KEY = "sk_test_fake"
RESTRICTED_KEY = "rk_test_no_invoices"
PLANS = (1000, 2900, 4900, 9900)


def _price(amount: int, interval: str = "month") -> dict[str, Any]:
    return {
        "id": f"price_{amount}_{interval}",
        "object": "price",
        "active": True,
        "currency": "usd",
        "unit_amount": amount,
        "unit_amount_decimal": str(amount),
        "billing_scheme": "per_unit",
        "type": "recurring",
        "product": "prod_fake",
        "recurring": {"interval": interval, "interval_count": 1, "usage_type": "licensed"},
        "created": 1_500_000_000,
    }


@dataclass
class Account:
    now: int
    shape: str  # "new" (2025-03-31 and later) or "old"
    prices: dict[str, dict[str, Any]] = field(default_factory=dict)
    customers: list[dict[str, Any]] = field(default_factory=list)
    subscriptions: list[dict[str, Any]] = field(default_factory=list)
    invoices: list[dict[str, Any]] = field(default_factory=list)
    events: list[dict[str, Any]] = field(default_factory=list)
    coupons: dict[str, dict[str, Any]] = field(default_factory=dict)
    tiers: dict[str, list[dict[str, Any]]] = field(default_factory=dict)  # shown when expanded
    # Discounts by id: subscriptions, items, invoices and lines name them by id, and a request
    # gets the objects only where it expands them (`expand[]=data.discounts`).
    discounts: dict[str, dict[str, Any]] = field(default_factory=dict)

    def events_since(self, created: int) -> list[dict[str, Any]]:
        return [e for e in self.events if e["created"] >= created]


class _Sim:
    """Simulates one account; every object is rendered in the account's API shape."""

    def __init__(self, account: Account, rng: random.Random) -> None:
        self.a = account
        self.rng = rng
        self.n = 0

    def next_id(self, prefix: str) -> str:
        self.n += 1
        return f"{prefix}_{self.n:07d}"

    def event(self, kind: str, at: int, obj: dict[str, Any]) -> None:
        self.a.events.append(
            {
                "id": self.next_id("evt"),
                "object": "event",
                "type": kind,
                "created": at,
                "api_version": "2025-03-31.basil" if self.a.shape == "new" else "2024-06-20",
                "livemode": False,
                "pending_webhooks": 0,
                "request": {"id": None, "idempotency_key": None},
                "data": {"object": obj},
            }
        )

    def render_sub(self, sub: dict[str, Any], st: dict[str, Any]) -> dict[str, Any]:
        item = {
            "id": st["item_id"],
            "object": "subscription_item",
            "subscription": sub["id"],
            "price": self.a.prices[st["price"]],
            "quantity": st["quantity"],
            "discounts": [],
            "created": sub["start_date"],
        }
        obj = {
            **sub,
            "status": st["status"],
            "canceled_at": st.get("canceled_at"),
            "cancel_at_period_end": st.get("cancel_at_period_end", False),
            "ended_at": st.get("ended_at"),
            "items": {
                "object": "list",
                "data": [item],
                "has_more": False,
                "url": f"/v1/subscription_items?subscription={sub['id']}",
            },
        }
        period = st["period"]
        if self.a.shape == "old":
            obj["current_period_start"], obj["current_period_end"] = period
            obj["discount"] = None
            item["plan"] = self.a.prices[st["price"]]
        else:
            item["current_period_start"], item["current_period_end"] = period
            obj["discounts"] = []
        return obj

    def line(
        self,
        sub: dict[str, Any],
        st: dict[str, Any],
        price_id: str,
        quantity: int,
        period: tuple[int, int],
        amount: int,
        proration: bool,
    ) -> dict[str, Any]:
        line: dict[str, Any] = {
            "id": self.next_id("il"),
            "object": "line_item",
            "amount": amount,
            "currency": "usd",
            "quantity": quantity,
            "period": {"start": period[0], "end": period[1]},
            "discounts": [],
            "discount_amounts": [],
        }
        if self.a.shape == "old":
            line |= {
                "type": "invoiceitem" if proration else "subscription",
                "proration": proration,
                "price": self.a.prices[price_id],
                "plan": self.a.prices[price_id],
                "subscription": sub["id"],
                "subscription_item": st["item_id"],
            }
        else:
            parent = (
                {
                    "type": "invoice_item_details",
                    "invoice_item_details": {
                        "invoice_item": self.next_id("ii"),
                        "proration": True,
                        "subscription": sub["id"],
                    },
                }
                if proration
                else {
                    "type": "subscription_item_details",
                    "subscription_item_details": {
                        "subscription": sub["id"],
                        "subscription_item": st["item_id"],
                        "proration": False,
                    },
                }
            )
            line |= {
                "parent": parent,
                "pricing": {
                    "type": "price_details",
                    "unit_amount_decimal": str(amount),
                    "price_details": {"price": price_id, "product": "prod_fake"},
                },
            }
        return line

    def invoice(
        self, sub: dict[str, Any], at: int, reason: str, lines: list[dict[str, Any]]
    ) -> dict[str, Any]:
        inv_id = self.next_id("in")
        for line in lines:
            line["invoice"] = inv_id
        total = sum(line["amount"] for line in lines)
        inv: dict[str, Any] = {
            "id": inv_id,
            "object": "invoice",
            "customer": sub["customer"],
            "created": at,
            "currency": "usd",
            "billing_reason": reason,
            "collection_method": "charge_automatically",
            "status": "paid",
            "attempted": total > 0,
            "attempt_count": 1 if total > 0 else 0,
            "amount_due": total,
            "amount_paid": total,
            "amount_remaining": 0,
            "total": total,
            "subtotal": total,
            "discounts": [],
            "status_transitions": {
                "finalized_at": at + 3600,
                "paid_at": at + 3600,
                "voided_at": None,
                "marked_uncollectible_at": None,
            },
            "lines": {
                "object": "list",
                "data": lines,
                "has_more": False,
                "url": f"/v1/invoices/{inv_id}/lines",
                "total_count": len(lines),
            },
        }
        if self.a.shape == "old":
            inv["subscription"] = sub["id"]
            inv["paid"] = True
            inv["discount"] = None
        else:
            inv["parent"] = {
                "type": "subscription_details",
                "subscription_details": {"subscription": sub["id"]},
            }
        self.a.invoices.append(inv)
        return inv

    def subscription(self, customer: str, start: int) -> None:
        rng, now = self.rng, self.a.now
        sub_id = self.next_id("sub")
        price = f"price_{rng.choice(PLANS)}_month"
        trial = rng.random() < 0.25
        sub = {
            "id": sub_id,
            "object": "subscription",
            "customer": customer,
            "currency": "usd",
            "created": start,
            "start_date": start,
            "livemode": False,
            "trial_start": start if trial else None,
            "trial_end": start + 14 * DAY if trial else None,
            "pause_collection": None,
            "collection_method": "charge_automatically",
        }
        st: dict[str, Any] = {
            "item_id": self.next_id("si"),
            "price": price,
            "quantity": 1,
            "status": "trialing" if trial else "active",
            "period": (start, start + (14 * DAY if trial else MONTH)),
        }
        self.event("customer.subscription.created", start, self.render_sub(sub, st))
        first = self.invoice(
            sub,
            start,
            "subscription_create",
            [self.line(sub, st, price, 1, st["period"], 0 if trial else self._amount(st), False)],
        )
        if not trial:
            self.event("invoice.paid", first["status_transitions"]["paid_at"], first)
        ends = start + rng.randint(2, 40) * MONTH if rng.random() < 0.35 else None
        pending: list[dict[str, Any]] = []
        period_start = st["period"][1]
        if trial:
            if period_start > now:
                self.a.subscriptions.append(self.render_sub(sub, st))
                return
            st["status"] = "active"
            self.event("customer.subscription.updated", period_start, self.render_sub(sub, st))
        while period_start <= now and (ends is None or period_start < ends):
            st["period"] = (period_start, period_start + MONTH)
            lines = [
                *pending,
                self.line(
                    sub, st, st["price"], st["quantity"], st["period"], self._amount(st), False
                ),
            ]
            pending = []
            inv = self.invoice(sub, period_start, "subscription_cycle", lines)
            if rng.random() < 0.06 and period_start + 3600 + 5 * DAY < now:
                failed_at = period_start + 3600
                paid_at = failed_at + rng.randint(1, 5) * DAY
                inv["attempt_count"] = rng.randint(2, 4)
                inv["status_transitions"]["paid_at"] = paid_at
                before = copy.deepcopy(inv)
                before.update(status="open", amount_paid=0, amount_remaining=inv["amount_due"])
                before["status_transitions"]["paid_at"] = None
                if self.a.shape == "old":
                    before["paid"] = False
                self.event("invoice.payment_failed", failed_at, before)
                st["status"] = "past_due"
                self.event("customer.subscription.updated", failed_at, self.render_sub(sub, st))
                self.event("invoice.paid", paid_at, inv)
                st["status"] = "active"
                self.event("customer.subscription.updated", paid_at, self.render_sub(sub, st))
            else:
                self.event("invoice.paid", period_start + 3600, inv)
            if rng.random() < 0.1:
                # After any failed payment of the period is settled; prorations that an ended
                # subscription never invoiced are invisible, as in Stripe.
                at = period_start + rng.randint(6, 25) * DAY
                if at <= now and (ends is None or at + MONTH < ends):
                    pending = self._upgrade(sub, st, at)
            period_start += MONTH
        if ends is not None and ends <= now:
            st["canceled_at"] = ends
            st["ended_at"] = ends
            st["status"] = "canceled"
            self.event("customer.subscription.deleted", ends, self.render_sub(sub, st))
        self.a.subscriptions.append(self.render_sub(sub, st))

    def _amount(self, st: dict[str, Any]) -> int:
        return int(self.a.prices[st["price"]]["unit_amount"]) * int(st["quantity"])

    def _upgrade(self, sub: dict[str, Any], st: dict[str, Any], at: int) -> list[dict[str, Any]]:
        old_price, old_qty = st["price"], st["quantity"]
        if self.rng.random() < 0.5:
            st["quantity"] += 1
        else:
            higher = [p for p in PLANS if p > self.a.prices[old_price]["unit_amount"]]
            st["price"] = f"price_{higher[0]}_month" if higher else old_price
            if not higher:
                st["quantity"] += 1
        end = st["period"][1]
        share = (end - at) / (end - st["period"][0])
        unused = -int(self.a.prices[old_price]["unit_amount"] * old_qty * share)
        remaining = int(self._amount(st) * share)
        self.event("customer.subscription.updated", at, self.render_sub(sub, st))
        return [
            self.line(sub, st, old_price, old_qty, (at, end), unused, True),
            self.line(sub, st, st["price"], st["quantity"], (at, end), remaining, True),
        ]


def make_account(
    customers: int,
    *,
    years: int = 3,
    seed: int = 7,
    shape: str = "new",
    now: int = 1_780_000_000,
) -> Account:
    account = Account(now=now, shape=shape)
    for amount in PLANS:
        price = _price(amount)
        account.prices[price["id"]] = price
    rng = random.Random(seed)
    sim = _Sim(account, rng)
    first = now - years * 365 * DAY
    for n in range(customers):
        created = first + rng.randint(0, years * 365 * DAY - 20 * DAY)
        customer_id = f"cus_{n:06d}"
        account.customers.append(
            {
                "id": customer_id,
                "object": "customer",
                "created": created,
                "email": f"c{n}@example.com",
                "livemode": False,
            }
        )
        sim.subscription(customer_id, created + 60)
        if rng.random() < 0.15:
            second = created + rng.randint(1, 300) * DAY
            if second < now - DAY:
                sim.subscription(customer_id, second)
    account.events.sort(key=lambda e: (e["created"], e["id"]))
    return account


# --- the HTTP API --------------------------------------------------------------------------


def _query(url: str) -> dict[str, Any]:
    """Stripe's form encoding back into flat keys: `types[0]`, `created[gte]`."""
    return dict(parse_qsl(urlsplit(url).query, keep_blank_values=True))


def _listed(q: dict[str, Any], prefix: str) -> list[str]:
    pattern = re.compile(re.escape(prefix) + r"\[\d+\]$")
    return [v for k, v in q.items() if pattern.match(k)]


class FakeStripe:
    """Stripe's read API over an Account, with faults on demand."""

    def __init__(self, account: Account) -> None:
        self.account = account
        self.faults: deque[int] = deque()  # statuses to answer before the next real answers
        self.fault_every = 0  # also answer faults[...] every Nth request
        self.requests = 0
        self.paths: list[str] = []
        self.keys = {GOOD_KEY: "all", RESTRICTED_KEY: "no_invoices"}
        by_created = sorted(account.customers, key=lambda c: (-c["created"], c["id"]))
        self._customers = by_created
        self._subs: dict[str, list[dict[str, Any]]] = {}
        for sub in sorted(account.subscriptions, key=lambda s: (-s["created"], s["id"])):
            self._subs.setdefault(sub["customer"], []).append(sub)
        self._invoices: dict[str, list[dict[str, Any]]] = {}
        for inv in sorted(account.invoices, key=lambda i: (-i["created"], i["id"])):
            self._invoices.setdefault(inv["customer"], []).append(inv)
        self._by_invoice = {i["id"]: i for i in account.invoices}

    def install(self, rsps: responses.RequestsMock, base: str) -> None:
        rsps.add_callback(
            responses.GET,
            re.compile(re.escape(base) + r"/v1/.*"),
            callback=lambda request: self.answer(request.method, request.url, request.headers),
        )

    def transport(self) -> FakeTransport:
        return FakeTransport(self.answer)

    def answer(
        self, method: str, url: str, headers: Mapping[str, str]
    ) -> tuple[int, dict[str, str], str]:
        self.requests += 1
        path = urlsplit(url).path
        self.paths.append(path)
        scheme, _, key = (headers.get("Authorization") or "").partition(" ")
        if scheme != "Bearer" or key not in self.keys:
            return self._error(
                401, "invalid_request_error", f"Invalid API Key provided: {key[:8]}***"
            )
        if self.keys[key] == "no_invoices" and path.startswith("/v1/invoices"):
            return self._error(
                403,
                "invalid_request_error",
                f"The provided key '{key[:8]}***' does not have the required "
                "permissions for this endpoint: rak_invoice_read",
            )
        if self.faults and (self.fault_every == 0 or self.requests % self.fault_every == 0):
            status = self.faults.popleft()
            return self._error(
                status, "api_error" if status >= 500 else "rate_limit_error", "injected fault"
            )
        q = _query(url)
        body = self._route(path, q)
        if body is None:
            return self._error(404, "invalid_request_error", f"No such resource: {path}")
        return (
            200,
            {"Content-Type": "application/json", "Request-Id": f"req_{self.requests}"},
            json.dumps(body),
        )

    def _error(self, status: int, kind: str, message: str) -> tuple[int, dict[str, str], str]:
        body = {"error": {"type": kind, "message": message}}
        return status, {"Content-Type": "application/json"}, json.dumps(body)

    def _route(self, path: str, q: dict[str, Any]) -> dict[str, Any] | None:
        a = self.account
        if path == "/v1/account":
            return {"id": "acct_fake", "object": "account"}
        if path == "/v1/customers":
            return self._page(self._customers, q, path)
        if m := re.fullmatch(r"/v1/customers/([^/]+)", path):
            return next((c for c in a.customers if c["id"] == m.group(1)), None)
        if path == "/v1/subscriptions":
            subs = (
                self._subs.get(q["customer"], [])
                if "customer" in q
                else [s for group in self._subs.values() for s in group]
            )
            if q.get("status", "active") != "all":
                subs = [s for s in subs if s["status"] not in ("canceled", "incomplete_expired")]
            return self._expand(self._page(subs, q, path), q)
        if m := re.fullmatch(r"/v1/subscriptions/([^/]+)", path):
            return next((s for s in a.subscriptions if s["id"] == m.group(1)), None)
        if path == "/v1/invoices":
            invs = self._invoices.get(q["customer"], []) if "customer" in q else a.invoices
            return self._expand(self._page(invs, q, path), q)
        if m := re.fullmatch(r"/v1/invoices/([^/]+)/lines", path):
            inv = self._by_invoice.get(m.group(1))
            return (
                None if inv is None else self._expand(self._page(inv["lines"]["data"], q, path), q)
            )
        if path == "/v1/prices":
            # Like Stripe: the active prices, unless asked for inactive ones (archived prices
            # are still retrieved by id).
            expand = "data.tiers" in _listed(q, "expand")
            active = q.get("active", "true") == "true"
            listed = [p for p in a.prices.values() if p.get("active", True) == active]
            return self._page([self._price(p, expand) for p in listed], q, path)
        if m := re.fullmatch(r"/v1/prices/([^/]+)", path):
            price = a.prices.get(m.group(1))
            return None if price is None else self._price(price, "tiers" in _listed(q, "expand"))
        if m := re.fullmatch(r"/v1/coupons/([^/]+)", path):
            return a.coupons.get(m.group(1))
        if path == "/v1/events":
            events = a.events_since(a.now - 30 * DAY)
            if "created[gte]" in q:
                events = [e for e in events if e["created"] >= int(q["created[gte]"])]
            types = _listed(q, "types")
            if types:
                events = [e for e in events if e["type"] in types]
            events = sorted(events, key=lambda e: (-e["created"], e["id"]))
            return self._page(events, q, path)
        return None

    def _expand(self, page: dict[str, Any], q: dict[str, Any]) -> dict[str, Any]:
        """Discount ids replaced by their objects along each `expand[]` path that ends in
        `discounts` (copies: the account keeps ids)."""
        paths = [p.split(".") for p in _listed(q, "expand") if p.endswith("discounts")]
        if not paths or not self.account.discounts:
            return page
        page = copy.deepcopy(page)
        for steps in paths:
            self._expand_at(page, steps)
        return page

    def _expand_at(self, value: Any, steps: list[str]) -> None:
        if isinstance(value, list):
            for inner in value:
                self._expand_at(inner, steps)
            return
        if not isinstance(value, dict) or not steps:
            return
        name, rest = steps[0], steps[1:]
        if rest:
            self._expand_at(value.get(name), rest)
            return
        found = value.get(name)
        if isinstance(found, list):
            value[name] = [
                self.account.discounts.get(d, d) if isinstance(d, str) else d for d in found
            ]

    def _price(self, price: dict[str, Any], expand: bool) -> dict[str, Any]:
        tiers = self.account.tiers.get(price["id"])
        return {**price, "tiers": tiers} if expand and tiers is not None else price

    def _page(self, items: Iterable[dict[str, Any]], q: dict[str, Any], url: str) -> dict[str, Any]:
        rows = list(items)
        limit = int(q.get("limit", 10))
        start = 0
        if "starting_after" in q:
            ids = [r["id"] for r in rows]
            start = ids.index(q["starting_after"]) + 1
        page = rows[start : start + limit]
        return {"object": "list", "data": page, "has_more": start + limit < len(rows), "url": url}


def tier(account: Account, price_id: str) -> None:
    """Make a per-unit price a volume-tiered one billing the same: one tier up to infinity.

    Changed in place, so every event, subscription and invoice line that carries the price
    carries it tiered and without its tiers, as Stripe sends it.
    """
    price = account.prices[price_id]
    amount = int(price["unit_amount"])
    price.update(
        billing_scheme="tiered", tiers_mode="volume", unit_amount=None, unit_amount_decimal=None
    )
    account.tiers[price_id] = [
        {
            "up_to": None,
            "unit_amount": amount,
            "unit_amount_decimal": str(amount),
            "flat_amount": None,
            "flat_amount_decimal": None,
        }
    ]
