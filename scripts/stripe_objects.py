"""Stripe objects and events as Stripe sends them (API 2025-03-31.basil), as plain dicts.

Pure renderers for the demo (scripts/demo_data.py) and the tests' generated histories: no
state, no randomness; the caller chooses every id and time. Only the fields a reader of our
pages or our rules would look at are filled in, with Stripe's names and shapes: periods on
items, `discounts` as ids on subscriptions, `invoice.parent.subscription_details`.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping, Sequence
from typing import Any

API_VERSION = "2025-03-31.basil"

Obj = dict[str, Any]


def event(
    event_id: str,
    event_type: str,
    created: int,
    obj: Mapping[str, Any],
    previous_attributes: Mapping[str, Any] | None = None,
) -> Obj:
    data: Obj = {"object": dict(obj)}
    if previous_attributes is not None:
        data["previous_attributes"] = dict(previous_attributes)
    return {
        "id": event_id,
        "object": "event",
        "api_version": API_VERSION,
        "created": created,
        "data": data,
        "livemode": False,
        "pending_webhooks": 1,
        "request": {"id": None, "idempotency_key": None},
        "type": event_type,
    }


def signature_header(payload: str, secret: str, timestamp: int) -> str:
    """The `Stripe-Signature` header Stripe sends with a webhook: t=...,v1=HMAC-SHA256."""
    mac = hmac.new(secret.encode(), f"{timestamp}.{payload}".encode(), hashlib.sha256)
    return f"t={timestamp},v1={mac.hexdigest()}"


def customer(
    customer_id: str, name: str, email: str, created: int, currency: str | None = None
) -> Obj:
    return {
        "id": customer_id,
        "object": "customer",
        "address": None,
        "balance": 0,
        "created": created,
        "currency": currency,
        "default_source": None,
        "delinquent": False,
        "description": None,
        "email": email,
        "invoice_prefix": customer_id.removeprefix("cus_")[:8].upper(),
        "livemode": False,
        "metadata": {},
        "name": name,
        "phone": None,
        "preferred_locales": [],
        "shipping": None,
        "tax_exempt": "none",
        "test_clock": None,
    }


def price(
    price_id: str,
    amount: int,
    currency: str,
    interval: str,
    *,
    product: str = "prod_demo",
    nickname: str | None = None,
) -> Obj:
    return {
        "id": price_id,
        "object": "price",
        "active": True,
        "billing_scheme": "per_unit",
        "created": 1_704_067_200,
        "currency": currency,
        "custom_unit_amount": None,
        "livemode": False,
        "lookup_key": None,
        "metadata": {},
        "nickname": nickname,
        "product": product,
        "recurring": {
            "interval": interval,
            "interval_count": 1,
            "meter": None,
            "usage_type": "licensed",
        },
        "tax_behavior": "unspecified",
        "tiers_mode": None,
        "transform_quantity": None,
        "type": "recurring",
        "unit_amount": amount,
        "unit_amount_decimal": str(amount),
    }


def subscription_item(
    item_id: str, sub_id: str, price_obj: Mapping[str, Any], quantity: int, period: tuple[int, int]
) -> Obj:
    return {
        "id": item_id,
        "object": "subscription_item",
        "created": period[0],
        "current_period_start": period[0],
        "current_period_end": period[1],
        "discounts": [],
        "metadata": {},
        "price": dict(price_obj),
        "quantity": quantity,
        "subscription": sub_id,
        "tax_rates": [],
    }


def subscription(
    sub_id: str,
    customer_id: str,
    items: Sequence[Mapping[str, Any]],
    *,
    status: str,
    currency: str,
    created: int,
    discounts: Sequence[str] = (),
    latest_invoice: str | None = None,
    cancel_at_period_end: bool = False,
    canceled_at: int | None = None,
    ended_at: int | None = None,
    trial: tuple[int, int] | None = None,
) -> Obj:
    """A subscription; `discounts` are discount ids, as Stripe sends them."""
    return {
        "id": sub_id,
        "object": "subscription",
        "application": None,
        "billing_cycle_anchor": created if trial is None else trial[1],
        "cancel_at": None,
        "cancel_at_period_end": cancel_at_period_end,
        "canceled_at": canceled_at,
        "collection_method": "charge_automatically",
        "created": created,
        "currency": currency,
        "customer": customer_id,
        "default_payment_method": None,
        "discounts": list(discounts),
        "ended_at": ended_at,
        "items": {
            "object": "list",
            "data": [dict(item) for item in items],
            "has_more": False,
            "total_count": len(items),
            "url": f"/v1/subscription_items?subscription={sub_id}",
        },
        "latest_invoice": latest_invoice,
        "livemode": False,
        "metadata": {},
        "pause_collection": None,
        "start_date": created,
        "status": status,
        "trial_end": None if trial is None else trial[1],
        "trial_start": None if trial is None else trial[0],
    }


def invoice(
    invoice_id: str,
    line_id: str,
    item: Mapping[str, Any],
    *,
    customer_id: str,
    created: int,
    billing_reason: str,
    amount_due: int,
    paid_at: int | None,
    attempt_count: int = 1,
) -> Obj:
    """A subscription's invoice for one period of one item: paid at `paid_at`, or still open.

    The line carries the item's list amount; `amount_due` is after discounts.
    """
    price_obj = item["price"]
    line_amount = int(price_obj["unit_amount"]) * int(item["quantity"])
    period = {"start": item["current_period_start"], "end": item["current_period_end"]}
    return {
        "id": invoice_id,
        "object": "invoice",
        "amount_due": amount_due,
        "amount_paid": amount_due if paid_at is not None else 0,
        "amount_remaining": 0 if paid_at is not None else amount_due,
        "attempt_count": attempt_count if amount_due else 0,
        "attempted": amount_due > 0,
        "billing_reason": billing_reason,
        "collection_method": "charge_automatically",
        "created": created,
        "currency": price_obj["currency"],
        "customer": customer_id,
        "discounts": [],
        "lines": {
            "object": "list",
            "data": [
                {
                    "id": line_id,
                    "object": "line_item",
                    "amount": line_amount,
                    "currency": price_obj["currency"],
                    "discount_amounts": [],
                    "discounts": [],
                    "invoice": invoice_id,
                    "parent": {
                        "type": "subscription_item_details",
                        "subscription_item_details": {
                            "invoice_item": None,
                            "proration": False,
                            "subscription": item["subscription"],
                            "subscription_item": item["id"],
                        },
                    },
                    "period": period,
                    "pricing": {
                        "type": "price_details",
                        "price_details": {
                            "price": price_obj["id"],
                            "product": price_obj["product"],
                        },
                        "unit_amount_decimal": price_obj["unit_amount_decimal"],
                    },
                    "quantity": item["quantity"],
                }
            ],
            "has_more": False,
            "total_count": 1,
            "url": f"/v1/invoices/{invoice_id}/lines",
        },
        "livemode": False,
        "parent": {
            "type": "subscription_details",
            "subscription_details": {"metadata": {}, "subscription": item["subscription"]},
        },
        "period_end": period["end"],
        "period_start": period["start"],
        "status": "paid" if paid_at is not None else "open",
        "status_transitions": {
            "finalized_at": created,
            "marked_uncollectible_at": None,
            "paid_at": paid_at,
            "voided_at": None,
        },
        "subtotal": line_amount,
        "total": amount_due,
    }


def coupon(
    coupon_id: str, name: str, percent_off: int, duration_in_months: int, created: int
) -> Obj:
    return {
        "id": coupon_id,
        "object": "coupon",
        "amount_off": None,
        "created": created,
        "currency": None,
        "duration": "repeating",
        "duration_in_months": duration_in_months,
        "livemode": False,
        "max_redemptions": None,
        "metadata": {},
        "name": name,
        "percent_off": percent_off,
        "redeem_by": None,
        "times_redeemed": 0,
        "valid": True,
    }


def discount(
    discount_id: str,
    coupon_obj: Mapping[str, Any],
    *,
    customer_id: str,
    sub_id: str,
    start: int,
    end: int | None,
) -> Obj:
    """A subscription's discount, its coupon in full (as `customer.discount.*` carry it)."""
    return {
        "id": discount_id,
        "object": "discount",
        "checkout_session": None,
        "coupon": dict(coupon_obj),
        "customer": customer_id,
        "end": end,
        "invoice": None,
        "invoice_item": None,
        "promotion_code": None,
        "start": start,
        "subscription": sub_id,
        "subscription_item": None,
    }
