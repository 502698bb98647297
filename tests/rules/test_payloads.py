from decimal import Decimal

from ledger.rules.payloads import (
    read_coupon,
    read_discount,
    read_invoice,
    read_price,
    read_subscription,
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
