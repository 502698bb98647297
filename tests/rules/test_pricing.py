from collections.abc import Mapping, Sequence
from fractions import Fraction
from typing import Any

import pytest

from ledger.rules.money import to_major
from ledger.rules.payloads import (
    Coupon,
    Discount,
    Item,
    Price,
    Subscription,
    Tier,
    read_coupon,
    read_price,
    read_subscription,
)
from ledger.rules.pricing import (
    MissingReference,
    Mrr,
    Standing,
    figures,
    monthly_factor,
    standing_of_status,
    subscription_mrr,
)
from tests.rules import builders as b
from tests.rules.fixtures import load


class StubTerms:
    def __init__(
        self,
        coupons: Mapping[str, Mapping[str, Any]] | None = None,
        tiers: Mapping[str, Sequence[Tier]] | None = None,
        metered: Mapping[str, int] | None = None,
    ) -> None:
        self.coupons = {k: read_coupon(v) for k, v in (coupons or {}).items()}
        self.tier_table = dict(tiers or {})
        self.metered = dict(metered or {})

    def tiers(self, price: Price) -> tuple[Tier, ...]:
        if price.tiers is not None:
            return price.tiers
        if price.id not in self.tier_table:
            raise MissingReference("price", price.id, "no tiers")
        return tuple(self.tier_table[price.id])

    def coupon(self, discount: Discount) -> Coupon | None:
        return discount.coupon or self.coupons.get(discount.id)

    def metered_amount(self, subscription_id: str, item: Item) -> int | None:
        return self.metered.get(item.id)


def sub(*items: b.ItemSpec, shape: b.Shape = "new", **kw: Any) -> Subscription:
    return read_subscription(
        b.subscription_object("sub_1", "cus_1", "active", items, shape=shape, **kw)
    )


def mrr(subscription: Subscription, terms: StubTerms | None = None, **kw: Any) -> int:
    return subscription_mrr(subscription, terms or StubTerms(), **kw).amount


def test_worked_examples_monthly_and_yearly() -> None:
    assert mrr(sub((5000, "month", 1, 1))) == 5000
    assert mrr(sub((120_000, "year", 1, 1))) == 10_000  # 1,200.00 yearly -> 100.00
    assert mrr(sub((100_000, "year", 1, 1))) == 8_333  # 1,000.00 yearly -> 83.33
    assert str(to_major(mrr(sub((100_000, "year", 1, 1))), "usd")) == "83.33"


def test_worked_example_fifty_percent_forever() -> None:
    terms = StubTerms(coupons={"di_half": b.coupon_object("half", percent_off=50)})
    assert mrr(sub((10_000, "month", 1, 1), discounts=["di_half"]), terms) == 5_000


def test_quantity_multiplies() -> None:
    assert mrr(sub((1_250, "month", 1, 4))) == 5_000


@pytest.mark.parametrize(
    ("interval", "count", "amount", "expected"),
    [
        ("month", 3, 3_000, 1_000),
        ("year", 2, 24_000, 1_000),
        ("week", 1, 1_000, 4_333),  # 1000 x 52 / 12 = 4333.33
        ("week", 2, 1_000, 2_167),  # 1000 x 52 / 24 = 2166.67
        ("day", 1, 100, 3_042),  # 100 x 365 / 12 = 3041.67
        ("day", 7, 700, 3_042),
    ],
)
def test_interval_normalisation(interval: str, count: int, amount: int, expected: int) -> None:
    assert mrr(sub((amount, interval, count, 1))) == expected


def test_monthly_factor_rejects_unknown_interval() -> None:
    assert monthly_factor("year", 1) == Fraction(1, 12)
    with pytest.raises(ValueError):
        monthly_factor("fortnight", 1)


def test_zero_decimal_jpy() -> None:
    value = mrr(sub((100_000, "year", 1, 1), currency="jpy"))  # 8333.33 yen
    assert value == 8_333 and str(to_major(value, "jpy")) == "8333"


def test_three_decimal_kwd() -> None:
    value = mrr(sub((10_000, "year", 1, 1), currency="kwd"))  # 10.000 KWD / 12
    assert value == 833 and str(to_major(value, "kwd")) == "0.833"


def test_half_even_ties() -> None:
    assert mrr(sub((30, "year", 1, 1))) == 2  # 2.5 -> 2
    assert mrr(sub((42, "year", 1, 1))) == 4  # 3.5 -> 4
    assert mrr(sub(("0.5", "month", 1, 5))) == 2  # 2.5 -> 2


def test_rounded_once_per_subscription_not_per_item() -> None:
    # each item is 0.5 a month: rounding per item would give 0, once per subscription gives 1
    two = sub((6, "year", 1, 1), (6, "year", 1, 1))
    result = subscription_mrr(two, StubTerms())
    assert result.amount == 1
    assert "rounding" not in result.explanation  # the sum is exact
    assert [i["calc"] for i in result.explanation["items"]] == ["6 x 1 / 12 = 0.5"] * 2


def test_exact_fractions_do_not_tip_a_tie() -> None:
    # 7/12 x 6 is exactly 3.5 -> 4; a rounded Decimal quotient would give 3.4999... -> 3
    assert mrr(sub((7, "year", 1, 6))) == 4


def test_unit_amount_decimal_honoured() -> None:
    assert mrr(sub(("1234.5", "month", 1, 3))) == 3_704  # 3703.5 -> 3704
    assert mrr(sub(("0.333", "month", 1, 1000))) == 333


def test_explanation_shows_the_arithmetic() -> None:
    result = subscription_mrr(sub((12_000, "year", 1, 1)), StubTerms())
    assert result.explanation["items"][0]["calc"] == "12000 x 1 / 12 = 1000"
    assert result.explanation["mrr"] == 1000


TIERS: list[dict[str, Any]] = [
    {"up_to": 5, "unit_amount": 1000, "flat_amount": 200},
    {"up_to": 10, "unit_amount": 800, "flat_amount": 500},
    {"up_to": None, "unit_amount": 500},
]


def tiered(mode: str, quantity: int, *, expand: bool = True) -> b.ItemSpec:
    p = b.price(None, tiers=TIERS, tiers_mode=mode, price_id=f"price_{mode}", expand_tiers=expand)
    return {"price": p, "quantity": quantity}


@pytest.mark.parametrize(("quantity", "expected"), [(3, 3_200), (7, 6_100), (12, 6_000), (0, 0)])
def test_volume_tiers(quantity: int, expected: int) -> None:
    # the whole quantity at the tier it falls in, that tier's flat amount once
    assert mrr(sub(tiered("volume", quantity))) == expected


@pytest.mark.parametrize(
    ("quantity", "expected"),
    [(3, 3_200), (7, 5_000 + 200 + 1_600 + 500), (12, 5_000 + 200 + 4_000 + 500 + 1_000)],
)
def test_graduated_tiers(quantity: int, expected: int) -> None:
    # sums across tiers, each reached tier's flat amount once
    assert mrr(sub(tiered("graduated", quantity))) == expected


def test_tiers_with_decimal_strings_from_fixture() -> None:
    price = read_price(load("price_tiered"))
    assert price.tiers is not None
    seats = read_subscription(load("subscription_created_new")["data"]["object"])
    terms = StubTerms(tiers={"price_NewShapeSeats": price.tiers})
    # graduated 10 x 1200 + 5000 + 2 x 1000 = 19000 a year -> 1583.33; metered item 0 until invoiced
    assert subscription_mrr(seats, terms).amount == 1_583


def test_tiered_price_without_tiers_raises_missing_reference() -> None:
    with pytest.raises(MissingReference) as raised:
        mrr(sub(tiered("volume", 3, expand=False)))
    assert (raised.value.kind, raised.value.object_id) == ("price", "price_volume")


def test_metered_item_uses_latest_invoice_line() -> None:
    metered = {"price": b.price(2, usage_type="metered"), "quantity": None, "id": "si_meter"}
    assert mrr(sub(metered)) == 0
    assert mrr(sub(metered), StubTerms(metered={"si_meter": 4_321})) == 4_321


def test_amount_off_normalised_by_yearly_interval() -> None:
    terms = StubTerms(coupons={"di_off": b.coupon_object("off", amount_off=12_000, currency="usd")})
    # 1200.00 a year -> 100.00; 120.00 off each yearly invoice -> 10.00 a month
    assert mrr(sub((120_000, "year", 1, 1), discounts=["di_off"]), terms) == 9_000


def test_amount_off_in_another_currency_is_not_applied() -> None:
    terms = StubTerms(coupons={"di_off": b.coupon_object("off", amount_off=500, currency="eur")})
    assert mrr(sub((10_000, "month", 1, 1), discounts=["di_off"]), terms) == 10_000


def test_never_below_zero() -> None:
    terms = StubTerms(coupons={"di_off": b.coupon_object("off", amount_off=20_000, currency="usd")})
    assert mrr(sub((10_000, "month", 1, 1), discounts=["di_off"]), terms) == 0


def test_item_level_then_subscription_level() -> None:
    terms = StubTerms(
        coupons={
            "di_item": b.coupon_object("ten", percent_off=10),
            "di_sub": b.coupon_object("off", amount_off=1_000, currency="usd"),
        }
    )
    two = sub(
        (10_000, "month", 1, 1),
        (5_000, "month", 1, 1),
        item_discounts={0: ["di_item"]},
        discounts=["di_sub"],
    )
    assert mrr(two, terms) == 9_000 + 5_000 - 1_000


def test_unknown_discount_terms_are_left_out_and_said() -> None:
    result = subscription_mrr(sub((10_000, "month", 1, 1), discounts=["di_x"]), StubTerms())
    assert result.amount == 10_000
    assert result.explanation["discounts"] == ["di_x: terms unknown, not applied"]


def test_customer_discount_only_when_subscription_has_none() -> None:
    terms = StubTerms(coupons={"di_c": b.coupon_object("c", percent_off=50)})
    customer = [Discount("di_c", None, None, "cus_1", None, None)]
    assert mrr(sub((10_000, "month", 1, 1)), terms, customer_discounts=customer) == 5_000
    terms.coupons["di_own"] = read_coupon(b.coupon_object("own", percent_off=10))
    own = sub((10_000, "month", 1, 1), discounts=["di_own"])
    assert mrr(own, terms, customer_discounts=customer) == 9_000


def test_legacy_plan_and_legacy_discount_object() -> None:
    coupon = b.coupon_object("quarter", percent_off=25)
    discount = b.discount_object("di_old", "cus_1", coupon, subscription="sub_1", shape="old")
    old = sub((8_000, "month", 1, 1), shape="old", discount=discount, legacy_plan_only=True)
    assert old.items[0].price.legacy_plan
    assert mrr(old) == 6_000


def test_old_fixture_percent_off_float_read_exactly() -> None:
    old = read_subscription(load("subscription_updated_old")["data"]["object"])
    # 1000 x 2 x (1 - 25.5/100) = 1490
    assert mrr(old) == 1_490


def test_same_mrr_from_both_shapes() -> None:
    items = ((10_000, "month", 1, 2), (120_000, "year", 1, 1))
    assert mrr(sub(*items, shape="old")) == mrr(sub(*items, shape="new")) == 30_000


@pytest.mark.parametrize(
    ("status", "pause", "standing"),
    [
        ("trialing", False, Standing.TRIALING),
        ("incomplete", False, Standing.UNPAID_FIRST),
        ("incomplete_expired", False, Standing.ENDED),
        ("active", False, Standing.ACTIVE),
        ("active", True, Standing.PAUSED),
        ("paused", False, Standing.PAUSED),
        ("past_due", False, Standing.DELINQUENT),
        ("unpaid", False, Standing.DELINQUENT),
        ("canceled", False, Standing.ENDED),
    ],
)
def test_status_table(status: str, pause: bool, standing: Standing) -> None:
    assert standing_of_status(status, pause) is standing
    counted = figures(standing, Mrr(1_000, {}))
    assert (counted.active, counted.delinquent) == (
        1_000 if standing is Standing.ACTIVE else 0,
        1_000 if standing is Standing.DELINQUENT else 0,
    )
