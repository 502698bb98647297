"""Read Stripe payloads of both API shapes into small frozen objects.

Before API version 2025-03-31 ("old"): periods on the subscription, `invoice.subscription`, a
single `discount` object on subscriptions and items, invoice lines naming `price` and
`subscription_item` directly. From 2025-03-31 ("new"): periods on items,
`invoice.parent.subscription_details.subscription`, `discounts` arrays (ids unless expanded),
invoice lines under `parent.subscription_item_details` and `pricing.price_details`. From
2025-09-30 a discount names its coupon as `source.coupon` (an id) instead of a `coupon` object.

Readers never guess money: a field that is absent stays None and the pricing decides.
JSON numbers that are floats (`percent_off: 33.3`) are read through their text into Decimal.
Every field the MRR arithmetic uses is checked against what Stripe documents: a value Stripe
never sends raises `RefusedInput`, naming the field and the value (docs/mrr-rules.md §10.1).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any

__all__ = [
    "INT64_MAX",
    "Coupon",
    "Discount",
    "Invoice",
    "InvoiceLine",
    "Item",
    "PayloadError",
    "Price",
    "RefusedInput",
    "Subscription",
    "Tier",
    "is_old_shape",
    "object_id",
    "read_coupon",
    "read_discount",
    "read_invoice",
    "read_invoice_line",
    "read_price",
    "read_subscription",
    "subscription_of",
]

Json = Mapping[str, Any]

INT64_MAX = 2**63 - 1  # the ledger keeps minor units in signed 64-bit columns
# The most intervals of each unit Stripe bills in: at most three years between invoices.
INTERVAL_LIMITS = {"day": 3 * 365, "week": 156, "month": 36, "year": 3}
_LAST_TIMESTAMP = 253_402_300_799  # 9999-12-31T23:59:59Z, the last second a datetime holds


@dataclass(frozen=True, slots=True)
class Tier:
    up_to: int | None  # None: "inf"
    unit_amount: Decimal | None
    flat_amount: Decimal | None


@dataclass(frozen=True, slots=True)
class Price:
    id: str
    billing_scheme: str  # "per_unit" or "tiered"
    unit_amount: Decimal | None
    tiers_mode: str | None  # "volume" or "graduated"
    tiers: tuple[Tier, ...] | None  # None: not expanded in this payload
    interval: str
    interval_count: int
    usage_type: str  # "licensed" or "metered"
    divide_by: int | None  # transform_quantity / transform_usage
    round_mode: str | None
    legacy_plan: bool
    product: str | None = None  # for segments (docs/mrr-rules.md §13); no part of the MRR

    @property
    def is_tiered(self) -> bool:
        return self.billing_scheme == "tiered"

    @property
    def is_metered(self) -> bool:
        return self.usage_type == "metered"


@dataclass(frozen=True, slots=True)
class Coupon:
    id: str
    percent_off: Decimal | None
    amount_off: int | None
    currency: str | None
    currency_options: tuple[tuple[str, int], ...]
    duration: str | None

    def amount_off_in(self, currency: str) -> int | None:
        """The coupon's amount_off in the given currency, if it has one there."""
        for code, amount in self.currency_options:
            if code == currency:
                return amount
        if self.amount_off is not None and self.currency in (None, currency):
            return self.amount_off
        return None


@dataclass(frozen=True, slots=True)
class Discount:
    """A discount, possibly known only by id (as in new-shape `discounts` arrays)."""

    id: str
    coupon_id: str | None
    coupon: Coupon | None  # present when the payload carried the coupon in full
    customer: str | None
    subscription: str | None
    subscription_item: str | None


@dataclass(frozen=True, slots=True)
class Item:
    id: str
    price: Price
    quantity: int | None
    discounts: tuple[Discount, ...]


@dataclass(frozen=True, slots=True)
class Subscription:
    id: str
    customer: str | None
    status: str
    currency: str
    items: tuple[Item, ...]
    discounts: tuple[Discount, ...]
    pause_collection: bool
    latest_invoice: str | None
    ended_at: int | None
    cancel_at_period_end: bool
    trial_end: int | None
    current_period_start: int | None
    start_date: int | None = None
    created: int | None = None
    canceled_at: int | None = None
    collection_method: str | None = None


@dataclass(frozen=True, slots=True)
class InvoiceLine:
    amount: int  # excluding tax
    subscription: str | None
    subscription_item: str | None
    price_id: str | None
    proration: bool
    id: str | None = None
    quantity: int | None = None
    period: tuple[int, int] | None = None  # (start, end)


@dataclass(frozen=True, slots=True)
class Invoice:
    """The part of an invoice that signals payment state and metered amounts."""

    id: str
    customer: str | None
    subscription: str | None
    status: str | None
    billing_reason: str | None
    amount_due: int
    amount_paid: int
    created: int | None
    currency: str
    lines: tuple[InvoiceLine, ...]
    total: int | None = None
    attempt_count: int = 0
    attempted: bool = False
    finalized_at: int | None = None
    paid_at: int | None = None


def object_id(value: Any) -> str | None:
    """The id of a Stripe reference that may be an id string or an expanded object."""
    if isinstance(value, str) and value:
        return value
    if isinstance(value, Mapping):
        found = value.get("id")
        return found if isinstance(found, str) and found else None
    return None


class PayloadError(ValueError):
    """A payload the MRR rules cannot read: never guess it."""


class RefusedInput(PayloadError):
    """A field outside what Stripe documents: its event fails and appends nothing."""

    def __init__(self, field: str, value: Any, owner: str, rule: str) -> None:
        super().__init__(f"{field} {_shown(value)} on {owner or 'an object without id'}: {rule}")
        self.field = field
        self.value = value


def _shown(value: Any) -> str:
    """The value as it arrived, short enough for a reason people read."""
    if isinstance(value, int) and not isinstance(value, bool) and value.bit_length() > 128:
        return f"(a {value.bit_length()}-bit number)"
    text = json.dumps(value, default=repr)
    return text if len(text) <= 60 else f"{text[:57]}..."


def _dict(value: Any) -> Json:
    return value if isinstance(value, Mapping) else {}


def _int(value: Any) -> int | None:
    """A field the MRR arithmetic does not use (backfill metadata): an int, or else None."""
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    return None


def _whole(value: Any, field: str, owner: str, noun: str, minimum: int | None = 0) -> int | None:
    """An optional Stripe integer: a whole number, at least `minimum`, inside 64 bits."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise RefusedInput(field, value, owner, f"Stripe {noun} are whole numbers")
    if minimum is not None and value < minimum:
        raise RefusedInput(field, value, owner, f"Stripe {noun} are >= {minimum}")
    if not -INT64_MAX - 1 <= value <= INT64_MAX:
        raise RefusedInput(field, value, owner, "beyond the ledger's 64-bit range")
    return value


def _timestamp(value: Any, field: str, owner: str) -> int | None:
    found = _whole(value, field, owner, "timestamps")
    if found is not None and found > _LAST_TIMESTAMP:
        raise RefusedInput(field, value, owner, "Stripe timestamps fall before the year 10000")
    return found


def _choice(value: Any, field: str, owner: str, allowed: tuple[str, ...]) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or value not in allowed:
        raise RefusedInput(field, value, owner, f"Stripe sends one of {', '.join(allowed)}")
    return value


def _code(value: Any, field: str, owner: str) -> str:
    if not (isinstance(value, str) and len(value) == 3 and value.isascii() and value.isalpha()):
        raise RefusedInput(field, value, owner, "Stripe currencies are three-letter codes")
    return value.lower()


def _currency(value: Any, field: str, owner: str) -> str | None:
    return None if value is None else _code(value, field, owner)


def _list(value: Any, field: str, owner: str) -> list[Any]:
    if value is None:
        return []
    if isinstance(value, Mapping):  # a Stripe list object {"object": "list", "data": [...]}
        value = value.get("data")
        if value is None:
            return []
    if not isinstance(value, list):
        raise RefusedInput(field, value, owner, "Stripe sends a list here")
    return value


def _amount(obj: Json, name: str, owner: str) -> Decimal | None:
    """An amount >= 0: `x_decimal` (a string, fractions of a minor unit) wins over `x`."""
    whole = _whole(obj.get(name), name, owner, "amounts")
    field, raw = f"{name}_decimal", obj.get(f"{name}_decimal")
    if raw is None:
        return None if whole is None else Decimal(whole)
    precise = None
    if isinstance(raw, str) or (isinstance(raw, int) and not isinstance(raw, bool)):
        try:
            precise = Decimal(raw)
        except InvalidOperation:
            precise = None
    if precise is None or not precise.is_finite():
        raise RefusedInput(field, raw, owner, "Stripe sends decimal amounts as decimal strings")
    if precise < 0:
        raise RefusedInput(field, raw, owner, "Stripe amounts are >= 0")
    if precise > INT64_MAX:
        raise RefusedInput(field, raw, owner, "beyond the ledger's 64-bit range")
    return precise


def _percent(value: Any, owner: str) -> Decimal | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise RefusedInput("percent_off", value, owner, "Stripe percentages are numbers")
    percent = Decimal(str(value))
    if not (percent.is_finite() and 0 <= percent <= 100):
        raise RefusedInput("percent_off", value, owner, "Stripe percentages are within 0..100")
    return percent


def _read_tier(tier: Any, owner: str) -> Tier:
    if not isinstance(tier, Mapping):
        raise RefusedInput("tiers", tier, owner, "Stripe sends each tier as an object")
    up_to = tier.get("up_to")
    return Tier(
        up_to=None if up_to in (None, "inf") else _whole(up_to, "up_to", owner, "tier bounds", 1),
        unit_amount=_amount(tier, "unit_amount", owner),
        flat_amount=_amount(tier, "flat_amount", owner),
    )


def _read_tiers(value: Any, owner: str) -> tuple[Tier, ...] | None:
    if value is None:
        return None
    if not isinstance(value, list):
        raise RefusedInput("tiers", value, owner, "Stripe sends tiers as a list")
    return tuple(_read_tier(tier, owner) for tier in value)


def _interval(recurring: Json, owner: str) -> tuple[str, int]:
    """Stripe bills every 1 to `INTERVAL_LIMITS[interval]` intervals: 1 day to 3 years."""
    interval = recurring.get("interval")
    if not isinstance(interval, str) or interval not in INTERVAL_LIMITS:
        raise RefusedInput("interval", interval, owner, "Stripe bills by day, week, month or year")
    raw_count = recurring.get("interval_count")
    count = _whole(raw_count, "interval_count", owner, "interval counts", 1)
    limit = INTERVAL_LIMITS[interval]
    if count is None or count > limit:
        rule = f"Stripe bills every 1 to {limit} {interval}s (at most three years)"
        raise RefusedInput("interval_count", raw_count, owner, rule)
    return interval, count


def read_price(obj: Json) -> Price:
    """A `price` object or a legacy `plan` object."""
    legacy = obj.get("object") == "plan" or "amount" in obj or "interval" in obj
    price_id = object_id(obj) or ""
    recurring = obj if legacy else obj.get("recurring")
    if not isinstance(recurring, Mapping):
        rule = "Stripe sends a recurring price's terms as an object"
        raise RefusedInput("recurring", recurring, price_id, rule)
    transform = _dict(obj.get("transform_usage" if legacy else "transform_quantity"))
    interval, interval_count = _interval(recurring, price_id)
    scheme = _choice(obj.get("billing_scheme"), "billing_scheme", price_id, ("per_unit", "tiered"))
    tiers_mode = None
    if scheme == "tiered":
        modes = ("volume", "graduated")
        tiers_mode = _choice(obj.get("tiers_mode"), "tiers_mode", price_id, modes)
        if tiers_mode is None:
            raise RefusedInput("tiers_mode", None, price_id, "Stripe sends volume or graduated")
    usage = _choice(recurring.get("usage_type"), "usage_type", price_id, ("licensed", "metered"))
    return Price(
        id=price_id,
        billing_scheme=scheme or "per_unit",
        unit_amount=_amount(obj, "amount" if legacy else "unit_amount", price_id),
        tiers_mode=tiers_mode,
        tiers=_read_tiers(obj.get("tiers"), price_id),
        interval=interval,
        interval_count=interval_count,
        usage_type=usage or "licensed",
        divide_by=_whole(transform.get("divide_by"), "divide_by", price_id, "divisors", 1),
        round_mode=_choice(transform.get("round"), "round", price_id, ("up", "down")),
        legacy_plan=legacy,
        product=object_id(obj.get("product")),
    )


def _currency_options(value: Any, owner: str) -> tuple[tuple[str, int], ...]:
    found = []
    for code, option in _dict(value).items():
        amount = _whole(_dict(option).get("amount_off"), "amount_off", owner, "amounts")
        if amount is not None:
            found.append((_code(code, "currency_options", owner), amount))
    return tuple(sorted(found))


def read_coupon(obj: Json) -> Coupon:
    coupon_id = object_id(obj) or ""
    return Coupon(
        id=coupon_id,
        percent_off=_percent(obj.get("percent_off"), coupon_id),
        amount_off=_whole(obj.get("amount_off"), "amount_off", coupon_id, "amounts"),
        currency=_currency(obj.get("currency"), "currency", coupon_id),
        currency_options=_currency_options(obj.get("currency_options"), coupon_id),
        duration=obj.get("duration") if isinstance(obj.get("duration"), str) else None,
    )


def _has_terms(obj: Json) -> bool:
    return "percent_off" in obj or "amount_off" in obj


def read_discount(value: Any) -> Discount | None:
    """A discount from an id or an object; its coupon from `coupon` or `source.coupon`."""
    if isinstance(value, str) and value:
        return Discount(value, None, None, None, None, None)
    if not isinstance(value, Mapping):
        return None
    raw_coupon = value.get("coupon")
    if raw_coupon is None:
        raw_coupon = _dict(value.get("source")).get("coupon")
    coupon = read_coupon(raw_coupon) if isinstance(raw_coupon, Mapping) else None
    if coupon is not None and not _has_terms(_dict(raw_coupon)):
        coupon = None
    coupon_id = object_id(raw_coupon)
    # Discounts from before discount ids existed carry only their coupon.
    discount_id = object_id(value) or (f"coupon:{coupon_id}" if coupon_id else None)
    if discount_id is None:
        return None
    return Discount(
        id=discount_id,
        coupon_id=coupon_id,
        coupon=coupon,
        customer=object_id(value.get("customer")),
        subscription=object_id(value.get("subscription")),
        subscription_item=object_id(value.get("subscription_item")),
    )


def _read_discounts(obj: Json, owner: str) -> tuple[Discount, ...]:
    """Legacy single `discount` and current `discounts` array, without duplicates."""
    found: list[Discount] = []
    for raw in [obj.get("discount"), *_list(obj.get("discounts"), "discounts", owner)]:
        discount = read_discount(raw)
        if discount is not None and all(d.id != discount.id for d in found):
            found.append(discount)
    return tuple(found)


def _read_item(obj: Any, owner: str) -> Item:
    if not isinstance(obj, Mapping):
        raise RefusedInput("items", obj, owner, "Stripe sends subscription items as objects")
    item_id = object_id(obj) or ""
    raw_price = obj.get("price") if isinstance(obj.get("price"), Mapping) else obj.get("plan")
    if not isinstance(raw_price, Mapping) or object_id(raw_price) is None:
        rule = "Stripe sends a subscription item's price as an object with an id"
        raise RefusedInput("price", obj.get("price"), item_id, rule)
    return Item(
        id=item_id,
        price=read_price(raw_price),
        quantity=_whole(obj.get("quantity"), "quantity", item_id, "quantities"),
        discounts=_read_discounts(obj, item_id),
    )


def _item_currency(items: list[Any]) -> str | None:
    for raw in items:
        price = _dict(_dict(raw).get("price")) or _dict(_dict(raw).get("plan"))
        if isinstance(price.get("currency"), str):
            return str(price["currency"])
    return None


def read_subscription(obj: Json) -> Subscription:
    sub_id = object_id(obj)
    if sub_id is None:
        rule = "Stripe subscriptions always have an id"
        raise RefusedInput("id", obj.get("id"), "a subscription", rule)
    raw_items = _list(obj.get("items"), "items", sub_id)
    items = tuple(_read_item(raw, sub_id) for raw in raw_items)
    period_start = _timestamp(obj.get("current_period_start"), "current_period_start", sub_id)
    if period_start is None:
        starts = [
            _timestamp(_dict(raw).get("current_period_start"), "current_period_start", item.id)
            for raw, item in zip(raw_items, items, strict=True)
        ]
        period_start = max((s for s in starts if s is not None), default=None)
    currency = obj.get("currency")
    if currency is None:
        currency = _item_currency(raw_items) or "usd"
    return Subscription(
        id=sub_id,
        customer=object_id(obj.get("customer")),
        status=str(obj.get("status") or ""),
        currency=_code(currency, "currency", sub_id),
        items=items,
        discounts=_read_discounts(obj, sub_id),
        pause_collection=bool(obj.get("pause_collection")),
        latest_invoice=object_id(obj.get("latest_invoice")),
        ended_at=_timestamp(obj.get("ended_at"), "ended_at", sub_id),
        cancel_at_period_end=bool(obj.get("cancel_at_period_end")),
        trial_end=_timestamp(obj.get("trial_end"), "trial_end", sub_id),
        current_period_start=period_start,
        start_date=_int(obj.get("start_date")),
        created=_int(obj.get("created")),
        canceled_at=_int(obj.get("canceled_at")),
        collection_method=obj.get("collection_method")
        if isinstance(obj.get("collection_method"), str)
        else None,
    )


def _line_amount_excluding_tax(obj: Json, owner: str) -> int:
    """Old shape: `amount_excluding_tax`. New shape: `amount` less its tax-inclusive `taxes`."""
    excluding_tax = _whole(
        obj.get("amount_excluding_tax"), "amount_excluding_tax", owner, "amounts", None
    )
    if excluding_tax is not None:
        return excluding_tax
    inclusive = sum(
        _whole(_dict(tax).get("amount"), "taxes", owner, "tax amounts") or 0
        for tax in _list(obj.get("taxes"), "taxes", owner)
        if _dict(tax).get("tax_behavior") == "inclusive"
    )
    amount = _whole(obj.get("amount"), "amount", owner, "amounts", None) or 0
    return amount - inclusive


def _line_period(obj: Json) -> tuple[int, int] | None:
    period = _dict(obj.get("period"))
    start, end = _int(period.get("start")), _int(period.get("end"))
    return None if start is None or end is None else (start, end)


def read_invoice_line(obj: Json) -> InvoiceLine:
    """Old shape: `proration`, `subscription`, `subscription_item` on the line. New shape: under
    `parent.subscription_item_details` (a subscription item's line) or
    `parent.invoice_item_details` (an invoice item's: prorations land there, with no item)."""
    line_id = object_id(obj)
    parent = _dict(obj.get("parent"))
    details = _dict(parent.get("subscription_item_details"))
    item_details = _dict(parent.get("invoice_item_details"))
    price_id = object_id(obj.get("price")) or object_id(obj.get("plan"))
    if price_id is None:
        price_id = object_id(_dict(_dict(obj.get("pricing")).get("price_details")).get("price"))
    item = object_id(obj.get("subscription_item")) or object_id(details.get("subscription_item"))
    proration = bool(
        obj.get("proration") or details.get("proration") or item_details.get("proration")
    )
    amount = _line_amount_excluding_tax(obj, line_id or "")
    if item is not None and not proration and amount < 0:
        rule = "Stripe bills a subscription item's period at >= 0"
        raise RefusedInput("amount", amount, line_id or "", rule)
    return InvoiceLine(
        amount=amount,
        subscription=object_id(obj.get("subscription"))
        or object_id(details.get("subscription"))
        or object_id(item_details.get("subscription")),
        subscription_item=item,
        price_id=price_id,
        proration=proration,
        id=line_id,
        quantity=_int(obj.get("quantity")),
        period=_line_period(obj),
    )


def read_invoice(obj: Json) -> Invoice:
    invoice_id = object_id(obj) or ""
    raw_lines = _list(obj.get("lines"), "lines", invoice_id)
    lines = tuple(read_invoice_line(_dict(line)) for line in raw_lines)
    details = _dict(_dict(obj.get("parent")).get("subscription_details"))
    transitions = _dict(obj.get("status_transitions"))
    subscription = object_id(obj.get("subscription")) or object_id(details.get("subscription"))
    if subscription is None:
        subscription = next((line.subscription for line in lines if line.subscription), None)
    return Invoice(
        id=invoice_id,
        customer=object_id(obj.get("customer")),
        subscription=subscription,
        status=obj.get("status") if isinstance(obj.get("status"), str) else None,
        billing_reason=obj.get("billing_reason")
        if isinstance(obj.get("billing_reason"), str)
        else None,
        amount_due=_whole(obj.get("amount_due"), "amount_due", invoice_id, "amounts") or 0,
        amount_paid=_whole(obj.get("amount_paid"), "amount_paid", invoice_id, "amounts") or 0,
        created=_timestamp(obj.get("created"), "created", invoice_id),
        currency=_currency(obj.get("currency"), "currency", invoice_id) or "usd",
        lines=lines,
        total=_int(obj.get("total")),
        attempt_count=_int(obj.get("attempt_count")) or 0,
        attempted=bool(obj.get("attempted")),
        finalized_at=_int(transitions.get("finalized_at")),
        paid_at=_int(transitions.get("paid_at")),
    )


def is_old_shape(subscription: Json) -> bool:
    """Before 2025-03-31 a subscription carries its billing period; from then on, its items."""
    return subscription.get("current_period_start") is not None


def subscription_of(obj: Json) -> str | None:
    """The subscription a Stripe object concerns: itself, an invoice's (either shape), or the
    one it names (a discount, an invoice item)."""
    kind = obj.get("object")
    if kind == "subscription":
        return object_id(obj)
    if kind == "invoice":
        return read_invoice(obj).subscription
    return object_id(obj.get("subscription"))
