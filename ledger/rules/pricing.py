"""A subscription's state -> its active and delinquent MRR, minor units (docs/mrr-rules.md §2, §3).

Arithmetic is exact: payload amounts are read as `Decimal` and combined as `Fraction`, because
the month normalisation divides by 12 (or 3, 7, ...) and a rounded `Decimal` quotient could tip
a half-even tie the wrong way. The only rounding is the last step, once per subscription, half
to even. No float is ever involved.

Discount order follows Stripe's invoices: item-level discounts on their item's line first, then
subscription-level discounts on the sum (a customer-level discount stands in for subscription
discounts when the subscription has none, as Stripe lets the subscription's own override it).
"""

from __future__ import annotations

import enum
import math
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal
from fractions import Fraction
from typing import Any, Protocol

from ledger.rules.payloads import (
    INT64_MAX,
    Coupon,
    Discount,
    Item,
    Price,
    RefusedInput,
    Subscription,
    Tier,
)

__all__ = [
    "Figures",
    "MissingReference",
    "Mrr",
    "Standing",
    "Terms",
    "allocate",
    "figures",
    "monthly_factor",
    "show",
    "standing_of_status",
    "subscription_mrr",
]


class MissingReference(Exception):
    """The rules need an object that neither the events nor the API can supply."""

    def __init__(self, kind: str, object_id: str, reason: str) -> None:
        super().__init__(f"{kind} {object_id}: {reason}")
        self.kind = kind
        self.object_id = object_id
        self.reason = reason


class Terms(Protocol):
    """Where the pricing finds what a payload leaves out."""

    def tiers(self, price: Price) -> tuple[Tier, ...]:
        """The price's tiers; raises MissingReference when nobody knows them."""
        ...

    def coupon(self, discount: Discount) -> Coupon | None:
        """The coupon behind a discount, or None while its terms are unknown."""
        ...

    def metered_amount(self, subscription_id: str, item: Item) -> int | None:
        """The item's latest finalized invoice line excluding tax, if one is known."""
        ...


class Standing(enum.StrEnum):
    """Where a subscription's MRR counts (docs/mrr-rules.md §2)."""

    ACTIVE = "active"
    DELINQUENT = "delinquent"
    PAUSED = "paused"
    TRIALING = "trialing"
    UNPAID_FIRST = "never_paid"  # incomplete, or past_due before any payment
    ENDED = "ended"


def standing_of_status(status: str, pause_collection: bool) -> Standing:
    """The standing a status implies on its own, before invoice signals are considered."""
    if status == "active":
        return Standing.PAUSED if pause_collection else Standing.ACTIVE
    if status in ("past_due", "unpaid"):
        return Standing.DELINQUENT
    if status == "paused":
        return Standing.PAUSED
    if status == "trialing":
        return Standing.TRIALING
    if status in ("canceled", "incomplete_expired"):
        return Standing.ENDED
    return Standing.UNPAID_FIRST


@dataclass(frozen=True, slots=True)
class Mrr:
    amount: int  # monthly, minor units, rounded once half-even
    explanation: dict[str, Any]
    # `amount` shared among the subscription's items, in their order (segments, §8 of the rules)
    parts: tuple[int, ...] = ()


@dataclass(frozen=True, slots=True)
class Figures:
    """What a subscription contributes: at most one of active and delinquent is non-zero."""

    active: int
    delinquent: int
    standing: Standing
    mrr: Mrr


def figures(standing: Standing, mrr: Mrr) -> Figures:
    active = mrr.amount if standing is Standing.ACTIVE else 0
    delinquent = mrr.amount if standing is Standing.DELINQUENT else 0
    return Figures(active=active, delinquent=delinquent, standing=standing, mrr=mrr)


def show(value: Fraction) -> str:
    """A compact exact-looking text for explanations (display only)."""
    if value.denominator == 1:
        return str(value.numerator)
    shown = (Decimal(value.numerator) / Decimal(value.denominator)).quantize(Decimal("0.000001"))
    return f"{shown}".rstrip("0").rstrip(".")


_NORMALISERS = {"month": (1, 1), "year": (1, 12), "week": (52, 12), "day": (365, 12)}


def monthly_factor(interval: str, interval_count: int) -> Fraction:
    """Multiplier from one billing interval to a month (docs/mrr-rules.md §3.4)."""
    if interval not in _NORMALISERS:
        raise ValueError(f"unknown billing interval {interval!r}")
    if interval_count < 1:
        raise ValueError(f"interval_count {interval_count} is below 1")
    times, per = _NORMALISERS[interval]
    return Fraction(times, per * interval_count)


def _factor_text(interval: str, interval_count: int) -> str:
    times, per = _NORMALISERS[interval]
    divisor = per * interval_count
    return (f" x {times}" if times != 1 else "") + (f" / {divisor}" if divisor != 1 else "")


def _quantity(item: Item) -> int:
    quantity = item.quantity if item.quantity is not None else 1
    divide_by = item.price.divide_by
    if not divide_by or divide_by <= 1:
        return quantity
    if item.price.round_mode == "down":
        return quantity // divide_by
    return math.ceil(Fraction(quantity, divide_by))


def _frac(value: Decimal | None) -> Fraction:
    return Fraction(value) if value is not None else Fraction(0)


def _volume(tiers: Sequence[Tier], quantity: int) -> tuple[Fraction, str]:
    if quantity <= 0:
        return Fraction(0), "volume: quantity 0"
    for index, tier in enumerate(tiers, start=1):
        if tier.up_to is None or quantity <= tier.up_to:
            unit, flat = _frac(tier.unit_amount), _frac(tier.flat_amount)
            total = unit * quantity + flat
            return total, f"volume tier {index}: {show(unit)} x {quantity} + {show(flat)}"
    return Fraction(0), "volume: quantity beyond the last tier"


def _graduated(tiers: Sequence[Tier], quantity: int) -> tuple[Fraction, str]:
    total, parts, floor = Fraction(0), [], 0
    for tier in tiers:
        if quantity <= floor:
            break
        ceiling = quantity if tier.up_to is None else min(quantity, tier.up_to)
        units = ceiling - floor
        unit, flat = _frac(tier.unit_amount), _frac(tier.flat_amount)
        total += unit * units + flat
        parts.append(f"{show(unit)} x {units} + {show(flat)}")
        floor = ceiling if tier.up_to is None else tier.up_to
    return total, "graduated: " + (" + ".join(f"({p})" for p in parts) or "quantity 0")


def _per_interval(sub_id: str, item: Item, terms: Terms) -> tuple[Fraction, str]:
    """One billing interval's amount for an item, before normalisation and discounts."""
    price = item.price
    if price.is_metered:
        amount = terms.metered_amount(sub_id, item)
        if amount is None:
            return Fraction(0), "metered: no finalized invoice line yet"
        return Fraction(amount), f"metered: latest invoice line {amount}"
    quantity = _quantity(item)
    if price.is_tiered:
        tiers = price.tiers if price.tiers is not None else terms.tiers(price)
        total, calc = (
            _volume(tiers, quantity)
            if price.tiers_mode == "volume"
            else (_graduated(tiers, quantity))
        )
        return total, f"[{calc} = {show(total)}]"
    unit = _frac(price.unit_amount)
    return unit * quantity, f"{show(unit)} x {quantity}"


def _apply(
    amount: Fraction,
    discounts: Sequence[Discount],
    factor: Fraction,
    currency: str,
    terms: Terms,
) -> tuple[Fraction, list[str]]:
    notes: list[str] = []
    for discount in discounts:
        coupon = terms.coupon(discount)
        if coupon is None:
            notes.append(f"{discount.id}: terms unknown, not applied")
            continue
        if coupon.percent_off is not None:
            rest = 1 - Fraction(coupon.percent_off) / 100
            amount = max(Fraction(0), amount * rest)
            notes.append(f"{discount.id} ({coupon.id}): x (1 - {coupon.percent_off}/100)")
            continue
        off = coupon.amount_off_in(currency)
        if off is None:
            notes.append(f"{discount.id} ({coupon.id}): no amount_off in {currency}")
            continue
        amount = max(Fraction(0), amount - off * factor)
        notes.append(f"{discount.id} ({coupon.id}): - {off} x {show(factor)} per month")
    return amount, notes


def _in_range(amount: Fraction, what: str, owner: str) -> Fraction:
    """An amount after normalisation must fit the ledger (docs/mrr-rules.md §10.1)."""
    if amount > INT64_MAX:
        rule = "beyond the ledger's 64-bit range of minor units"
        raise RefusedInput(what, round(amount), owner, rule)
    return amount


def _item_monthly(sub: Subscription, item: Item, terms: Terms) -> tuple[Fraction, dict[str, Any]]:
    price = item.price
    per_interval, calc = _per_interval(sub.id, item, terms)
    factor = monthly_factor(price.interval, price.interval_count)
    monthly = _in_range(per_interval * factor, "monthly amount", item.id)
    factor_text = _factor_text(price.interval, price.interval_count)
    bracketed = calc.startswith("[")
    text = calc[1:-1] if bracketed and not factor_text else f"{calc}{factor_text} = {show(monthly)}"
    monthly, notes = _apply(monthly, item.discounts, factor, sub.currency, terms)
    line: dict[str, Any] = {"item": item.id, "price": price.id, "calc": text}
    if notes:
        line["discounts"] = notes
        line["after_discounts"] = show(monthly)
    return monthly, line


def _billing_factor(sub: Subscription) -> Fraction:
    if not sub.items:
        return Fraction(1)
    price = sub.items[0].price
    return monthly_factor(price.interval, price.interval_count)


def subscription_mrr(
    sub: Subscription, terms: Terms, customer_discounts: Sequence[Discount] = ()
) -> Mrr:
    """The subscription's monthly MRR whatever its status, with the arithmetic explained."""
    total, lines, weights = Fraction(0), [], []
    for item in sub.items:
        monthly, line = _item_monthly(sub, item, terms)
        total += monthly
        lines.append(line)
        weights.append(monthly)
    _in_range(total, "MRR", sub.id)
    discounts = sub.discounts or tuple(customer_discounts)
    total, notes = _apply(total, discounts, _billing_factor(sub), sub.currency, terms)
    amount = round(total)  # Fraction rounds half to even
    explanation: dict[str, Any] = {"items": lines, "exact": show(total), "mrr": amount}
    if notes:
        explanation["discounts"] = notes
    if total.denominator != 1:
        explanation["rounding"] = "half_even"
    return Mrr(amount=amount, explanation=explanation, parts=allocate(amount, weights))


def allocate(amount: int, weights: Sequence[Fraction]) -> tuple[int, ...]:
    """`amount` shared in proportion to `weights` (each item's monthly amount after its own
    discounts), so a subscription-level discount falls on the items as Stripe's invoice lines
    carry it: the parts are whole minor units that add up to `amount` exactly, the remainder
    going to the largest fractions (the first item on a tie)."""
    if not weights:
        return ()
    whole = sum(weights, Fraction(0))
    if whole == 0:
        return (amount, *([0] * (len(weights) - 1)))
    exact = [amount * w / whole for w in weights]
    parts = [math.floor(e) for e in exact]
    left = amount - sum(parts)
    order = sorted(range(len(exact)), key=lambda i: (-(exact[i] - parts[i]), i))
    for i in order[:left]:
        parts[i] += 1
    return tuple(parts)
