"""Segments: each plan, product and interval classified as if it were the whole business."""

from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from fractions import Fraction
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from ledger.rules.entries import Category, active_effect, delinquent_effect
from ledger.rules.pricing import allocate
from ledger.rules.segments import MOVEMENT_SLOTS
from ledger.rules.timeline import Replay
from tests.rules import builders as b
from tests.rules.checkpointed import replay_checked

C = Category
JAN, FEB, MAR = 2025 * 12 + 0, 2025 * 12 + 1, 2025 * 12 + 2


def at(month: int, day: int) -> int:
    return int(datetime(2025, month, day, tzinfo=UTC).timestamp())


def price(amount: int, price_id: str, product: str = "prod_app", interval: str = "month") -> Any:
    found = b.price(amount, interval, price_id=price_id)
    found["product"] = product
    return found


BASIC, PRO = price(5_000, "price_basic"), price(10_000, "price_pro")


def sub(type: str, created: int, items: Iterable[Any], status: str = "active", **kw: Any) -> Any:
    specs = [{"price": p, "quantity": q} for p, q in items]
    return b.subscription_event(
        type, kw.pop("sub_id", "sub_1"), "cus_1", created, status, items=specs, **kw
    )


def run(events: Iterable[Mapping[str, Any]]) -> Replay:
    return replay_checked("cus_1", [b.record(e) for e in events], b.Refs())


def moved(replay: Replay, dimension: str, value: str, month: int) -> dict[Category, int]:
    sums = replay.segment_months.get((dimension, value, "usd", month), ())
    return {c: sums[slot] for c, slot in MOVEMENT_SLOTS.items() if sums and sums[slot]}


def test_a_plan_switch_is_expansion_in_the_total_and_churn_then_new_across_plans() -> None:
    replay = run(
        [
            sub("customer.subscription.created", at(1, 5), [(BASIC, 1)]),
            sub("customer.subscription.updated", at(2, 5), [(PRO, 1)]),
        ]
    )
    assert [(e.category, e.amount) for e in replay.entries] == [
        (C.NEW, 5_000),
        (C.EXPANSION, 5_000),
    ]
    assert moved(replay, "plan", "price_basic", JAN) == {C.NEW: 5_000}
    assert moved(replay, "plan", "price_basic", FEB) == {C.CHURN: -5_000}
    assert moved(replay, "plan", "price_pro", FEB) == {C.NEW: 10_000}
    # The product and the interval stay: the switch is an expansion there too.
    assert moved(replay, "product", "prod_app", FEB) == {C.EXPANSION: 5_000}
    assert moved(replay, "interval", "month", FEB) == {C.EXPANSION: 5_000}


def test_a_return_to_a_plan_left_is_reactivation_there() -> None:
    replay = run(
        [
            sub("customer.subscription.created", at(1, 5), [(BASIC, 1)]),
            sub("customer.subscription.updated", at(2, 5), [(PRO, 1)]),
            sub("customer.subscription.updated", at(3, 5), [(BASIC, 1)]),
        ]
    )
    assert moved(replay, "plan", "price_basic", MAR) == {C.REACTIVATION: 5_000}
    assert moved(replay, "plan", "price_pro", MAR) == {C.CHURN: -10_000}
    assert moved(replay, "product", "prod_app", MAR) == {C.CONTRACTION: -5_000}


def test_a_second_plan_is_new_in_its_segment_and_expansion_in_the_total() -> None:
    replay = run(
        [
            sub("customer.subscription.created", at(1, 5), [(BASIC, 1)]),
            sub("customer.subscription.created", at(2, 5), [(PRO, 2)], sub_id="sub_2"),
            b.subscription_event(
                "customer.subscription.deleted", "sub_1", "cus_1", at(3, 1), "canceled",
                items=[{"price": BASIC, "quantity": 1}], ended_at=at(3, 1),
            ),
        ]
    )  # fmt: skip
    assert [e.category for e in replay.entries] == [C.NEW, C.EXPANSION, C.CONTRACTION]
    assert moved(replay, "plan", "price_pro", FEB) == {C.NEW: 20_000}
    assert moved(replay, "plan", "price_basic", MAR) == {C.CHURN: -5_000}


def test_failed_renewal_and_recovery_move_the_segment_delinquent_balance() -> None:
    replay = run(
        [
            sub("customer.subscription.created", at(1, 5), [(BASIC, 1)]),
            b.invoice_event(
                "invoice.payment_failed", "in_2", "cus_1", "sub_1", at(2, 5),
                billing_reason="subscription_cycle",
            ),
            b.invoice_event("invoice.paid", "in_2", "cus_1", "sub_1", at(3, 5)),
        ]
    )  # fmt: skip
    assert moved(replay, "plan", "price_basic", FEB) == {C.DELINQUENT: -5_000}
    assert moved(replay, "plan", "price_basic", MAR) == {C.RECOVERED: 5_000}


def test_a_subscription_discount_is_shared_among_items_and_the_parts_add_up() -> None:
    coupon = b.coupon_object("co_ten", amount_off=1_000, currency="usd")
    discount = b.discount_object("di_1", "cus_1", coupon, subscription="sub_1", shape="old")
    replay = run(
        [
            sub(
                "customer.subscription.created", at(1, 5), [(BASIC, 1), (PRO, 1)],
                discount=discount, shape="old",
            ),
        ]
    )  # fmt: skip
    assert [e.amount for e in replay.entries] == [14_000]
    basic = moved(replay, "plan", "price_basic", JAN)[C.NEW]
    pro = moved(replay, "plan", "price_pro", JAN)[C.NEW]
    # 14,000 shared 5,000 : 10,000 is 4,666.67 and 9,333.33: whole cents that add up.
    assert (basic, pro) == (4_667, 9_333)


def balances(replay: Replay, dimension: str) -> dict[str, tuple[int, int]]:
    found: dict[str, tuple[int, int]] = {}
    for (dim, value, _, _), sums in replay.segment_months.items():
        if dim != dimension:
            continue
        a, d = found.get(value, (0, 0))
        for category, slot in MOVEMENT_SLOTS.items():
            a += active_effect(category, sums[slot])
            d += delinquent_effect(category, sums[slot])
        found[value] = (a, d)
    return found


@given(
    st.lists(
        st.tuples(st.sampled_from(["b", "p", "bp", "cancel", "fail", "pay"]), st.integers(1, 3)),
        min_size=1,
        max_size=8,
    )
)
def test_segment_balances_add_up_to_the_customer_balance(steps: list[tuple[str, int]]) -> None:
    events: list[Any] = []
    created = at(1, 1)
    for n, (kind, quantity) in enumerate(steps):
        created += 86_400 * 9
        if kind == "cancel":
            events.append(
                sub("customer.subscription.deleted", created, [(BASIC, 1)], "canceled",
                    ended_at=created)
            )  # fmt: skip
            break
        if kind in ("fail", "pay"):
            invoice_type = "invoice.payment_failed" if kind == "fail" else "invoice.paid"
            events.append(
                b.invoice_event(invoice_type, f"in_{n}", "cus_1", "sub_1", created,
                                billing_reason="subscription_cycle")
            )  # fmt: skip
            continue
        items = {"b": [(BASIC, quantity)], "p": [(PRO, quantity)]}.get(
            kind, [(BASIC, quantity), (PRO, 1)]
        )
        kind_of = "created" if n == 0 else "updated"
        events.append(sub(f"customer.subscription.{kind_of}", created, items))
    replay = run(events)
    active = sum(active_effect(e.category, e.amount) for e in replay.entries)
    delinquent = sum(delinquent_effect(e.category, e.amount) for e in replay.entries)
    for dimension in ("plan", "product", "interval"):
        found = balances(replay, dimension).values()
        assert sum(a for a, _ in found) == active
        assert sum(d for _, d in found) == delinquent
        assert all(a >= 0 and d >= 0 for a, d in found)


@given(st.integers(0, 10**9), st.lists(st.integers(0, 10**6), min_size=1, max_size=5))
def test_allocation_adds_up_and_follows_the_weights(amount: int, weights: list[int]) -> None:
    parts = allocate(amount, [Fraction(w) for w in weights])
    assert sum(parts) == amount
    whole = sum(weights)
    if whole:
        for part, weight in zip(parts, weights, strict=True):
            assert abs(part - Fraction(amount * weight, whole)) < 1
