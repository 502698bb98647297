"""Read Stripe payloads of both API shapes into small frozen objects.

Before API version 2025-03-31 ("old"): periods on the subscription, `invoice.subscription`, a
single `discount` object on subscriptions and items, invoice lines naming `price` and
`subscription_item` directly. From 2025-03-31 ("new"): periods on items,
`invoice.parent.subscription_details.subscription`, `discounts` arrays (ids unless expanded),
invoice lines under `parent.subscription_item_details` and `pricing.price_details`. From
2025-09-30 a discount names its coupon as `source.coupon` (an id) instead of a `coupon` object.

Readers never guess money: a field that is absent stays None and the pricing decides.
JSON numbers that are floats (`percent_off: 33.3`) are read through their text into Decimal.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any

__all__ = [
    "Coupon",
    "Discount",
    "Invoice",
    "InvoiceLine",
    "Item",
    "PayloadError",
    "Price",
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


def _decimal(value: Any) -> Decimal | None:
    if value is None or isinstance(value, bool):
        return None
    try:
        return Decimal(str(value))
    except InvalidOperation:
        return None


def _int(value: Any) -> int | None:
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    return None


def _dict(value: Any) -> Json:
    return value if isinstance(value, Mapping) else {}


class PayloadError(ValueError):
    """A field Stripe always sends in a known form arrived in another: never guess it."""


def _list(value: Any, name: str = "list") -> list[Any]:
    if value is None:
        return []
    if isinstance(value, Mapping):  # a Stripe list object {"object": "list", "data": [...]}
        value = value.get("data")
        if value is None:
            return []
    if not isinstance(value, list):
        raise PayloadError(f"{name} is not a list")
    return value


def _amount(obj: Json, name: str) -> Decimal | None:
    """`x_decimal` (string, fractions of a minor unit) wins over the integer `x`."""
    raw_precise, raw_whole = obj.get(f"{name}_decimal"), obj.get(name)
    if raw_precise is not None:
        precise = _decimal(raw_precise) if isinstance(raw_precise, str | int) else None
        if precise is None or not precise.is_finite() or isinstance(raw_precise, bool):
            raise PayloadError(f"{name}_decimal {raw_precise!r} is not a decimal string")
        return precise
    if raw_whole is None:
        return None
    if isinstance(raw_whole, bool) or not isinstance(raw_whole, int):
        raise PayloadError(f"{name} {raw_whole!r} is not a whole number of minor units")
    return Decimal(raw_whole)


def _read_tiers(value: Any) -> tuple[Tier, ...] | None:
    if not isinstance(value, list):
        return None
    return tuple(
        Tier(
            up_to=_int(_dict(tier).get("up_to")),
            unit_amount=_amount(_dict(tier), "unit_amount"),
            flat_amount=_amount(_dict(tier), "flat_amount"),
        )
        for tier in value
    )


def read_price(obj: Json) -> Price:
    """A `price` object or a legacy `plan` object."""
    legacy = obj.get("object") == "plan" or "amount" in obj or "interval" in obj
    recurring = obj if legacy else _dict(obj.get("recurring"))
    transform = _dict(obj.get("transform_usage" if legacy else "transform_quantity"))
    return Price(
        id=object_id(obj) or "",
        billing_scheme=str(obj.get("billing_scheme") or "per_unit"),
        unit_amount=_amount(obj, "amount" if legacy else "unit_amount"),
        tiers_mode=obj.get("tiers_mode") if isinstance(obj.get("tiers_mode"), str) else None,
        tiers=_read_tiers(obj.get("tiers")),
        interval=str(recurring.get("interval") or "month"),
        interval_count=_int(recurring.get("interval_count")) or 1,
        usage_type=str(recurring.get("usage_type") or "licensed"),
        divide_by=_int(transform.get("divide_by")),
        round_mode=transform.get("round") if isinstance(transform.get("round"), str) else None,
        legacy_plan=legacy,
    )


def read_coupon(obj: Json) -> Coupon:
    options = _dict(obj.get("currency_options"))
    return Coupon(
        id=object_id(obj) or "",
        percent_off=_decimal(obj.get("percent_off")),
        amount_off=_int(obj.get("amount_off")),
        currency=str(obj["currency"]).lower() if isinstance(obj.get("currency"), str) else None,
        currency_options=tuple(
            sorted(
                (code.lower(), amount)
                for code, option in options.items()
                if (amount := _int(_dict(option).get("amount_off"))) is not None
            )
        ),
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


def _read_discounts(obj: Json) -> tuple[Discount, ...]:
    """Legacy single `discount` and current `discounts` array, without duplicates."""
    found: list[Discount] = []
    for raw in [obj.get("discount"), *_list(obj.get("discounts"))]:
        discount = read_discount(raw)
        if discount is not None and all(d.id != discount.id for d in found):
            found.append(discount)
    return tuple(found)


def _read_item(obj: Json) -> Item:
    raw_price = obj.get("price") if isinstance(obj.get("price"), Mapping) else obj.get("plan")
    return Item(
        id=object_id(obj) or "",
        price=read_price(_dict(raw_price)),
        quantity=_int(obj.get("quantity")),
        discounts=_read_discounts(obj),
    )


def _item_currency(obj: Json) -> str | None:
    for raw in _list(obj.get("items")):
        price = _dict(_dict(raw).get("price")) or _dict(_dict(raw).get("plan"))
        if isinstance(price.get("currency"), str):
            return str(price["currency"])
    return None


def read_subscription(obj: Json) -> Subscription:
    sub_id = object_id(obj)
    if sub_id is None:
        raise PayloadError("the subscription has no id")
    items = tuple(_read_item(_dict(item)) for item in _list(obj.get("items"), "items"))
    period_start = _int(obj.get("current_period_start"))
    if period_start is None:
        starts = [_int(_dict(raw).get("current_period_start")) for raw in _list(obj.get("items"))]
        period_start = max((s for s in starts if s is not None), default=None)
    currency = obj.get("currency")
    if not isinstance(currency, str):
        currency = _item_currency(obj) or "usd"
    return Subscription(
        id=sub_id,
        customer=object_id(obj.get("customer")),
        status=str(obj.get("status") or ""),
        currency=currency.lower(),
        items=items,
        discounts=_read_discounts(obj),
        pause_collection=bool(obj.get("pause_collection")),
        latest_invoice=object_id(obj.get("latest_invoice")),
        ended_at=_int(obj.get("ended_at")),
        cancel_at_period_end=bool(obj.get("cancel_at_period_end")),
        trial_end=_int(obj.get("trial_end")),
        current_period_start=period_start,
        start_date=_int(obj.get("start_date")),
        created=_int(obj.get("created")),
        canceled_at=_int(obj.get("canceled_at")),
        collection_method=obj.get("collection_method")
        if isinstance(obj.get("collection_method"), str)
        else None,
    )


def _line_amount_excluding_tax(obj: Json) -> int:
    """Old shape: `amount_excluding_tax`. New shape: `amount` less its tax-inclusive `taxes`."""
    excluding_tax = _int(obj.get("amount_excluding_tax"))
    if excluding_tax is not None:
        return excluding_tax
    inclusive = sum(
        _int(_dict(tax).get("amount")) or 0
        for tax in _list(obj.get("taxes"))
        if _dict(tax).get("tax_behavior") == "inclusive"
    )
    return (_int(obj.get("amount")) or 0) - inclusive


def _line_period(obj: Json) -> tuple[int, int] | None:
    period = _dict(obj.get("period"))
    start, end = _int(period.get("start")), _int(period.get("end"))
    return None if start is None or end is None else (start, end)


def read_invoice_line(obj: Json) -> InvoiceLine:
    """Old shape: `proration`, `subscription`, `subscription_item` on the line. New shape: under
    `parent.subscription_item_details` (a subscription item's line) or
    `parent.invoice_item_details` (an invoice item's: prorations land there, with no item)."""
    parent = _dict(obj.get("parent"))
    details = _dict(parent.get("subscription_item_details"))
    item_details = _dict(parent.get("invoice_item_details"))
    price_id = object_id(obj.get("price")) or object_id(obj.get("plan"))
    if price_id is None:
        price_id = object_id(_dict(_dict(obj.get("pricing")).get("price_details")).get("price"))
    return InvoiceLine(
        amount=_line_amount_excluding_tax(obj),
        subscription=object_id(obj.get("subscription"))
        or object_id(details.get("subscription"))
        or object_id(item_details.get("subscription")),
        subscription_item=object_id(obj.get("subscription_item"))
        or object_id(details.get("subscription_item")),
        price_id=price_id,
        proration=bool(
            obj.get("proration") or details.get("proration") or item_details.get("proration")
        ),
        id=object_id(obj),
        quantity=_int(obj.get("quantity")),
        period=_line_period(obj),
    )


def read_invoice(obj: Json) -> Invoice:
    lines = tuple(read_invoice_line(_dict(line)) for line in _list(obj.get("lines")))
    details = _dict(_dict(obj.get("parent")).get("subscription_details"))
    transitions = _dict(obj.get("status_transitions"))
    subscription = object_id(obj.get("subscription")) or object_id(details.get("subscription"))
    if subscription is None:
        subscription = next((line.subscription for line in lines if line.subscription), None)
    return Invoice(
        id=object_id(obj) or "",
        customer=object_id(obj.get("customer")),
        subscription=subscription,
        status=obj.get("status") if isinstance(obj.get("status"), str) else None,
        billing_reason=obj.get("billing_reason")
        if isinstance(obj.get("billing_reason"), str)
        else None,
        amount_due=_int(obj.get("amount_due")) or 0,
        amount_paid=_int(obj.get("amount_paid")) or 0,
        created=_int(obj.get("created")),
        currency=str(obj.get("currency") or "usd").lower(),
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
