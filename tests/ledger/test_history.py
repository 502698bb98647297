"""History from Stripe objects: which events, with which ids, dates and shapes (pure)."""

from __future__ import annotations

from typing import Any

import pytest

from ledger.backfill.history import (
    EVENT_RETENTION_SECONDS,
    cutoffs_from_real_events,
    drop_overlapping,
    start_at,
    synthesize,
)
from ledger.rules.events import parse_event
from ledger.rules.payloads import subscription_of

DAY = 86_400
MONTH = 30 * DAY
T0 = 1_700_000_000
NOW = T0 + 12 * MONTH


def price(amount: int) -> dict[str, Any]:
    return {
        "id": f"price_{amount}",
        "object": "price",
        "unit_amount": amount,
        "unit_amount_decimal": str(amount),
        "currency": "usd",
        "recurring": {"interval": "month", "interval_count": 1, "usage_type": "licensed"},
    }


PRICES = {p["id"]: p for p in (price(1000), price(2000))}


def subscription(shape: str, amount: int = 2000, quantity: int = 1, **fields: Any) -> dict:
    item: dict[str, Any] = {"id": "si_1", "object": "subscription_item", "quantity": quantity}
    item["price"] = PRICES[f"price_{amount}"]
    sub: dict[str, Any] = {
        "id": "sub_1",
        "object": "subscription",
        "customer": "cus_1",
        "currency": "usd",
        "status": "active",
        "start_date": T0,
        "created": T0,
        "trial_end": None,
        "canceled_at": None,
        "ended_at": None,
        "pause_collection": None,
        "items": {"object": "list", "data": [item]},
    }
    if shape == "old":
        sub["current_period_start"], sub["current_period_end"] = NOW - DAY, NOW + MONTH
    else:
        item["current_period_start"], item["current_period_end"] = NOW - DAY, NOW + MONTH
    return sub | fields


def line(
    shape: str,
    amount: int,
    start: int,
    *,
    quantity: int = 1,
    proration: bool = False,
    total: int | None = None,
) -> dict[str, Any]:
    body: dict[str, Any] = {
        "id": f"il_{start}_{amount}_{proration}",
        "object": "line_item",
        "amount": amount * quantity if total is None else total,
        "quantity": quantity,
        "period": {"start": start, "end": start + MONTH},
    }
    if shape == "old":
        body |= {
            "price": PRICES[f"price_{amount}"],
            "proration": proration,
            "subscription_item": "si_1",
            "subscription": "sub_1",
        }
    else:
        kind = "invoice_item_details" if proration else "subscription_item_details"
        details = {"subscription": "sub_1", "proration": proration}
        if not proration:
            details["subscription_item"] = "si_1"
        body |= {
            "parent": {"type": kind, kind: details},
            "pricing": {"type": "price_details", "price_details": {"price": f"price_{amount}"}},
        }
    return body


def invoice(
    shape: str,
    n: int,
    start: int,
    lines: list[dict[str, Any]],
    *,
    reason: str = "subscription_cycle",
    paid_at: int | None = None,
    attempts: int = 1,
) -> dict[str, Any]:
    body: dict[str, Any] = {
        "id": f"in_{n}",
        "object": "invoice",
        "customer": "cus_1",
        "created": start,
        "billing_reason": reason,
        "status": "paid",
        "attempted": True,
        "attempt_count": attempts,
        "status_transitions": {
            "finalized_at": start + 3600,
            "paid_at": start + 3600 if paid_at is None else paid_at,
        },
        "lines": {"object": "list", "data": lines, "has_more": False},
    }
    if shape == "old":
        body["subscription"] = "sub_1"
    else:
        body["parent"] = {
            "type": "subscription_details",
            "subscription_details": {"subscription": "sub_1"},
        }
    return body


def kinds(events: list[dict[str, Any]]) -> list[tuple[str, str, int]]:
    return [(e["id"], e["type"], e["created"]) for e in events]


def mrr_items(event: dict[str, Any]) -> list[tuple[str, int]]:
    items = event["data"]["object"]["items"]["data"]
    return [(i["price"]["id"], i["quantity"]) for i in items]


SHAPES = pytest.mark.parametrize("shape", ["new", "old"])


@SHAPES
def test_an_upgrade_with_prorations_is_dated_when_it_was_made(shape: str) -> None:
    upgrade_at = T0 + MONTH + 10 * DAY
    invoices = [
        invoice(shape, 1, T0, [line(shape, 1000, T0)], reason="subscription_create"),
        invoice(shape, 2, T0 + MONTH, [line(shape, 1000, T0 + MONTH)]),
        invoice(
            shape,
            3,
            T0 + 2 * MONTH,
            [
                line(shape, 1000, upgrade_at, proration=True, total=-600),
                line(shape, 2000, upgrade_at, proration=True, total=1300),
                line(shape, 2000, T0 + 2 * MONTH),
            ],
        ),
    ]
    made = synthesize(subscription(shape), invoices, PRICES, now=NOW)
    subs = [e for e in made.events if e["type"].startswith("customer.subscription")]
    assert [(e["type"], e["created"]) for e in subs] == [
        ("customer.subscription.created", T0),
        ("customer.subscription.updated", upgrade_at),
    ]
    assert subs[0]["id"] == "bf_sub_1_start_date"
    assert subs[1]["id"].startswith("bf_il_") and subs[1]["id"].endswith("_period_start")
    assert [mrr_items(e) for e in subs] == [[("price_1000", 1)], [("price_2000", 1)]]
    assert subs[1]["backfill"]["field"] == "period.start"
    for event in made.events:
        parse_event(event)  # every one is a readable Stripe event
    old = "current_period_start" in subs[1]["data"]["object"]
    assert old == (shape == "old")


@SHAPES
def test_prorations_invoiced_apart_date_the_change_in_either_shape(shape: str) -> None:
    # A one-off invoice of the prorations alone: no subscription of its own, only its lines
    # name one (the line in the old shape, `parent.invoice_item_details` in the new).
    upgrade_at = T0 + MONTH + 10 * DAY
    apart = invoice(
        shape,
        3,
        upgrade_at,
        [
            line(shape, 1000, upgrade_at, proration=True, total=-600),
            line(shape, 2000, upgrade_at, proration=True, total=1300),
        ],
        reason="manual",
    )
    apart.pop("subscription" if shape == "old" else "parent")
    invoices = [
        invoice(shape, 1, T0, [line(shape, 1000, T0)], reason="subscription_create"),
        invoice(shape, 2, T0 + MONTH, [line(shape, 1000, T0 + MONTH)]),
        apart,
        invoice(shape, 4, T0 + 2 * MONTH, [line(shape, 2000, T0 + 2 * MONTH)]),
    ]
    made = synthesize(subscription(shape), invoices, PRICES, now=NOW)
    subs = [e for e in made.events if e["type"].startswith("customer.subscription")]
    assert [(e["type"], e["created"], mrr_items(e)) for e in subs] == [
        ("customer.subscription.created", T0, [("price_1000", 1)]),
        ("customer.subscription.updated", upgrade_at, [("price_2000", 1)]),
    ]
    assert subs[1]["backfill"] == {"object": f"il_{upgrade_at}_2000_True", "field": "period.start"}


@SHAPES
def test_without_prorations_a_change_is_dated_at_the_first_period_billed_at_it(shape: str) -> None:
    invoices = [
        invoice(shape, 1, T0, [line(shape, 1000, T0, quantity=2)], reason="subscription_create"),
        invoice(shape, 2, T0 + MONTH, [line(shape, 1000, T0 + MONTH, quantity=3)]),
    ]
    made = synthesize(subscription(shape, 1000, 3), invoices, PRICES, now=NOW)
    assert kinds(made.events) == [
        ("bf_sub_1_start_date", "customer.subscription.created", T0),
        ("bf_in_2_lines", "customer.subscription.updated", T0 + MONTH),
    ]
    assert mrr_items(made.events[1]) == [("price_1000", 3)]


@SHAPES
def test_a_failed_renewal_later_paid_is_delinquency_then_recovery(shape: str) -> None:
    failed = T0 + MONTH + 3600
    paid = failed + 4 * DAY
    invoices = [
        invoice(shape, 1, T0, [line(shape, 2000, T0)], reason="subscription_create"),
        invoice(shape, 2, T0 + MONTH, [line(shape, 2000, T0 + MONTH)], paid_at=paid, attempts=3),
    ]
    made = synthesize(subscription(shape), invoices, PRICES, now=NOW)
    assert kinds(made.events) == [
        ("bf_sub_1_start_date", "customer.subscription.created", T0),
        ("bf_in_2_attempt_count", "invoice.payment_failed", failed),
        ("bf_in_2_finalized_at", "customer.subscription.updated", failed),
        ("bf_in_2_paid_at", "invoice.paid", paid),
        ("bf_in_2_paid_at_status", "customer.subscription.updated", paid),
    ]
    by_id = {e["id"]: e["data"]["object"] for e in made.events}
    assert by_id["bf_in_2_finalized_at"]["status"] == "past_due"
    assert by_id["bf_in_2_attempt_count"]["status"] == "open"
    assert by_id["bf_in_2_attempt_count"]["status_transitions"]["paid_at"] is None
    assert by_id["bf_in_2_paid_at_status"]["status"] == "active"
    assert subscription_of(by_id["bf_in_2_attempt_count"]) == "sub_1"


def test_a_trial_then_a_cancellation() -> None:
    trial_end = T0 + 14 * DAY
    canceled, ended = T0 + 3 * MONTH, T0 + 4 * MONTH
    sub = subscription(
        "new",
        status="canceled",
        trial_end=trial_end,
        canceled_at=canceled,
        ended_at=ended,
        cancel_at_period_end=True,
    )
    invoices = [
        invoice(
            "new", 1, T0, [line("new", 2000, T0, total=0)], reason="subscription_create", attempts=0
        )
    ]
    made = synthesize(sub, invoices, PRICES, now=NOW)
    assert kinds(made.events) == [
        ("bf_sub_1_start_date", "customer.subscription.created", T0),
        ("bf_sub_1_trial_end", "customer.subscription.updated", trial_end),
        ("bf_sub_1_canceled_at", "customer.subscription.updated", canceled),
        ("bf_sub_1_ended_at", "customer.subscription.deleted", ended),
    ]
    states = [e["data"]["object"] for e in made.events]
    assert [s["status"] for s in states] == ["trialing", "active", "active", "canceled"]
    assert [s["cancel_at_period_end"] for s in states[:3]] == [False, False, True]
    assert [s["ended_at"] for s in states] == [None, None, None, ended]


def test_nothing_is_dated_after_now() -> None:
    sub = subscription("new", status="trialing", trial_end=NOW + DAY)
    made = synthesize(sub, [], PRICES, now=NOW)
    assert kinds(made.events) == [("bf_sub_1_start_date", "customer.subscription.created", T0)]
    assert made.events[0]["data"]["object"]["status"] == "trialing"


def test_a_pause_still_in_force_starts_with_the_first_voided_invoice() -> None:
    sub = subscription("new", pause_collection={"behavior": "void", "resumes_at": None})
    voided = invoice("new", 2, T0 + MONTH, [line("new", 2000, T0 + MONTH)])
    voided |= {"status": "void", "attempt_count": 0, "attempted": False}
    voided["status_transitions"]["paid_at"] = None
    invoices = [
        invoice("new", 1, T0, [line("new", 2000, T0)], reason="subscription_create"),
        voided,
    ]
    made = synthesize(sub, invoices, PRICES, now=NOW)
    pause = [e for e in made.events if e["id"] == "bf_sub_1_pause_collection"]
    assert [e["created"] for e in pause] == [T0 + MONTH]
    assert pause[0]["data"]["object"]["pause_collection"] == {
        "behavior": "void",
        "resumes_at": None,
    }
    assert made.events[0]["data"]["object"]["pause_collection"] is None


def test_a_change_after_the_last_invoice_without_prorations_is_dated_at_the_retention_edge() -> (
    None
):
    last = NOW - 3 * MONTH
    invoices = [invoice("new", 1, last, [line("new", 1000, last)], reason="subscription_create")]
    made = synthesize(subscription("new", 2000, start_date=last), invoices, PRICES, now=NOW)
    assert kinds(made.events)[-1] == (
        "bf_sub_1_items",
        "customer.subscription.updated",
        NOW - EVENT_RETENTION_SECONDS,
    )


def real(event_id: str, kind: str, created: int, obj: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": event_id,
        "object": "event",
        "type": kind,
        "created": created,
        "data": {"object": obj},
    }


def test_real_events_are_authoritative_from_the_first_one() -> None:
    invoices = [
        invoice("new", 1, T0, [line("new", 1000, T0)], reason="subscription_create"),
        invoice("new", 2, T0 + MONTH, [line("new", 2000, T0 + MONTH)]),
    ]
    synthetic = synthesize(subscription("new"), invoices, PRICES, now=NOW).events
    midway = [real("evt_1", "invoice.paid", T0 + MONTH, invoices[1])]
    assert [e["id"] for e in drop_overlapping(synthetic, cutoffs_from_real_events(midway))] == [
        "bf_sub_1_start_date"
    ]
    whole = [real("evt_0", "customer.subscription.created", T0 + 5, subscription("new")), *midway]
    assert drop_overlapping(synthetic, cutoffs_from_real_events(whole)) == []
    # Synthetic events never count as real ones, and other subscriptions are untouched.
    assert drop_overlapping(synthetic, cutoffs_from_real_events(synthetic)) == synthetic
    assert drop_overlapping(synthetic, {"sub_2": None}) == synthetic


def test_since_opens_with_the_state_at_that_date() -> None:
    invoices = [
        invoice("new", 1, T0, [line("new", 1000, T0)], reason="subscription_create"),
        invoice("new", 2, T0 + MONTH, [line("new", 2000, T0 + MONTH)]),
    ]
    events = synthesize(subscription("new"), invoices, PRICES, now=NOW).events
    since = T0 + 2 * MONTH
    opened = start_at(events, since)
    assert kinds(opened) == [(f"bf_sub_1_since_{since}", "customer.subscription.created", since)]
    assert mrr_items(opened[0]) == [("price_2000", 1)]
    assert start_at(events, T0) == events


def test_the_same_objects_give_the_same_events() -> None:
    invoices = [invoice("old", 1, T0, [line("old", 1000, T0)], reason="subscription_create")]
    first = synthesize(subscription("old", 1000), invoices, PRICES, now=NOW)
    again = synthesize(subscription("old", 1000), invoices, PRICES, now=NOW)
    assert first.events == again.events and not first.warnings


# --- what the objects tell only partly (issue 15) -------------------------------------------


def coupon(percent: int) -> dict[str, Any]:
    return {"id": f"C{percent}", "object": "coupon", "percent_off": percent, "duration": "forever"}


def discount(n: int, start: int, end: int | None = None, **fields: Any) -> dict[str, Any]:
    """A discount as `expand[]=data.discounts` shows it (a removed one: `deleted`, no end)."""
    return {
        "id": f"di_{n}",
        "object": "discount",
        "coupon": coupon(25),
        "customer": "cus_1",
        "subscription": "sub_1",
        "start": start,
        "end": end,
    } | fields


def test_a_discount_is_dated_by_its_start_and_carries_its_terms() -> None:
    added = T0 + MONTH + 9 * DAY
    with_it = discount(1, added)
    second = invoice("new", 2, T0 + MONTH, [line("new", 2000, T0 + MONTH)])
    third = invoice("new", 3, T0 + 2 * MONTH, [line("new", 2000, T0 + 2 * MONTH)])
    third["discounts"] = [with_it]
    invoices = [
        invoice("new", 1, T0, [line("new", 2000, T0)], reason="subscription_create"),
        second,
        third,
    ]
    made = synthesize(subscription("new", discounts=[with_it]), invoices, PRICES, now=NOW)
    assert kinds(made.events) == [
        ("bf_sub_1_start_date", "customer.subscription.created", T0),
        ("bf_in_3_lines", "customer.subscription.updated", added),
    ]
    assert made.events[1]["data"]["object"]["discounts"] == [with_it]
    assert "guess" not in made.events[1]["backfill"] and not made.warnings


def test_a_discount_removed_before_its_end_is_dated_at_the_first_invoice_without_it() -> None:
    removed = {k: v for k, v in discount(1, T0 + 5 * DAY).items() if k != "end"}
    removed["deleted"] = True
    first = invoice("new", 1, T0, [line("new", 2000, T0)], reason="subscription_create")
    first["discounts"] = ["di_1"]  # only an id here: the listing expanded it elsewhere
    invoices = [first, invoice("new", 2, T0 + MONTH, [line("new", 2000, T0 + MONTH)])]
    made = synthesize(subscription("new"), invoices, PRICES, now=NOW, discounts={"di_1": removed})
    change = made.events[-1]
    assert (change["id"], change["created"]) == ("bf_in_2_lines", T0 + MONTH)
    assert change["backfill"]["guess"] == "discount_dates"
    assert "di_1" in change["backfill"]["explanation"]
    assert made.events[0]["data"]["object"]["discounts"] == [removed]


def test_a_discount_whose_terms_no_listing_gave_is_a_warning_not_a_silent_zero() -> None:
    invoices = [invoice("new", 1, T0, [line("new", 2000, T0)], reason="subscription_create")]
    invoices[0]["discounts"] = ["di_9"]
    made = synthesize(subscription("new", discounts=["di_9"]), invoices, PRICES, now=NOW)
    assert made.unknown_discounts == ("di_9",)
    assert any("di_9" in w and "terms not available" in w for w in made.warnings)


def failed_invoice(n: int, start: int) -> dict[str, Any]:
    body = invoice("new", n, start, [line("new", 2000, start)])
    body |= {"status": "open", "attempt_count": 2, "attempted": True}
    body["status_transitions"]["paid_at"] = None
    return body


def test_paying_a_later_invoice_ends_the_delinquency_while_the_old_one_stays_open() -> None:
    later_paid = T0 + 2 * MONTH + 3600
    invoices = [
        invoice("new", 1, T0, [line("new", 2000, T0)], reason="subscription_create"),
        failed_invoice(2, T0 + MONTH),
        invoice("new", 3, T0 + 2 * MONTH, [line("new", 2000, T0 + 2 * MONTH)]),
    ]
    made = synthesize(subscription("new"), invoices, PRICES, now=NOW)
    assert kinds(made.events) == [
        ("bf_sub_1_start_date", "customer.subscription.created", T0),
        ("bf_in_2_attempt_count", "invoice.payment_failed", T0 + MONTH + 3600),
        ("bf_in_2_finalized_at", "customer.subscription.updated", T0 + MONTH + 3600),
        ("bf_in_3_paid_at", "invoice.paid", later_paid),
        ("bf_in_3_paid_at_status", "customer.subscription.updated", later_paid),
    ]
    states = {e["id"]: e["data"]["object"] for e in made.events}
    assert states["bf_in_2_finalized_at"]["status"] == "past_due"
    assert states["bf_in_2_finalized_at"]["latest_invoice"] == "in_2"
    assert states["bf_in_3_paid_at_status"]["status"] == "active"


def voided(n: int, start: int) -> dict[str, Any]:
    body = invoice("new", n, start, [line("new", 2000, start)])
    body |= {"status": "void", "attempt_count": 0, "attempted": False}
    body["status_transitions"]["paid_at"] = None
    return body


def test_a_pause_that_ended_is_read_from_its_run_of_voided_renewals() -> None:
    invoices = [
        invoice("new", 1, T0, [line("new", 2000, T0)], reason="subscription_create"),
        voided(2, T0 + MONTH),
        voided(3, T0 + 2 * MONTH),
        invoice("new", 4, T0 + 3 * MONTH, [line("new", 2000, T0 + 3 * MONTH)]),
    ]
    made = synthesize(subscription("new"), invoices, PRICES, now=NOW)
    assert kinds(made.events)[1:] == [
        ("bf_in_2_uncollected", "customer.subscription.updated", T0 + MONTH),
        ("bf_in_4_resumed", "customer.subscription.updated", T0 + 3 * MONTH),
    ]
    paused, resumed = (e["data"]["object"] for e in made.events[1:])
    assert paused["status"] == "active"
    assert paused["pause_collection"] == {"behavior": "void", "resumes_at": None}
    assert resumed["pause_collection"] is None
    assert {e["backfill"]["guess"] for e in made.events[1:]} == {"voided_pause"}
    assert "in_2 .. in_3" in made.events[1]["backfill"]["explanation"]


def test_a_pause_in_force_whose_first_voided_invoice_is_recent_dates_from_the_retention_start() -> (
    None
):
    sub = subscription("new", pause_collection={"behavior": "void", "resumes_at": None})
    recent = NOW - 10 * DAY
    invoices = [
        invoice("new", 1, T0, [line("new", 2000, T0)], reason="subscription_create"),
        voided(2, recent),
    ]
    made = synthesize(sub, invoices, PRICES, now=NOW)
    pause = next(e for e in made.events if e["id"] == "bf_sub_1_pause_collection")
    assert pause["created"] == NOW - EVENT_RETENTION_SECONDS
    assert pause["backfill"]["guess"] == "retention"


def test_a_trial_that_ended_paused_and_resumed_later() -> None:
    trial_end = T0 + 14 * DAY
    resumed = trial_end + 20 * DAY
    invoices = [
        invoice(
            "new", 1, T0, [line("new", 2000, T0, total=0)], reason="subscription_create", attempts=0
        ),
        invoice("new", 2, resumed, [line("new", 2000, resumed)], reason="subscription_update"),
    ]
    made = synthesize(subscription("new", trial_end=trial_end), invoices, PRICES, now=NOW)
    subs = [e for e in made.events if e["type"].startswith("customer.subscription")]
    assert [(e["id"], e["created"], e["data"]["object"]["status"]) for e in subs] == [
        ("bf_sub_1_start_date", T0, "trialing"),
        ("bf_sub_1_trial_end", trial_end, "paused"),
        ("bf_in_2_resumed", resumed, "active"),
    ]
    assert subs[1]["backfill"]["guess"] == "trial_pause"


def test_the_history_ends_in_the_present_state_of_the_object() -> None:
    # Cancelled on Stripe's side in a way no invoice shows: the object is past_due now.
    invoices = [invoice("new", 1, T0, [line("new", 2000, T0)], reason="subscription_create")]
    made = synthesize(subscription("new", status="past_due"), invoices, PRICES, now=NOW)
    last = made.events[-1]
    assert (last["id"], last["created"]) == ("bf_sub_1_present", NOW - EVENT_RETENTION_SECONDS)
    assert last["data"]["object"]["status"] == "past_due"
    assert last["backfill"]["guess"] == "retention"
    # Real events carry the present themselves: the guess gives way to them.
    later = [real("evt_1", "customer.subscription.updated", NOW - DAY, subscription("new"))]
    kept = drop_overlapping(made.events, cutoffs_from_real_events(later))
    assert "bf_sub_1_present" not in {e["id"] for e in kept}


def test_an_invoice_the_rules_refuse_is_left_out_with_its_reason() -> None:
    bad = invoice("new", 2, T0 + MONTH, [line("new", 2000, T0 + MONTH)])
    bad["created"] = "yesterday"
    invoices = [invoice("new", 1, T0, [line("new", 2000, T0)], reason="subscription_create"), bad]
    made = synthesize(subscription("new"), invoices, PRICES, now=NOW)
    assert made.events and any("in_2" in w and "refused" in w for w in made.warnings)
