import itertools
import json
from collections import defaultdict
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from decimal import ROUND_HALF_EVEN, Decimal
from typing import Any

import pytest

from ledger.rules.entries import Category, DesiredEntry, active_effect
from ledger.rules.money import to_major
from ledger.rules.timeline import (
    MissingReference,
    Replay,
    is_relevant,
    references_in,
)
from tests.rules import builders as b
from tests.rules.checkpointed import replay_checked
from tests.rules.fixtures import load

C = Category


def at(month: int, day: int, hour: int = 0, year: int = 2025) -> int:
    return int(datetime(year, month, day, hour, tzinfo=UTC).timestamp())


def run(
    events: Iterable[Mapping[str, Any]], refs: b.Refs | None = None, customer: str = "cus_1"
) -> Replay:
    """The replay, checked against resuming from a checkpoint after every event."""
    return replay_checked(customer, [b.record(e) for e in events], refs or b.Refs())


def cats(replay: Replay) -> list[tuple[str, Category, int]]:
    return [(e.subscription_id, e.category, e.amount) for e in replay.entries]


def keyed(replay: Replay) -> list[tuple[Any, ...]]:
    return [(*e.key(), dict(e.explanation)) for e in replay.entries]


def sub(type: str, created: int, status: str = "active", sub_id: str = "sub_1", **kw: Any) -> Any:
    return b.subscription_event(type, sub_id, kw.pop("customer", "cus_1"), created, status, **kw)


def inv(type: str, invoice_id: str, created: int, sub_id: str = "sub_1", **kw: Any) -> Any:
    return b.invoice_event(type, invoice_id, kw.pop("customer", "cus_1"), sub_id, created, **kw)


# --- interface -----------------------------------------------------------------------------


def test_relevant_types() -> None:
    for event_type in (
        "customer.subscription.created",
        "customer.subscription.pending_update_applied",
        "customer.subscription.paused",
        "invoice.paid",
        "invoice.payment_succeeded",
        "invoice.voided",
        "invoice.marked_uncollectible",
        "customer.discount.deleted",
        "coupon.updated",
    ):
        assert is_relevant(event_type)
    assert not is_relevant("invoice.created")
    assert not is_relevant("charge.succeeded")


def test_references_in_events() -> None:
    coupon = b.record(load("coupon_created"))
    assert references_in(coupon) == [("coupon", "co_NewShape20", coupon.object)]
    old = b.record(load("discount_created_old"))
    kinds = [(k, i) for k, i, _ in references_in(old)]
    assert kinds == [("discount", "di_1OldCustomerDiscount"), ("coupon", "co_Old5Off")]
    new = b.record(load("discount_created_new"))
    assert [(k, i) for k, i, _ in references_in(new)] == [("discount", "di_1NewShapeSub")]
    tiers = {"up_to": None, "unit_amount": 100}
    priced = {
        "price": b.price(None, tiers=[tiers], tiers_mode="volume", price_id="p_t"),
        "quantity": 1,
    }
    found = references_in(b.record(sub("created", 1, items=[priced])))
    assert ("price", "p_t") in [(k, i) for k, i, _ in found]
    assert references_in(b.record(load("invoice_paid_new"))) == []


# --- worked examples (rules file) --------------------------------------------------------------


def test_worked_example_mrr_and_arpu() -> None:
    plans = [(150, 5_000), (100, 10_000), (50, 20_000)]
    total, customers = 0, 0
    for tier, (count, amount) in enumerate(plans):
        for n in range(count):
            customer = f"cus_{tier}_{n}"
            replay = run(
                [sub("created", at(1, 1), sub_id=f"sub_{customer}", customer=customer,
                     items=[(amount, "month", 1, 1)])],
                customer=customer,
            )  # fmt: skip
            assert cats(replay) == [(f"sub_{customer}", C.NEW, amount)]
            total += sum(active_effect(e.category, e.amount) for e in replay.entries)
            customers += 1
    assert to_major(total, "usd") == Decimal("27500.00") and customers == 300
    arpu = (to_major(total, "usd") / customers).quantize(Decimal("0.01"), ROUND_HALF_EVEN)
    assert arpu == Decimal("91.67")


def test_worked_example_yearly() -> None:
    assert cats(run([sub("created", at(1, 1), items=[(120_000, "year", 1, 1)])])) == [
        ("sub_1", C.NEW, 10_000)
    ]
    assert cats(run([sub("created", at(1, 1), items=[(100_000, "year", 1, 1)])])) == [
        ("sub_1", C.NEW, 8_333)
    ]


@pytest.mark.parametrize("shape", ["old", "new"])
def test_worked_example_coupon_removed_is_expansion(shape: b.Shape) -> None:
    half = b.coupon_object("half", percent_off=50)
    discount = b.discount_object("di_half", "cus_1", half, subscription="sub_1", shape=shape)
    with_coupon: dict[str, Any] = (
        {"discount": discount} if shape == "old" else {"discounts": ["di_half"]}
    )
    events = [
        b.coupon_event("created", half, at(1, 1)),
        b.discount_event("created", "di_half", "cus_1", at(1, 1), half, subscription="sub_1",
                         shape=shape),
        sub("created", at(1, 1), shape=shape, **with_coupon),
        b.discount_event("deleted", "di_half", "cus_1", at(2, 1), half, subscription="sub_1",
                         shape=shape),
        sub("updated", at(2, 1), shape=shape),
    ]  # fmt: skip
    assert cats(run(events)) == [("sub_1", C.NEW, 5_000), ("sub_1", C.EXPANSION, 5_000)]


def month_sums(entries: list[DesiredEntry]) -> dict[tuple[int, Category], int]:
    sums: dict[tuple[int, Category], int] = defaultdict(int)
    for entry in entries:
        sums[(entry.effective_at.month, entry.category)] += entry.amount
    return sums


def test_worked_example_failed_renewal_then_paid() -> None:
    events = [
        sub("created", at(2, 3), latest_invoice="in_1"),
        inv("paid", "in_1", at(2, 3), billing_reason="subscription_create"),
        inv("payment_failed", "in_2", at(3, 3)),
        sub("updated", at(3, 3), "past_due", latest_invoice="in_2"),
        inv("paid", "in_2", at(3, 9)),
        sub("updated", at(3, 9), "active", latest_invoice="in_2"),
    ]
    replay = run(events)
    assert cats(replay) == [
        ("sub_1", C.NEW, 10_000),
        ("sub_1", C.DELINQUENT, -10_000),
        ("sub_1", C.RECOVERED, 10_000),
    ]
    assert [e.effective_at.day for e in replay.entries[1:]] == [3, 9]
    assert month_sums(replay.entries).get((3, C.CHURN), 0) == 0


def test_worked_example_failed_renewal_then_cancelled_unpaid() -> None:
    events = [
        sub("created", at(2, 3), customer="cus_2"),
        inv("payment_failed", "in_2", at(3, 3), customer="cus_2"),
        sub("updated", at(3, 3), "past_due", customer="cus_2", latest_invoice="in_2"),
        sub("deleted", at(3, 20), "canceled", customer="cus_2", latest_invoice="in_2"),
    ]
    replay = run(events, customer="cus_2")
    assert cats(replay) == [
        ("sub_1", C.NEW, 10_000),
        ("sub_1", C.DELINQUENT, -10_000),
        ("sub_1", C.DELINQUENT_CHURN, -10_000),
    ]
    assert month_sums(replay.entries).get((3, C.CHURN), 0) == 0


# --- payment state ------------------------------------------------------------------------


def fail_paid(first: str, second: str) -> list[Any]:
    """A renewal fails on March 3 and is paid on March 9, paid and update in the same second."""
    return [
        sub("created", at(2, 3), event_id="evt_a_created"),
        inv("payment_failed", "in_2", at(3, 3), event_id="evt_b_failed"),
        sub("updated", at(3, 3), "past_due", latest_invoice="in_2", event_id="evt_c_pastdue"),
        inv("paid", "in_2", at(3, 9), event_id=first),
        sub("updated", at(3, 9), "active", latest_invoice="in_2", event_id=second),
    ]


@pytest.mark.parametrize(("paid_id", "update_id"), [("evt_x1", "evt_x2"), ("evt_x2", "evt_x1")])
def test_paid_and_active_in_the_same_second_recover_once(paid_id: str, update_id: str) -> None:
    replay = run(fail_paid(paid_id, update_id))
    assert cats(replay) == [
        ("sub_1", C.NEW, 10_000),
        ("sub_1", C.DELINQUENT, -10_000),
        ("sub_1", C.RECOVERED, 10_000),
    ]
    assert replay.entries[-1].source_event_id == "evt_x1"  # whichever sorts first


@pytest.mark.parametrize(("failed_id", "update_id"), [("evt_f1", "evt_f2"), ("evt_f2", "evt_f1")])
def test_failure_and_past_due_in_the_same_second_count_once(failed_id: str, update_id: str) -> None:
    events = [
        sub("created", at(2, 3)),
        inv("payment_failed", "in_2", at(3, 3), event_id=failed_id),
        sub("updated", at(3, 3), "past_due", latest_invoice="in_2", event_id=update_id),
    ]
    assert cats(run(events))[1:] == [("sub_1", C.DELINQUENT, -10_000)]


def test_same_second_active_snapshot_does_not_clear_a_failure() -> None:
    # the renewal's own subscription.updated (still active) sorts after the failure
    events = [
        sub("created", at(2, 3)),
        inv("payment_failed", "in_2", at(3, 3), event_id="evt_1"),
        sub("updated", at(3, 3), "active", latest_invoice="in_2", event_id="evt_2"),
        sub("updated", at(3, 3, 1), "past_due", latest_invoice="in_2", event_id="evt_3"),
    ]
    assert cats(run(events))[1:] == [("sub_1", C.DELINQUENT, -10_000)]


def test_stale_past_due_snapshot_after_the_paid_invoice() -> None:
    events = [
        *fail_paid("evt_x1", "evt_x2")[:4],
        sub("updated", at(3, 9), "past_due", latest_invoice="in_2", event_id="evt_x3"),
    ]
    assert cats(run(events))[1:] == [
        ("sub_1", C.DELINQUENT, -10_000),
        ("sub_1", C.RECOVERED, 10_000),
    ]


def test_failed_invoice_voided_recovers() -> None:
    events = [
        sub("created", at(2, 3)),
        inv("payment_failed", "in_2", at(3, 3)),
        inv("voided", "in_2", at(3, 5)),
    ]
    assert cats(run(events))[1:] == [
        ("sub_1", C.DELINQUENT, -10_000),
        ("sub_1", C.RECOVERED, 10_000),
    ]


def test_marked_uncollectible_stays_delinquent_until_the_end() -> None:
    events = [
        sub("created", at(2, 3)),
        inv("payment_failed", "in_2", at(3, 3)),
        sub("updated", at(3, 3), "past_due", latest_invoice="in_2"),
        inv("marked_uncollectible", "in_2", at(3, 20)),
        sub("updated", at(3, 20), "unpaid", latest_invoice="in_2"),
        sub("deleted", at(4, 1), "canceled", latest_invoice="in_2"),
    ]
    replay = run(events)
    assert cats(replay)[1:] == [
        ("sub_1", C.DELINQUENT, -10_000),
        ("sub_1", C.DELINQUENT_CHURN, -10_000),
    ]
    assert replay.closing == {"sub_1": (0, 0)}


def test_trial_conversion_failing_counts_nothing_until_paid() -> None:
    events = [
        sub("created", at(1, 1), "trialing", trial_end=at(1, 15)),
        inv("paid", "in_0", at(1, 1), amount=0, billing_reason="subscription_create"),
        inv("payment_failed", "in_1", at(1, 15)),
        sub("updated", at(1, 15), "past_due", latest_invoice="in_1", trial_end=at(1, 15),
            period_start=at(1, 15), previous_attributes={"status": "trialing"}),
        inv("paid", "in_1", at(1, 18)),
        sub("updated", at(1, 18), "active", latest_invoice="in_1"),
    ]  # fmt: skip
    replay = run(events)
    assert cats(replay) == [("sub_1", C.NEW, 10_000)]
    assert replay.entries[0].effective_at.day == 18


def test_incomplete_first_payment_then_new_once() -> None:
    events = [
        sub("created", at(1, 1), "incomplete", latest_invoice="in_1"),
        inv("payment_failed", "in_1", at(1, 1), billing_reason="subscription_create"),
        inv("paid", "in_1", at(1, 2), billing_reason="subscription_create"),
        sub("updated", at(1, 2), "active", latest_invoice="in_1"),
    ]
    assert cats(run(events)) == [("sub_1", C.NEW, 10_000)]


def test_incomplete_expired_counts_nothing() -> None:
    events = [
        sub("created", at(1, 1), "incomplete", latest_invoice="in_1"),
        sub("updated", at(1, 2), "incomplete_expired", latest_invoice="in_1"),
    ]
    assert cats(run(events)) == []


def test_cancel_at_period_end_changes_nothing_until_it_ends() -> None:
    events = [
        sub("created", at(1, 1)),
        sub("updated", at(1, 10), cancel_at_period_end=True),
        sub("deleted", at(2, 1), "canceled", ended_at=at(1, 31, 23)),
    ]
    replay = run(events)
    assert cats(replay) == [("sub_1", C.NEW, 10_000), ("sub_1", C.CHURN, -10_000)]
    assert replay.entries[-1].effective_at == datetime(2025, 1, 31, 23, tzinfo=UTC)


def test_ended_subscription_never_comes_back() -> None:
    events = [
        sub("created", at(1, 1)),
        sub("deleted", at(2, 1), "canceled"),
        sub("updated", at(2, 1), "active", event_id="evt_zzz_stale"),
        inv("paid", "in_9", at(2, 2)),
    ]
    assert cats(run(events)) == [("sub_1", C.NEW, 10_000), ("sub_1", C.CHURN, -10_000)]


def test_recovered_at_a_different_price_is_expansion() -> None:
    events = [
        sub("created", at(1, 1)),
        inv("payment_failed", "in_2", at(2, 1)),
        sub("updated", at(2, 1), "past_due", latest_invoice="in_2"),
        sub(
            "updated", at(2, 5), "past_due", latest_invoice="in_2", items=[(12_000, "month", 1, 1)]
        ),
        sub("updated", at(2, 9), "active", latest_invoice="in_2", items=[(12_000, "month", 1, 1)]),
    ]
    assert cats(run(events))[1:] == [
        ("sub_1", C.DELINQUENT, -10_000),
        ("sub_1", C.DELINQUENT_CHANGE, 2_000),
        ("sub_1", C.RECOVERED, 12_000),
    ]


# --- pauses, trials, churn and reactivation -------------------------------------------------


def test_pause_is_contraction_and_its_end_expansion() -> None:
    events = [
        sub("created", at(1, 1)),
        sub("updated", at(2, 1), pause_collection=True),
        sub("updated", at(3, 1)),
        sub("paused", at(4, 1), "paused"),
        sub("resumed", at(5, 1), "active"),
    ]
    assert cats(run(events)) == [
        ("sub_1", C.NEW, 10_000),
        ("sub_1", C.CONTRACTION, -10_000),
        ("sub_1", C.EXPANSION, 10_000),
        ("sub_1", C.CONTRACTION, -10_000),
        ("sub_1", C.EXPANSION, 10_000),
    ]


def test_ending_while_paused_moves_nothing_but_a_return_is_reactivation() -> None:
    events = [
        sub("created", at(1, 1)),
        sub("paused", at(2, 1), "paused"),
        sub("deleted", at(3, 1), "canceled"),
        sub("created", at(4, 1), sub_id="sub_2"),
    ]
    assert cats(run(events)) == [
        ("sub_1", C.NEW, 10_000),
        ("sub_1", C.CONTRACTION, -10_000),
        ("sub_2", C.REACTIVATION, 10_000),
    ]


def test_ending_while_trialing_moves_nothing() -> None:
    events = [
        sub("created", at(1, 1)),
        sub("deleted", at(2, 1), "canceled"),
        sub("created", at(3, 1), "trialing", sub_id="sub_2"),
        sub("deleted", at(3, 10), "canceled", sub_id="sub_2"),
        sub("created", at(4, 1), sub_id="sub_3"),
    ]
    assert cats(run(events)) == [
        ("sub_1", C.NEW, 10_000),
        ("sub_1", C.CHURN, -10_000),
        ("sub_3", C.REACTIVATION, 10_000),
    ]


def test_second_subscription_upgrade_downgrade_and_partial_end() -> None:
    events = [
        sub("created", at(1, 1)),
        sub("created", at(1, 5), sub_id="sub_2", items=[(2_000, "month", 1, 1)]),
        sub("updated", at(2, 1), items=[(10_000, "month", 1, 2)]),
        sub("pending_update_applied", at(2, 5), items=[(10_000, "month", 1, 1)]),
        sub("deleted", at(3, 1), "canceled", sub_id="sub_2", items=[(2_000, "month", 1, 1)]),
        sub("deleted", at(4, 1), "canceled"),
    ]
    assert cats(run(events)) == [
        ("sub_1", C.NEW, 10_000),
        ("sub_2", C.EXPANSION, 2_000),
        ("sub_1", C.EXPANSION, 10_000),
        ("sub_1", C.CONTRACTION, -10_000),
        ("sub_2", C.CONTRACTION, -2_000),
        ("sub_1", C.CHURN, -10_000),
    ]


# --- discounts and references ---------------------------------------------------------------


def test_customer_level_discount_moves_every_subscription() -> None:
    half = b.coupon_object("half", percent_off=50)
    events = [
        sub("created", at(1, 1)),
        sub("created", at(1, 1), sub_id="sub_2", items=[(4_000, "month", 1, 1)]),
        b.discount_event("created", "di_c", "cus_1", at(2, 1), half, shape="old"),
        b.discount_event("deleted", "di_c", "cus_1", at(3, 1), half, shape="old"),
    ]
    replay = run(events)
    assert cats(replay)[2:] == [
        ("sub_1", C.CONTRACTION, -5_000),
        ("sub_2", C.CONTRACTION, -2_000),
        ("sub_1", C.EXPANSION, 5_000),
        ("sub_2", C.EXPANSION, 2_000),
    ]
    assert {e.source_event_id for e in replay.entries[2:4]} == {events[2]["id"]}


def discount_history(with_coupon_event: bool) -> list[Any]:
    events = [
        sub("created", at(1, 1), discounts=["di_1"]),
        b.discount_event("created", "di_1", "cus_1", at(1, 1), "co_20", subscription="sub_1"),
        sub("updated", at(2, 1), discounts=["di_1"], items=[(10_000, "month", 1, 2)]),
    ]
    if with_coupon_event:
        events.append(b.coupon_event("updated", "co_20", at(6, 1), percent_off=20))  # much later
    return events


def test_discount_ids_with_coupon_terms_arriving_later() -> None:
    unknown = run(discount_history(False))
    assert cats(unknown) == [("sub_1", C.NEW, 10_000), ("sub_1", C.EXPANSION, 10_000)]
    assert ("coupon", "co_20") in unknown.depends_on
    known = run(discount_history(True))
    assert cats(known) == [("sub_1", C.NEW, 8_000), ("sub_1", C.EXPANSION, 8_000)]
    coupon = b.coupon_object("co_20", percent_off=20)
    via_refs = run(discount_history(False), b.Refs({("coupon", "co_20"): coupon}))
    assert keyed(via_refs) == keyed(known)


def test_legacy_discount_object_and_discount_ids_agree() -> None:
    coupon = b.coupon_object("co_20", percent_off=20)
    legacy = b.discount_object("di_1", "cus_1", coupon, subscription="sub_1", shape="old")
    old = run([sub("created", at(1, 1), shape="old", discount=legacy)])
    new = run(discount_history(True)[:2] + discount_history(True)[3:])
    assert cats(old) == cats(new) == [("sub_1", C.NEW, 8_000)]


def test_unknown_discount_is_a_dependency() -> None:
    replay = run([sub("created", at(1, 1), discounts=["di_9"])])
    assert cats(replay) == [("sub_1", C.NEW, 10_000)]
    assert ("discount", "di_9") in replay.depends_on


def test_discount_terms_from_refs() -> None:
    refs = b.Refs(
        {
            ("discount", "di_9"): b.discount_object("di_9", "cus_1", "co_9", subscription="sub_1"),
            ("coupon", "co_9"): b.coupon_object("co_9", amount_off=1_000, currency="usd"),
        }
    )
    replay = run([sub("created", at(1, 1), discounts=["di_9"])], refs)
    assert cats(replay) == [("sub_1", C.NEW, 9_000)]
    assert {("discount", "di_9"), ("coupon", "co_9")} <= replay.depends_on


def tiered_item(expand: bool) -> dict[str, Any]:
    tiers: list[dict[str, Any]] = [
        {"up_to": 10, "unit_amount": 1_000},
        {"up_to": None, "unit_amount": 800},
    ]
    price = b.price(None, tiers=tiers, tiers_mode="volume", price_id="price_t", expand_tiers=expand)
    return {"price": price, "quantity": 12}


def test_tiered_price_without_tiers_and_no_reference_fails() -> None:
    with pytest.raises(MissingReference) as raised:
        run([sub("created", at(1, 1), items=[tiered_item(False)])])
    assert (raised.value.kind, raised.value.object_id) == ("price", "price_t")


def test_tiered_price_tiers_from_refs_or_another_event() -> None:
    bare = sub("created", at(1, 1), items=[tiered_item(False)])
    refs = b.Refs({("price", "price_t"): tiered_item(True)["price"]})
    from_refs = run([bare], refs)
    assert cats(from_refs) == [("sub_1", C.NEW, 9_600)]
    assert ("price", "price_t") in from_refs.depends_on
    later = sub("updated", at(3, 1), items=[tiered_item(True)])
    assert cats(run([bare, later])) == [("sub_1", C.NEW, 9_600)]


def test_metered_item_follows_finalized_invoices() -> None:
    metered: dict[str, Any] = {"price": b.price(None, usage_type="metered", price_id="price_m")}
    lines_jan = [b.invoice_line("sub_1", 2_500, item_id="si_sub_1_1")]
    lines_feb = [
        b.invoice_line("sub_1", 3_000, item_id="si_sub_1_1"),
        b.invoice_line("sub_1", -700, item_id="si_sub_1_1", proration=True, line_id="il_pr"),
    ]
    events = [
        sub("created", at(1, 1), items=[(10_000, "month", 1, 1), metered]),
        inv("paid", "in_1", at(2, 1), lines=lines_jan, amount=12_500),
        inv("paid", "in_2", at(3, 1), lines=lines_feb, amount=12_300),
    ]
    assert cats(run(events)) == [
        ("sub_1", C.NEW, 10_000),
        ("sub_1", C.EXPANSION, 2_500),
        ("sub_1", C.EXPANSION, 500),
    ]


def test_realistic_fixtures_new_shape_customer() -> None:
    events = [
        load("coupon_created"),
        load("subscription_created_new"),
        load("discount_created_new"),
        load("invoice_paid_new"),
    ]
    refs = b.Refs({("price", "price_NewShapeSeats"): load("price_tiered")})
    replay = run(events, refs, customer="cus_NewShape")
    # seats: 19000 a year; api calls: 2,071,000 on the yearly invoice; 20% off -> / 12
    assert cats(replay) == [
        ("sub_1NewShapeYearly", C.NEW, 1_267),  # 19000 x 0.8 / 12 = 1266.67
        ("sub_1NewShapeYearly", C.EXPANSION, 138_066),  # 2090000 x 0.8 / 12 = 139333 - 1267
    ]
    assert all(e.currency == "eur" for e in replay.entries)


def test_realistic_fixtures_old_shape_customer() -> None:
    events = [load("subscription_updated_old"), load("invoice_payment_failed_old")]
    replay = run(events, customer="cus_Na6dX7aXxi11N4")
    assert cats(replay) == [
        ("sub_1MowQVLkdIwHu7ixeRlqHVzs", C.NEW, 1_490),
        ("sub_1MowQVLkdIwHu7ixeRlqHVzs", C.DELINQUENT, -1_490),
    ]
    explanation = replay.entries[0].explanation
    assert explanation["mrr"]["items"][0]["calc"] == "1000 x 2 = 2000"


def test_currencies_zero_and_three_decimals() -> None:
    jpy = run([sub("created", at(1, 1), currency="jpy", items=[(100_000, "year", 1, 1)])])
    kwd = run([sub("created", at(1, 1), currency="kwd", items=[(12_345, "month", 3, 1)])])
    assert [(e.currency, e.amount) for e in jpy.entries] == [("jpy", 8_333)]
    assert [(e.currency, e.amount) for e in kwd.entries] == [("kwd", 4_115)]


# --- determinism ------------------------------------------------------------------------------


def test_order_and_duplicates_do_not_matter() -> None:
    events = fail_paid("evt_x1", "evt_x2") + discount_history(True)[1:]
    expected = keyed(run(events))
    for permutation in itertools.islice(itertools.permutations(events), 0, 400, 37):
        assert keyed(run([*permutation, permutation[0], permutation[-1]])) == expected


def test_other_customers_events_are_ignored() -> None:
    events = [sub("created", at(1, 1)), sub("created", at(1, 1), sub_id="sub_x", customer="cus_x")]
    assert cats(run(events)) == [("sub_1", C.NEW, 10_000)]


def test_entries_carry_explanations_and_utc_times() -> None:
    replay = run(fail_paid("evt_x1", "evt_x2"))
    for entry in replay.entries:
        json.dumps(entry.explanation)
        assert entry.effective_at.tzinfo is UTC
        assert entry.explanation["why"] and entry.explanation["before"]
    assert replay.entries[1].explanation["after"] == {
        "standing": "delinquent",
        "active": 0,
        "delinquent": 10_000,
    }


# --- every event type, as Stripe sends it ------------------------------------------------------

FIXTURE_EVENTS = {
    "customer.subscription.created": "subscription_created_new",
    "customer.subscription.updated": "subscription_updated_old",
    "customer.subscription.deleted": "subscription_deleted_old",
    "customer.subscription.paused": "subscription_paused_new",
    "customer.subscription.resumed": "subscription_resumed_new",
    "customer.subscription.pending_update_applied": "subscription_pending_update_applied_old",
    "invoice.paid": "invoice_paid_new",
    "invoice.payment_succeeded": "invoice_payment_succeeded_old",
    "invoice.payment_failed": "invoice_payment_failed_old",
    "invoice.marked_uncollectible": "invoice_marked_uncollectible_new",
    "invoice.voided": "invoice_voided_old",
    "customer.discount.created": "discount_created_new",
    "customer.discount.updated": "discount_updated_new",
    "customer.discount.deleted": "discount_deleted_old",
    "coupon.created": "coupon_created",
    "coupon.updated": "coupon_updated",
    "coupon.deleted": "coupon_deleted",
}


@pytest.mark.parametrize(("event_type", "name"), sorted(FIXTURE_EVENTS.items()))
def test_fixture_for_every_relevant_type(event_type: str, name: str) -> None:
    event = b.record(load(name))
    assert event.type == event_type and is_relevant(event.type)


def test_old_shape_story_from_fixtures() -> None:
    names = [
        "discount_deleted_old",
        "subscription_deleted_old",
        "invoice_payment_succeeded_old",
        "subscription_pending_update_applied_old",
        "invoice_payment_failed_old",
        "discount_created_old",  # customer-level, but the subscription has its own discount
        "subscription_updated_old",
    ]
    replay = run([load(n) for n in names], customer="cus_Na6dX7aXxi11N4")
    sub_id = "sub_1MowQVLkdIwHu7ixeRlqHVzs"
    assert cats(replay) == [
        (sub_id, C.NEW, 1_490),  # 1000 x 2 x (1 - 25.5/100)
        (sub_id, C.DELINQUENT, -1_490),
        (sub_id, C.RECOVERED, 1_490),
        (sub_id, C.EXPANSION, 745),  # quantity 3 -> 2235
        (sub_id, C.CHURN, -2_235),
    ]
    assert replay.entries[-1].effective_at == datetime.fromtimestamp(1714521600, UTC)


def test_new_shape_story_from_fixtures() -> None:
    names = [
        "subscription_resumed_new",
        "coupon_deleted",
        "subscription_paused_new",
        "invoice_paid_new",
        "coupon_updated",
        "discount_updated_new",
        "discount_created_new",
        "subscription_created_new",
    ]
    refs = b.Refs({("price", "price_NewShapeSeats"): load("price_tiered")})
    replay = run([load(n) for n in names], refs, customer="cus_NewShape")
    sub_id = "sub_1NewShapeYearly"
    assert cats(replay) == [
        (sub_id, C.NEW, 1_267),
        (sub_id, C.EXPANSION, 138_066),
        (sub_id, C.CONTRACTION, -139_333),  # paused: falls to 0 but not churned
        (sub_id, C.EXPANSION, 139_333),  # a pause ending is expansion, even from 0
    ]
