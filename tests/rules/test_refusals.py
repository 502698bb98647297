"""docs/mrr-rules.md §10.1: the readers refuse what Stripe never sends, naming field and value."""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal
from typing import Any

import pytest

from ledger.rules.payloads import (
    INT64_MAX,
    RefusedInput,
    read_coupon,
    read_invoice,
    read_price,
    read_subscription,
)
from ledger.rules.pricing import monthly_factor, subscription_mrr
from ledger.rules.timeline import references_in, replay_customer
from tests.rules import builders as b

Obj = dict[str, Any]
TIERS: list[Obj] = [
    {"up_to": 10, "unit_amount": 1000, "flat_amount": 500},
    {"up_to": None, "unit_amount": 800},
]


def subscription() -> Obj:
    return b.subscription_object("sub_1", "cus_1", items=[(5000, "month", 1, 2)])


def item(obj: Obj) -> Obj:
    found: Obj = obj["items"]["data"][0]
    return found


def price(obj: Obj) -> Obj:
    found: Obj = item(obj)["price"]
    return found


def tiered() -> Obj:
    return b.price(None, "month", price_id="price_t", tiers=TIERS, tiers_mode="volume")


def coupon(**terms: Any) -> Obj:
    return b.coupon_object("co_1", **terms)


def line_invoice(**line: Any) -> Obj:
    body = b.invoice_event("paid", "in_1", "cus_1", "sub_1", 1_700_000_000)["data"]["object"]
    body["lines"]["data"][0].update(id="il_1", **line)
    return dict(body)


def set_in(obj: Obj, path: str, value: Any) -> Obj:
    """`obj` with the field at a dotted path (list indices as numbers) set to `value`."""
    *parents, last = path.split(".")
    target: Any = obj
    for key in parents:
        target = target[int(key)] if isinstance(target, list) else target[key]
    target[last] = value
    return obj


def _sub_case(path: str, value: Any) -> Callable[[], Obj]:
    return lambda: set_in(subscription(), path, value)


Case = tuple[Callable[[], Obj], Callable[[Obj], object], str]
SUB = "items.data.0"


CASES: dict[str, Case] = {
    "negative quantity": (
        _sub_case(f"{SUB}.quantity", -5),
        read_subscription,
        "quantity -5 on si_sub_1_0: Stripe quantities are >= 0",
    ),
    "fractional quantity": (
        _sub_case(f"{SUB}.quantity", 2.5),
        read_subscription,
        "quantity 2.5 on si_sub_1_0: Stripe quantities are whole numbers",
    ),
    "quantity as text": (
        _sub_case(f"{SUB}.quantity", "2"),
        read_subscription,
        'quantity "2" on si_sub_1_0: Stripe quantities are whole numbers',
    ),
    "quantity beyond 64 bits": (
        _sub_case(f"{SUB}.quantity", 2**63),
        read_subscription,
        f"quantity {2**63} on si_sub_1_0: beyond the ledger's 64-bit range",
    ),
    "negative unit_amount": (
        _sub_case(f"{SUB}.price.unit_amount", -5000),
        read_subscription,
        "unit_amount -5000 on price_5000_month1_licensed: Stripe amounts are >= 0",
    ),
    "negative unit_amount_decimal": (
        _sub_case(f"{SUB}.price.unit_amount_decimal", "-0.5"),
        read_subscription,
        'unit_amount_decimal "-0.5" on price_5000_month1_licensed: Stripe amounts are >= 0',
    ),
    "unit_amount_decimal not a number": (
        _sub_case(f"{SUB}.price.unit_amount_decimal", "NaN"),
        read_subscription,
        'unit_amount_decimal "NaN" on price_5000_month1_licensed: Stripe sends decimal',
    ),
    "huge unit_amount_decimal": (
        _sub_case(f"{SUB}.price.unit_amount_decimal", "1e30"),
        read_subscription,
        'unit_amount_decimal "1e30" on price_5000_month1_licensed: beyond the ledger\'s 64-bit',
    ),
    "interval_count 0": (
        _sub_case(f"{SUB}.price.recurring.interval_count", 0),
        read_subscription,
        "interval_count 0 on price_5000_month1_licensed: Stripe interval counts are >= 1",
    ),
    "interval_count missing": (
        _sub_case(f"{SUB}.price.recurring.interval_count", None),
        read_subscription,
        "interval_count null on price_5000_month1_licensed: Stripe bills every 1 to 36 months",
    ),
    "more than three years": (
        _sub_case(f"{SUB}.price.recurring.interval_count", 37),
        read_subscription,
        "interval_count 37 on price_5000_month1_licensed: Stripe bills every 1 to 36 months",
    ),
    "unknown interval": (
        _sub_case(f"{SUB}.price.recurring.interval", "fortnight"),
        read_subscription,
        'interval "fortnight" on price_5000_month1_licensed: Stripe bills by day, week, month',
    ),
    "unknown usage_type": (
        _sub_case(f"{SUB}.price.recurring.usage_type", "sometimes"),
        read_subscription,
        'usage_type "sometimes" on price_5000_month1_licensed: Stripe sends one of licensed',
    ),
    "item without a price": (
        _sub_case("items.data", [{"id": "si_x", "quantity": 1}]),
        read_subscription,
        "price null on si_x: Stripe sends a subscription item's price as an object with an id",
    ),
    "subscription currency of four letters": (
        _sub_case("currency", "usdx"),
        read_subscription,
        'currency "usdx" on sub_1: Stripe currencies are three-letter codes',
    ),
    "ended_at beyond year 9999": (
        _sub_case("ended_at", 10**12),
        read_subscription,
        "ended_at 1000000000000 on sub_1: Stripe timestamps fall before the year 10000",
    ),
    "negative tier amount": (
        lambda: set_in(tiered(), "tiers", [{"up_to": None, "unit_amount": -1}]),
        read_price,
        "unit_amount -1 on price_t: Stripe amounts are >= 0",
    ),
    "tier bound 0": (
        lambda: set_in(tiered(), "tiers", [{"up_to": 0, "unit_amount": 1}]),
        read_price,
        "up_to 0 on price_t: Stripe tier bounds are >= 1",
    ),
    "unknown tiers_mode": (
        lambda: set_in(tiered(), "tiers_mode", "staircase"),
        read_price,
        'tiers_mode "staircase" on price_t: Stripe sends one of volume, graduated',
    ),
    "divide_by 0": (
        lambda: set_in(tiered(), "transform_quantity", {"divide_by": 0, "round": "up"}),
        read_price,
        "divide_by 0 on price_t: Stripe divisors are >= 1",
    ),
    "percent_off above 100": (
        lambda: coupon(percent_off=150),
        read_coupon,
        "percent_off 150 on co_1: Stripe percentages are within 0..100",
    ),
    "percent_off as text": (
        lambda: coupon(percent_off="20"),
        read_coupon,
        'percent_off "20" on co_1: Stripe percentages are numbers',
    ),
    "negative amount_off": (
        lambda: coupon(amount_off=-500, currency="usd"),
        read_coupon,
        "amount_off -500 on co_1: Stripe amounts are >= 0",
    ),
    "coupon currency a number": (
        lambda: set_in(coupon(amount_off=500, currency="usd"), "currency", 840),
        read_coupon,
        "currency 840 on co_1: Stripe currencies are three-letter codes",
    ),
    "negative currency option": (
        lambda: set_in(coupon(), "currency_options", {"eur": {"amount_off": -1}}),
        read_coupon,
        "amount_off -1 on co_1: Stripe amounts are >= 0",
    ),
    "negative subscription line": (
        lambda: set_in(
            line_invoice(amount=-700),
            "lines.data.0.parent.subscription_item_details.subscription_item",
            "si_1",
        ),
        read_invoice,
        "amount -700 on il_1: Stripe bills a subscription item's period at >= 0",
    ),
    "amount_paid as text": (
        lambda: set_in(line_invoice(), "amount_paid", "all"),
        read_invoice,
        'amount_paid "all" on in_1: Stripe amounts are whole numbers',
    ),
}


@pytest.mark.parametrize("case", CASES)
def test_refused_with_the_field_and_the_value_named(case: str) -> None:
    build, read, message = CASES[case]
    with pytest.raises(RefusedInput) as refused:
        read(build())
    assert str(refused.value).startswith(message)


def test_valid_edges_are_read() -> None:
    obj = subscription()
    item(obj)["quantity"] = 0
    price(obj)["recurring"].update(interval="day", interval_count=3 * 365)
    price(obj)["unit_amount_decimal"] = "0.000000000001"
    read = read_subscription(obj)
    assert read.items[0].quantity == 0 and read.items[0].price.interval_count == 1095
    assert read.items[0].price.unit_amount == Decimal("0.000000000001")
    assert read_coupon(coupon(percent_off=100)).percent_off == 100
    assert read_coupon(coupon(percent_off=0.5)).percent_off == Decimal("0.5")
    refund = line_invoice(amount=-700)  # a line of no subscription item (a credit) may be < 0
    assert read_invoice(refund).lines[0].amount == -700


def test_a_huge_value_is_shown_by_its_size() -> None:
    obj = subscription()
    item(obj)["quantity"] = 10**400
    with pytest.raises(RefusedInput, match=r"quantity \(a 1329-bit number\) on si_sub_1_0"):
        read_subscription(obj)


def test_an_mrr_beyond_64_bits_after_normalisation_is_refused() -> None:
    obj = b.subscription_object("sub_1", "cus_1", items=[(INT64_MAX, "day", 1, 1)])
    with pytest.raises(RefusedInput, match=r"monthly amount \d+ on si_sub_1_0: beyond the ledger"):
        subscription_mrr(read_subscription(obj), _NoTerms())
    two = b.subscription_object("sub_1", "cus_1", items=[(INT64_MAX // 2 + 1, "month", 1, 1)] * 2)
    with pytest.raises(RefusedInput, match=f"MRR {INT64_MAX + 1} on sub_1: beyond the ledger"):
        subscription_mrr(read_subscription(two), _NoTerms())


def test_monthly_factor_refuses_a_count_below_one() -> None:
    with pytest.raises(ValueError, match="interval_count 0 is below 1"):
        monthly_factor("month", 0)


def test_a_coupon_event_is_refused_before_its_coupon_is_kept() -> None:
    event = b.record(b.coupon_event("created", "co_bad", 1_700_000_000, percent_off=-10))
    with pytest.raises(RefusedInput, match="percent_off -10 on co_bad"):
        references_in(event)


def test_a_subscription_that_changes_currency_is_refused() -> None:
    events = [
        b.subscription_event("created", "sub_1", "cus_1", 1_700_000_000),
        b.subscription_event("updated", "sub_1", "cus_1", 1_700_000_100, currency="eur"),
    ]
    with pytest.raises(
        RefusedInput, match=r'currency "eur" on sub_1: .* keeps its currency \(usd\)'
    ):
        replay_customer("cus_1", [b.record(e) for e in events], b.Refs())


class _NoTerms:
    def tiers(self, price: Any) -> Any:
        raise AssertionError("no tiered price here")

    def coupon(self, discount: Any) -> None:
        return None

    def metered_amount(self, subscription_id: str, item: Any) -> None:
        return None
