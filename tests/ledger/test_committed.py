"""Committed MRR on hand-built schedules, from stored events through the real processing, on
SQLite and PostgreSQL: each adjustment traced to its subscription and announcing event."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Engine

from ledger.processing import process_batch
from ledger.reporting.committed import build_committed
from ledger.rules.months import Month
from ledger.storage import inbox
from scripts import stripe_objects as so

DAY = 86_400
START = int(datetime(2026, 1, 5, tzinfo=UTC).timestamp())
TODAY = datetime(2026, 3, 10, tzinfo=UTC)
MAR_END = int(datetime(2026, 3, 31, 12, tzinfo=UTC).timestamp())
MAY_10 = int(datetime(2026, 5, 10, tzinfo=UTC).timestamp())
JUN_1 = int(datetime(2026, 6, 1, tzinfo=UTC).timestamp())
BASIC = so.price("price_basic", 5000, "usd", "month")
PRO = so.price("price_pro", 10000, "usd", "month")
Body = dict[str, Any]


def sub(sub_id: str, customer: str, price: Body, *, status: str = "active", **extra: Any) -> Body:
    item = so.subscription_item("si_" + sub_id, sub_id, price, 1, (START, MAR_END))
    obj = so.subscription(sub_id, customer, [item], status=status, currency="usd", created=START)
    obj.update(extra)
    return obj


def store_and_process(engine: Engine, bodies: list[Body]) -> None:
    with engine.begin() as conn:
        ids = [s.inbox_id for s in inbox.store_events(conn, [(inbox.dumps(b), b) for b in bodies])]
    process_batch(engine, ids, max_attempts=2)


def schedule(created: int) -> Body:
    phase = {"items": [{"price": "price_pro", "quantity": 1}], "end_date": None}
    return {
        "id": "sub_sched_1",
        "object": "subscription_schedule",
        "customer": "cus_b",
        "subscription": "sub_b",
        "status": "active",
        "end_behavior": "release",
        "current_phase": {"start_date": START, "end_date": MAY_10},
        "phases": [
            {
                "items": [{"price": "price_basic", "quantity": 1}],
                "start_date": START,
                "end_date": MAY_10,
            },
            {**phase, "start_date": MAY_10},
        ],
        "created": created,
    }


def history() -> list[Body]:
    at = START
    return [
        # A: Pro, then told to cancel at the period's end (announced on 1 Feb, repeated on 20 Feb).
        so.event("evt_a1", "customer.subscription.created", at, sub("sub_a", "cus_a", PRO)),
        so.event(
            "evt_a2",
            "customer.subscription.updated",
            at + 27 * DAY,
            sub("sub_a", "cus_a", PRO, cancel_at_period_end=True),
        ),
        so.event(
            "evt_a3",
            "customer.subscription.updated",
            at + 46 * DAY,
            sub("sub_a", "cus_a", PRO, cancel_at_period_end=True, metadata={"x": "1"}),
        ),
        # B: Basic, a schedule moves it to Pro on 10 May.
        so.event("evt_b1", "customer.subscription.created", at, sub("sub_b", "cus_b", BASIC)),
        so.event("evt_b2", "subscription_schedule.created", at + 30 * DAY, schedule(at + 30 * DAY)),
        # C: Basic, paused on 1 March until 1 June.
        so.event("evt_c1", "customer.subscription.created", at, sub("sub_c", "cus_c", BASIC)),
        so.event(
            "evt_c2",
            "customer.subscription.updated",
            at + 55 * DAY,
            sub(
                "sub_c", "cus_c", BASIC, pause_collection={"behavior": "void", "resumes_at": JUN_1}
            ),
        ),
        # D: a trial on Pro: potential MRR, never committed.
        so.event(
            "evt_d1",
            "customer.subscription.created",
            at,
            sub("sub_d", "cus_d", PRO, status="trialing", trial_end=MAY_10),
        ),
    ]


def test_committed_mrr_traces_each_adjustment_to_its_event(engine: Engine) -> None:
    store_and_process(engine, history())
    found = build_committed(engine, TODAY, 6, "usd")
    assert found.mrr_today == 10000 + 5000  # A and B; C is paused, D is trialing
    traced = [
        (a.subscription_id, a.kind, str(Month.of(a.effective_at)), a.amount, a.event_id)
        for a in found.adjustments
    ]
    assert traced == [
        ("sub_a", "cancel_at_period_end", "2026-03", -10000, "evt_a2"),
        ("sub_b", "schedule_phase", "2026-05", 5000, "evt_b2"),
        ("sub_c", "resume", "2026-06", 5000, "evt_c2"),
    ]
    assert [(str(m.month), m.committed_mrr) for m in found.months] == [
        ("2026-03", 5000),
        ("2026-04", 5000),
        ("2026-05", 10000),
        ("2026-06", 15000),
        ("2026-07", 15000),
        ("2026-08", 15000),
    ]
    assert [(h.subscription_id, h.kind, h.amount, h.event_id) for h in found.at_risk] == [
        ("sub_a", "scheduled_to_cancel", 10000, "evt_a2")
    ]
    assert [(h.subscription_id, h.amount, h.event_id) for h in found.potential] == [
        ("sub_d", 10000, "evt_d1")
    ]


def test_a_cancellation_withdrawn_commits_nothing_and_delinquent_mrr_is_at_risk(
    engine: Engine,
) -> None:
    bodies = [
        *history()[:3],
        so.event(
            "evt_a4", "customer.subscription.updated", START + 50 * DAY, sub("sub_a", "cus_a", PRO)
        ),
        so.event("evt_e1", "customer.subscription.created", START, sub("sub_e", "cus_e", BASIC)),
        so.event(
            "evt_e2",
            "customer.subscription.updated",
            START + 31 * DAY,
            sub("sub_e", "cus_e", BASIC, status="past_due"),
        ),
    ]
    store_and_process(engine, bodies)
    found = build_committed(engine, TODAY, 3, "usd")
    assert found.adjustments == []
    assert [m.committed_mrr for m in found.months] == [10000, 10000, 10000]
    assert [(h.subscription_id, h.kind, h.amount) for h in found.at_risk] == [
        ("sub_e", "delinquent", 5000)
    ]
