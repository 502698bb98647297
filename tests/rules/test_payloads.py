import copy
from decimal import Decimal

import pytest

from ledger.rules.payloads import (
    is_old_shape,
    read_coupon,
    read_discount,
    read_invoice,
    read_invoice_line,
    read_price,
    read_subscription,
    subscription_of,
)
from tests.rules.fixtures import load


def test_old_shape_subscription() -> None:
    sub = read_subscription(load("subscription_updated_old")["data"]["object"])
    assert sub.id == "sub_1MowQVLkdIwHu7ixeRlqHVzs"
    assert sub.customer == "cus_Na6dX7aXxi11N4"
    assert sub.status == "active" and sub.currency == "usd"
    assert sub.current_period_start == 1679609767
    assert sub.latest_invoice == "in_1MowQWLkdIwHu7ixuzkSPfKd"
    (item,) = sub.items
    assert (item.id, item.quantity) == ("si_Na6dzxczY5fwHx", 2)
    assert item.price.unit_amount == Decimal(1000)
    assert not item.price.legacy_plan
    # legacy `discount` object and the `discounts` id list name the same discount once
    (discount,) = sub.discounts
    assert discount.id == "di_1OldSubDiscount"
    assert discount.coupon is not None and discount.coupon.percent_off == Decimal("25.5")


def test_new_shape_subscription_periods_on_items_and_discount_ids() -> None:
    sub = read_subscription(load("subscription_created_new")["data"]["object"])
    assert sub.current_period_start == 1759276800
    assert sub.currency == "eur"
    (discount,) = sub.discounts
    assert (discount.id, discount.coupon_id, discount.coupon) == ("di_1NewShapeSub", None, None)
    seats, api = sub.items
    assert seats.price.is_tiered and seats.price.tiers is None  # not expanded
    assert seats.price.tiers_mode == "graduated" and seats.price.interval == "year"
    assert api.price.is_metered and api.quantity is None
    assert api.price.unit_amount == Decimal("0.25")


def test_legacy_plan_without_price() -> None:
    plan = load("subscription_updated_old")["data"]["object"]["items"]["data"][0]["plan"]
    price = read_price(plan)
    assert price.legacy_plan and price.unit_amount == 1000 and price.interval == "month"


def test_expanded_tiers_with_decimal_strings() -> None:
    price = read_price(load("price_tiered"))
    assert price.tiers is not None
    first, second = price.tiers
    assert (first.up_to, first.unit_amount, first.flat_amount) == (10, Decimal(1200), Decimal(5000))
    assert (second.up_to, second.flat_amount) == (None, None)


def test_old_shape_invoice() -> None:
    invoice = read_invoice(load("invoice_payment_failed_old")["data"]["object"])
    assert invoice.subscription == "sub_1MowQVLkdIwHu7ixeRlqHVzs"
    assert invoice.billing_reason == "subscription_cycle" and invoice.status == "open"
    (line,) = invoice.lines
    assert (line.subscription_item, line.price_id, line.amount) == (
        "si_Na6dzxczY5fwHx",
        "price_1MowQULkdIwHu7ixraBm864M",
        1490,
    )


def test_new_shape_invoice_parent() -> None:
    invoice = read_invoice(load("invoice_paid_new")["data"]["object"])
    assert invoice.subscription == "sub_1NewShapeYearly"
    assert invoice.amount_paid == 2090000
    api = invoice.lines[1]
    assert (api.subscription_item, api.price_id, api.amount, api.proration) == (
        "si_NewShapeApi",
        "price_NewShapeApiCalls",
        2071000,  # tax is not in the line amount
        False,
    )


def test_discount_coupon_from_object_or_source_id() -> None:
    old = read_discount(load("discount_created_old")["data"]["object"])
    new = read_discount(load("discount_created_new")["data"]["object"])
    assert old is not None and old.coupon is not None and old.coupon.amount_off == 500
    assert old.subscription is None and old.customer == "cus_Na6dX7aXxi11N4"
    assert new is not None and new.coupon is None and new.coupon_id == "co_NewShape20"
    assert new.subscription == "sub_1NewShapeYearly"


def test_discount_without_id_is_keyed_by_its_coupon() -> None:
    discount = read_discount({"object": "discount", "coupon": {"id": "c1", "percent_off": 10}})
    assert discount is not None and discount.id == "coupon:c1"


def test_coupon_terms_and_currency_options() -> None:
    coupon = read_coupon(load("coupon_created")["data"]["object"])
    assert coupon.percent_off == 20 and coupon.amount_off is None
    multi = read_coupon(
        {
            "id": "c",
            "amount_off": 500,
            "currency": "usd",
            "currency_options": {"eur": {"amount_off": 450}},
        }
    )
    assert multi.amount_off_in("usd") == 500
    assert multi.amount_off_in("eur") == 450
    assert multi.amount_off_in("jpy") is None


def test_new_shape_line_amount_excludes_inclusive_tax() -> None:
    line = {
        "id": "il_1",
        "object": "line_item",
        "amount": 1190,
        "taxes": [{"amount": 190, "tax_behavior": "inclusive", "type": "tax_rate_details"}],
        "parent": {"subscription_item_details": {"subscription": "sub_1", "proration": False}},
    }
    invoice = read_invoice({"id": "in_1", "object": "invoice", "lines": {"data": [line]}})
    assert invoice.lines[0].amount == 1000 and invoice.subscription == "sub_1"


# A proration of subscription sub_1 raising si_1 to price_2000, as each API shape sends it.
PRORATION_LINES = {
    # Before 2025-03-31: flags and references on the line itself.
    "old": {
        "id": "il_old",
        "object": "line_item",
        "type": "invoiceitem",
        "amount": 1300,
        "amount_excluding_tax": 1300,
        "quantity": 1,
        "period": {"start": 1_700_000_000, "end": 1_702_592_000},
        "price": {"id": "price_2000", "object": "price"},
        "proration": True,
        "subscription": "sub_1",
        "subscription_item": "si_1",
        "invoice_item": "ii_1",
    },
    # From 2025-03-31 a proration is an invoice item's line: `parent.invoice_item_details`.
    "new": {
        "id": "il_new",
        "object": "line_item",
        "amount": 1300,
        "quantity": 1,
        "period": {"start": 1_700_000_000, "end": 1_702_592_000},
        "parent": {
            "type": "invoice_item_details",
            "invoice_item_details": {
                "invoice_item": "ii_1",
                "proration": True,
                "proration_details": {"credited_items": None},
                "subscription": "sub_1",
            },
            "subscription_item_details": None,
        },
        "pricing": {"type": "price_details", "price_details": {"price": "price_2000"}},
    },
}


@pytest.mark.parametrize("shape", ["old", "new"])
def test_a_proration_line_is_read_as_one_in_either_shape(shape: str) -> None:
    line = read_invoice_line(PRORATION_LINES[shape])
    assert (line.proration, line.subscription, line.price_id, line.amount) == (
        True,
        "sub_1",
        "price_2000",
        1300,
    )
    assert (line.id, line.quantity, line.period) == (
        f"il_{shape}",
        1,
        (1_700_000_000, 1_702_592_000),
    )
    # An invoice of nothing but prorations still belongs to their subscription.
    invoice = read_invoice({"id": "in_1", "object": "invoice", "lines": [PRORATION_LINES[shape]]})
    assert invoice.subscription == "sub_1" and invoice.lines == (line,)


@pytest.mark.parametrize("shape", ["old", "new"])
def test_a_subscription_items_own_line_is_no_proration_in_either_shape(shape: str) -> None:
    raw = copy.deepcopy(PRORATION_LINES[shape])
    if shape == "old":
        raw.update(type="subscription", proration=False, invoice_item=None)
    else:
        raw["parent"] = {
            "type": "subscription_item_details",
            "invoice_item_details": None,
            "subscription_item_details": {
                "invoice_item": None,
                "proration": False,
                "subscription": "sub_1",
                "subscription_item": "si_1",
            },
        }
    line = read_invoice_line(raw)
    assert (line.proration, line.subscription, line.subscription_item) == (False, "sub_1", "si_1")


def test_invoice_payment_attempts_and_times() -> None:
    failed = read_invoice(load("invoice_payment_failed_old")["data"]["object"])
    assert (failed.attempt_count, failed.attempted, failed.paid_at, failed.total) == (
        1,
        True,
        None,
        1490,
    )
    paid = read_invoice(load("invoice_paid_new")["data"]["object"])
    assert (paid.finalized_at, paid.paid_at) == (1790812850, 1790812900)


def test_the_subscription_an_object_concerns() -> None:
    sub = load("subscription_created_new")["data"]["object"]
    assert subscription_of(sub) == "sub_1NewShapeYearly"
    assert subscription_of(load("invoice_payment_failed_old")["data"]["object"]) == (
        "sub_1MowQVLkdIwHu7ixeRlqHVzs"
    )
    assert subscription_of(load("invoice_paid_new")["data"]["object"]) == "sub_1NewShapeYearly"
    assert subscription_of(load("discount_created_new")["data"]["object"]) == (
        "sub_1NewShapeYearly"
    )
    assert subscription_of(load("coupon_created")["data"]["object"]) is None


def test_the_shape_of_a_subscription_is_where_its_period_is() -> None:
    assert is_old_shape(load("subscription_updated_old")["data"]["object"])
    assert not is_old_shape(load("subscription_created_new")["data"]["object"])
