"""Build Stripe-shaped events for tests, in either API shape.

`shape="old"`: API before 2025-03-31 (periods and a single `discount` object on the subscription,
`invoice.subscription`, invoice lines naming `price`/`subscription_item`).
`shape="new"`: 2025-03-31 and later (periods on items, `discounts` arrays of ids,
`invoice.parent.subscription_details`, lines under `parent.subscription_item_details`).
Discounts in `shape="new"` name their coupon as `source.coupon` (an id), as from 2025-09-30.

Every builder returns plain dicts as Stripe sends them; `record(event)` parses one.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Literal

from ledger.rules.events import EventRecord, parse_event

Shape = Literal["old", "new"]
ItemSpec = tuple[int | str, str, int, int] | Mapping[str, Any]
API_VERSIONS: dict[str, str] = {"old": "2024-06-20", "new": "2025-09-30.clover"}
PERIOD = {"day": 86_400, "week": 7 * 86_400, "month": 30 * 86_400, "year": 365 * 86_400}


def event(
    type: str,
    obj: Mapping[str, Any],
    created: int,
    *,
    event_id: str | None = None,
    shape: Shape = "new",
    previous_attributes: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    data: dict[str, Any] = {"object": dict(obj)}
    if previous_attributes is not None:
        data["previous_attributes"] = dict(previous_attributes)
    return {
        "id": event_id or f"evt_{obj.get('id', 'x')}_{type.rsplit('.', 1)[-1]}_{created}",
        "object": "event",
        "api_version": API_VERSIONS[shape],
        "created": created,
        "data": data,
        "livemode": False,
        "pending_webhooks": 1,
        "request": {"id": None, "idempotency_key": None},
        "type": type,
    }


def record(raw: Mapping[str, Any]) -> EventRecord:
    return parse_event(dict(raw))


def price(
    amount: int | str | None,
    interval: str = "month",
    interval_count: int = 1,
    *,
    price_id: str | None = None,
    currency: str = "usd",
    usage_type: str = "licensed",
    tiers: Sequence[Mapping[str, Any]] | None = None,
    tiers_mode: str | None = None,
    expand_tiers: bool = True,
) -> dict[str, Any]:
    """A price; a str `amount` is a `unit_amount_decimal`. `tiers` makes it tiered."""
    decimal = str(amount) if amount is not None else None
    whole = amount if isinstance(amount, int) else None
    obj: dict[str, Any] = {
        "id": price_id or f"price_{amount}_{interval}{interval_count}_{usage_type}",
        "object": "price",
        "active": True,
        "billing_scheme": "tiered" if tiers is not None else "per_unit",
        "created": 1_700_000_000,
        "currency": currency,
        "custom_unit_amount": None,
        "livemode": False,
        "lookup_key": None,
        "metadata": {},
        "nickname": None,
        "product": "prod_test",
        "recurring": {
            "interval": interval,
            "interval_count": interval_count,
            "meter": None,
            "usage_type": usage_type,
        },
        "tax_behavior": "unspecified",
        "tiers_mode": tiers_mode,
        "transform_quantity": None,
        "type": "recurring",
        "unit_amount": whole if tiers is None else None,
        "unit_amount_decimal": decimal if tiers is None else None,
    }
    if tiers is not None and expand_tiers:
        obj["tiers"] = [_tier(t) for t in tiers]
    return obj


def _tier(spec: Mapping[str, Any]) -> dict[str, Any]:
    unit, flat = spec.get("unit_amount"), spec.get("flat_amount")
    return {
        "flat_amount": flat if isinstance(flat, int) else None,
        "flat_amount_decimal": str(flat) if flat is not None else None,
        "unit_amount": unit if isinstance(unit, int) else None,
        "unit_amount_decimal": str(unit) if unit is not None else None,
        "up_to": spec.get("up_to"),
    }


def plan_from(price_obj: Mapping[str, Any]) -> dict[str, Any]:
    """The legacy `plan` twin of a price."""
    recurring = price_obj["recurring"]
    plan = {
        "id": price_obj["id"],
        "object": "plan",
        "active": True,
        "amount": price_obj["unit_amount"],
        "amount_decimal": price_obj["unit_amount_decimal"],
        "billing_scheme": price_obj["billing_scheme"],
        "currency": price_obj["currency"],
        "interval": recurring["interval"],
        "interval_count": recurring["interval_count"],
        "product": price_obj["product"],
        "tiers_mode": price_obj["tiers_mode"],
        "transform_usage": None,
        "usage_type": recurring["usage_type"],
    }
    if "tiers" in price_obj:
        plan["tiers"] = price_obj["tiers"]
    return plan


def _price_of(spec: ItemSpec, currency: str) -> tuple[dict[str, Any], int | None]:
    if isinstance(spec, Mapping):
        quantity = spec.get("quantity", 1)
        return dict(spec["price"]), quantity
    amount, interval, count, quantity = spec
    return price(amount, interval, count, currency=currency), quantity


def item(
    sub_id: str,
    index: int,
    spec: ItemSpec,
    *,
    currency: str = "usd",
    shape: Shape = "new",
    period_start: int = 1_700_000_000,
    discounts: Sequence[Any] = (),
    legacy_plan_only: bool = False,
) -> dict[str, Any]:
    price_obj, quantity = _price_of(spec, currency)
    metered = price_obj["recurring"]["usage_type"] == "metered"
    obj: dict[str, Any] = {
        "id": spec.get("id", f"si_{sub_id}_{index}")
        if isinstance(spec, Mapping)
        else f"si_{sub_id}_{index}",
        "object": "subscription_item",
        "created": period_start,
        "discounts": list(discounts),
        "metadata": {},
        "plan": plan_from(price_obj),
        "price": price_obj,
        "subscription": sub_id,
        "tax_rates": [],
    }
    if not metered:
        obj["quantity"] = quantity
    if legacy_plan_only:
        del obj["price"]
    if shape == "new":
        span = PERIOD[price_obj["recurring"]["interval"]] * price_obj["recurring"]["interval_count"]
        obj["current_period_start"] = period_start
        obj["current_period_end"] = period_start + span
    return obj


def subscription_object(
    sub_id: str,
    customer: str,
    status: str = "active",
    items: Sequence[ItemSpec] = ((10_000, "month", 1, 1),),
    *,
    currency: str = "usd",
    shape: Shape = "new",
    discounts: Sequence[Any] = (),
    discount: Mapping[str, Any] | None = None,
    item_discounts: Mapping[int, Sequence[Any]] | None = None,
    pause_collection: bool = False,
    latest_invoice: str | None = None,
    ended_at: int | None = None,
    canceled_at: int | None = None,
    cancel_at_period_end: bool = False,
    trial_end: int | None = None,
    period_start: int = 1_700_000_000,
    legacy_plan_only: bool = False,
) -> dict[str, Any]:
    """A subscription. Old shape uses `discount` (an object); new shape `discounts` (ids)."""
    built = [
        item(
            sub_id,
            index,
            spec,
            currency=currency,
            shape=shape,
            period_start=period_start,
            discounts=(item_discounts or {}).get(index, ()),
            legacy_plan_only=legacy_plan_only,
        )
        for index, spec in enumerate(items)
    ]
    obj: dict[str, Any] = {
        "id": sub_id,
        "object": "subscription",
        "application": None,
        "billing_cycle_anchor": period_start,
        "cancel_at": None,
        "cancel_at_period_end": cancel_at_period_end,
        "canceled_at": canceled_at,
        "collection_method": "charge_automatically",
        "created": period_start,
        "currency": currency,
        "customer": customer,
        "default_payment_method": "pm_card_visa",
        "discounts": list(discounts),
        "ended_at": ended_at,
        "items": {
            "object": "list",
            "data": built,
            "has_more": False,
            "total_count": len(built),
            "url": f"/v1/subscription_items?subscription={sub_id}",
        },
        "latest_invoice": latest_invoice,
        "livemode": False,
        "metadata": {},
        "pause_collection": {"behavior": "void", "resumes_at": None} if pause_collection else None,
        "start_date": period_start,
        "status": status,
        "trial_end": trial_end,
        "trial_start": None if trial_end is None else period_start,
    }
    if shape == "old":
        recurring = built[0]["plan"]
        span = PERIOD[recurring["interval"]] * recurring["interval_count"]
        obj["current_period_start"] = period_start
        obj["current_period_end"] = period_start + span
        obj["discount"] = dict(discount) if discount is not None else None
        obj["plan"] = built[0]["plan"] if len(built) == 1 else None
        obj["quantity"] = built[0].get("quantity") if len(built) == 1 else None
    return obj


def subscription_event(
    type: str,
    sub_id: str,
    customer: str,
    created: int,
    status: str = "active",
    items: Sequence[ItemSpec] = ((10_000, "month", 1, 1),),
    *,
    currency: str = "usd",
    shape: Shape = "new",
    event_id: str | None = None,
    previous_attributes: Mapping[str, Any] | None = None,
    **fields: Any,
) -> dict[str, Any]:
    """`customer.subscription.<type>` (a short type like "updated" is expanded)."""
    full_type = type if "." in type else f"customer.subscription.{type}"
    if full_type.endswith(".deleted"):
        fields.setdefault("ended_at", created)
        fields.setdefault("canceled_at", created)
    obj = subscription_object(
        sub_id, customer, status, items, currency=currency, shape=shape, **fields
    )
    return event(
        full_type,
        obj,
        created,
        event_id=event_id,
        shape=shape,
        previous_attributes=previous_attributes,
    )


def invoice_line(
    sub_id: str,
    amount: int,
    *,
    item_id: str | None = None,
    price_id: str | None = None,
    currency: str = "usd",
    shape: Shape = "new",
    proration: bool = False,
    line_id: str | None = None,
) -> dict[str, Any]:
    line: dict[str, Any] = {
        "id": line_id or f"il_{sub_id}_{item_id or price_id}_{amount}",
        "object": "line_item",
        "amount": amount,
        "currency": currency,
        "description": "1 x Product",
        "discount_amounts": [],
        "discountable": True,
        "discounts": [],
        "livemode": False,
        "metadata": {},
        "period": {"end": 1_702_592_000, "start": 1_700_000_000},
        "quantity": 1,
    }
    if shape == "old":
        line.update(
            {
                "amount_excluding_tax": amount,
                "price": {"id": price_id, "object": "price"} if price_id else None,
                "proration": proration,
                "subscription": sub_id,
                "subscription_item": item_id,
                "type": "subscription",
            }
        )
    else:
        line["parent"] = {
            "invoice_item_details": None,
            "subscription_item_details": {
                "invoice_item": None,
                "proration": proration,
                "proration_details": {"credited_items": None},
                "subscription": sub_id,
                "subscription_item": item_id,
            },
            "type": "subscription_item_details",
        }
        line["pricing"] = {
            "price_details": {"price": price_id, "product": "prod_test"},
            "type": "price_details",
            "unit_amount_decimal": str(amount),
        }
    return line


_INVOICE_STATUS = {
    "invoice.paid": "paid",
    "invoice.payment_succeeded": "paid",
    "invoice.payment_failed": "open",
    "invoice.marked_uncollectible": "uncollectible",
    "invoice.voided": "void",
}


def invoice_event(
    type: str,
    invoice_id: str,
    customer: str,
    subscription: str | None,
    created: int,
    *,
    amount: int = 10_000,
    billing_reason: str = "subscription_cycle",
    currency: str = "usd",
    shape: Shape = "new",
    lines: Sequence[Mapping[str, Any]] | None = None,
    event_id: str | None = None,
) -> dict[str, Any]:
    """`invoice.<type>` (a short type like "paid" is expanded)."""
    full_type = type if "." in type else f"invoice.{type}"
    status = _INVOICE_STATUS.get(full_type, "open")
    paid = status == "paid"
    if lines is None:
        lines = [invoice_line(subscription or "", amount, currency=currency, shape=shape)]
    obj: dict[str, Any] = {
        "id": invoice_id,
        "object": "invoice",
        "amount_due": amount,
        "amount_paid": amount if paid else 0,
        "amount_remaining": 0 if paid else amount,
        "attempt_count": 1,
        "attempted": True,
        "billing_reason": billing_reason,
        "collection_method": "charge_automatically",
        "created": created,
        "currency": currency,
        "customer": customer,
        "lines": {
            "object": "list",
            "data": [dict(line) for line in lines],
            "has_more": False,
            "total_count": len(lines),
            "url": f"/v1/invoices/{invoice_id}/lines",
        },
        "livemode": False,
        "metadata": {},
        "period_end": created,
        "period_start": created,
        "status": status,
        "subtotal": amount,
        "total": amount,
    }
    if shape == "old":
        obj["subscription"] = subscription
        obj["paid"] = paid
        obj["tax"] = None
    else:
        obj["parent"] = (
            {
                "quote_details": None,
                "subscription_details": {"metadata": {}, "subscription": subscription},
                "type": "subscription_details",
            }
            if subscription
            else None
        )
    return event(full_type, obj, created, event_id=event_id, shape=shape)


def coupon_object(
    coupon_id: str,
    *,
    percent_off: float | int | None = None,
    amount_off: int | None = None,
    currency: str | None = None,
    duration: str = "forever",
) -> dict[str, Any]:
    return {
        "id": coupon_id,
        "object": "coupon",
        "amount_off": amount_off,
        "created": 1_700_000_000,
        "currency": currency if amount_off is not None else None,
        "duration": duration,
        "duration_in_months": 3 if duration == "repeating" else None,
        "livemode": False,
        "max_redemptions": None,
        "metadata": {},
        "name": coupon_id,
        "percent_off": percent_off,
        "redeem_by": None,
        "times_redeemed": 1,
        "valid": True,
    }


def coupon_event(
    type: str,
    coupon: Mapping[str, Any] | str,
    created: int,
    *,
    event_id: str | None = None,
    shape: Shape = "new",
    **terms: Any,
) -> dict[str, Any]:
    """`coupon.<type>` for a coupon object, or for an id plus `coupon_object` terms."""
    full_type = type if "." in type else f"coupon.{type}"
    obj = coupon_object(coupon, **terms) if isinstance(coupon, str) else coupon
    return event(full_type, obj, created, event_id=event_id, shape=shape)


def discount_object(
    discount_id: str | None,
    customer: str,
    coupon: Mapping[str, Any] | str,
    *,
    subscription: str | None = None,
    subscription_item: str | None = None,
    shape: Shape = "new",
    start: int = 1_700_000_000,
) -> dict[str, Any]:
    """Old shape: `coupon` is the full object. New shape: `source.coupon` is an id."""
    obj: dict[str, Any] = {
        "object": "discount",
        "checkout_session": None,
        "customer": customer,
        "end": None,
        "invoice": None,
        "invoice_item": None,
        "promotion_code": None,
        "start": start,
        "subscription": subscription,
        "subscription_item": subscription_item,
    }
    if discount_id is not None:
        obj = {"id": discount_id, **obj}
    if shape == "old":
        obj["coupon"] = dict(coupon) if isinstance(coupon, Mapping) else coupon
    else:
        coupon_id = coupon if isinstance(coupon, str) else coupon["id"]
        obj["source"] = {"coupon": coupon_id, "type": "coupon"}
    return obj


def discount_event(
    type: str,
    discount_id: str,
    customer: str,
    created: int,
    coupon: Mapping[str, Any] | str,
    *,
    subscription: str | None = None,
    subscription_item: str | None = None,
    shape: Shape = "new",
    event_id: str | None = None,
) -> dict[str, Any]:
    """`customer.discount.<type>` (a short type like "created" is expanded)."""
    full_type = type if "." in type else f"customer.discount.{type}"
    obj = discount_object(
        discount_id,
        customer,
        coupon,
        subscription=subscription,
        subscription_item=subscription_item,
        shape=shape,
    )
    return event(full_type, obj, created, event_id=event_id, shape=shape)


class Refs:
    """An in-memory References for tests: {(kind, id): object}."""

    def __init__(self, objects: Mapping[tuple[str, str], dict[str, Any]] | None = None) -> None:
        self.objects = dict(objects or {})
        self.asked: list[tuple[str, str]] = []

    def get(self, kind: str, object_id: str) -> dict[str, Any] | None:
        self.asked.append((kind, object_id))
        return self.objects.get((kind, object_id))
