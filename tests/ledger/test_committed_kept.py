"""The kept committed MRR (one fold per customer, kept by the worker) against the fold of every
stored object, its reference, on SQLite and PostgreSQL: events arriving in any order, a price
id resolved from another customer's snapshot before and after it is seen, rows that fail."""

from __future__ import annotations

import random
from datetime import UTC, datetime
from typing import Any

import pytest
from sqlalchemy import Engine, select, update

from ledger.processing import process_batch
from ledger.reporting.committed import bases, build_committed
from ledger.rules.commitments import CommittedMrr, committed
from ledger.rules.version import rules_version
from ledger.storage import commitments, inbox
from ledger.storage.schema import InboxStatus, committed_customers
from ledger.storage.schema import inbox as inbox_table
from scripts import stripe_objects as so

DAY = 86_400
START = int(datetime(2026, 1, 5, tzinfo=UTC).timestamp())
TODAY = datetime(2026, 3, 10, tzinfo=UTC)
MAR_END = int(datetime(2026, 3, 31, 12, tzinfo=UTC).timestamp())
MAY_10 = int(datetime(2026, 5, 10, tzinfo=UTC).timestamp())
BASIC = so.price("price_basic", 5000, "usd", "month")
PRO = so.price("price_pro", 10000, "usd", "month")
Body = dict[str, Any]


def sub(sub_id: str, customer: str, price: Body, *, status: str = "active", **extra: Any) -> Body:
    item = so.subscription_item("si_" + sub_id, sub_id, price, 1, (START, MAR_END))
    obj = so.subscription(sub_id, customer, [item], status=status, currency="usd", created=START)
    obj.update(extra)
    return obj


def schedule(created: int, *, quantity: int = 1) -> Body:
    """cus_b's schedule: Basic until 10 May, then Pro, named by id only."""
    return {
        "id": "sub_sched_b",
        "object": "subscription_schedule",
        "customer": "cus_b",
        "subscription": "sub_b",
        "status": "active",
        "end_behavior": "release",
        "current_phase": {"start_date": START, "end_date": MAY_10},
        "phases": [
            {"items": [{"price": "price_basic", "quantity": 1}], "start_date": START},
            {"items": [{"price": "price_pro", "quantity": quantity}], "start_date": MAY_10},
        ],
        "created": created,
    }


def history() -> list[Body]:
    """Pro is first seen on A's snapshot of day 20: B's schedule of day 10 names it before
    (never seen, noted, no step), its update of day 30 after; C's pending update of day 40;
    D's trial on Pro from day 25."""
    pending = {"subscription_items": [{"id": "si_sub_c", "price": "price_pro", "quantity": 2}]}
    return [
        so.event("evt_a1", "customer.subscription.created", START, sub("sub_a", "cus_a", BASIC)),
        so.event("evt_b1", "customer.subscription.created", START, sub("sub_b", "cus_b", BASIC)),
        so.event("evt_c1", "customer.subscription.created", START, sub("sub_c", "cus_c", BASIC)),
        so.event(
            "evt_b2", "subscription_schedule.created", START + 10 * DAY, schedule(START + 10 * DAY)
        ),
        so.event(
            "evt_a2",
            "customer.subscription.updated",
            START + 20 * DAY,
            sub("sub_a", "cus_a", PRO, cancel_at_period_end=True),
        ),
        so.event(
            "evt_b3",
            "subscription_schedule.updated",
            START + 30 * DAY,
            schedule(START + 10 * DAY, quantity=2),
        ),
        so.event(
            "evt_c2",
            "customer.subscription.updated",
            START + 40 * DAY,
            sub("sub_c", "cus_c", BASIC, pending_update=pending),
        ),
        so.event(
            "evt_d1",
            "customer.subscription.created",
            START + 25 * DAY,
            sub("sub_d", "cus_d", PRO, status="trialing", trial_end=MAY_10),
        ),
    ]


def arrive(engine: Engine, bodies: list[Body]) -> None:
    """Store and process these events, as the webhook and the worker do."""
    with engine.begin() as conn:
        ids = [s.inbox_id for s in inbox.store_events(conn, [(inbox.dumps(b), b) for b in bodies])]
    process_batch(engine, ids, max_attempts=1)


def reference(engine: Engine) -> CommittedMrr:
    with engine.connect() as conn:
        return committed(commitments.fold_all(conn), bases(conn, False), "usd", TODAY, 6)


def kept(engine: Engine) -> CommittedMrr:
    return build_committed(engine, TODAY, 6, "usd")


def traced(found: CommittedMrr) -> list[tuple[str, str, int, str]]:
    return [(a.subscription_id, a.kind, a.amount, a.event_id) for a in found.adjustments]


def test_in_order_the_kept_fold_is_the_whole_fold(engine: Engine) -> None:
    arrive(engine, history())
    found = kept(engine)
    assert found == reference(engine)
    assert traced(found) == [
        ("sub_c", "pending_update", 15000, "evt_c2"),  # 2 x Pro for 1 x Basic, due now
        ("sub_a", "cancel_at_period_end", -10000, "evt_a2"),
        ("sub_b", "schedule_phase", 15000, "evt_b3"),  # Pro resolved once seen (day 20)
    ]
    assert found.notes == ["evt_b2: price price_pro of sub_sched_b phase 2 was never seen"]
    assert [(h.subscription_id, h.event_id) for h in found.potential] == [("sub_d", "evt_d1")]


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_events_arriving_in_any_order_give_the_whole_folds_answer_after_each(
    engine: Engine, seed: int
) -> None:
    bodies = history()
    random.Random(seed).shuffle(bodies)
    for body in bodies:
        arrive(engine, [body])
        assert kept(engine) == reference(engine), body["id"]
    assert traced(kept(engine)) == traced(reference(engine))
    assert len(traced(kept(engine))) == 3


def test_a_price_sighting_that_arrives_late_refolds_the_customers_that_named_it(
    engine: Engine,
) -> None:
    bodies = {b["id"]: b for b in history()}
    arrive(engine, [b for key, b in bodies.items() if key not in ("evt_a2", "evt_d1")])
    before = kept(engine)
    assert [a.subscription_id for a in before.adjustments] == []  # Pro never seen: no steps
    arrive(engine, [bodies["evt_a2"]])  # cus_a's event: cus_b and cus_c are folded again
    after = kept(engine)
    assert after == reference(engine)
    assert {a.subscription_id for a in after.adjustments} == {"sub_a", "sub_b", "sub_c"}


def test_a_row_failed_after_it_was_folded_leaves_the_kept_fold(engine: Engine) -> None:
    arrive(engine, history())
    with engine.begin() as conn:  # what the worker does when it fails a stored row
        inbox.mark_event_failed(conn, "evt_a2", "failed for the test")
        commitments.refold(conn, ["cus_a"])
    found = kept(engine)
    assert found == reference(engine)
    # Pro is now first seen on D's trial (day 25): B's schedule is announced by its update
    # still, A cancels nothing.
    assert traced(found) == [
        ("sub_c", "pending_update", 15000, "evt_c2"),
        ("sub_b", "schedule_phase", 15000, "evt_b3"),
    ]
    with engine.begin() as conn:
        inbox.mark_event_failed(conn, "evt_d1", "failed for the test")
        commitments.refold(conn, ["cus_d"])
    found = kept(engine)
    assert found == reference(engine)
    assert traced(found) == []  # Pro never seen: B's schedule and C's update are unpriced
    assert "evt_b3: price price_pro of sub_sched_b phase 2 was never seen" in found.notes


def test_an_unreadable_row_failed_by_the_worker_is_left_out(engine: Engine) -> None:
    arrive(engine, history())
    bad = sub("sub_a", "cus_a", BASIC)
    bad["items"]["data"][0]["quantity"] = -5
    good = sub("sub_a", "cus_a", PRO, cancel_at_period_end=True, metadata={"x": "1"})
    arrive(
        engine,
        [
            so.event("evt_a3", "customer.subscription.updated", START + 45 * DAY, bad),
            so.event("evt_a4", "customer.subscription.updated", START + 46 * DAY, good),
        ],
    )
    with engine.connect() as conn:
        status = conn.execute(
            select(inbox_table.c.status).where(inbox_table.c.event_id == "evt_a3")
        ).scalar_one()
    assert status == InboxStatus.FAILED
    found = kept(engine)
    assert found == reference(engine)
    assert not any("evt_a3" in note for note in found.notes)


def test_rebuild_gives_what_the_worker_kept_continuing_each_fold(engine: Engine) -> None:
    in_order = sorted(history(), key=lambda b: (b["created"], b["id"]))
    for body in in_order:  # each customer's fold continues from its kept state
        arrive(engine, [body])
    with engine.connect() as conn:
        rows = sorted(conn.execute(select(committed_customers)).all())
    with engine.begin() as conn:
        assert commitments.rebuild(conn) == 4
    with engine.connect() as conn:
        assert sorted(conn.execute(select(committed_customers)).all()) == rows
    assert kept(engine) == reference(engine)


@pytest.mark.parametrize("state", ["rules-of-last-year\n{}", "not a state", None])
def test_a_saved_fold_of_other_rules_or_unreadable_is_folded_again_from_the_start(
    engine: Engine, state: str | None
) -> None:
    bodies = sorted(history(), key=lambda b: (b["created"], b["id"]))
    arrive(engine, bodies[:-1])
    with engine.begin() as conn:
        conn.execute(update(committed_customers).values(state=state))
    arrive(engine, bodies[-1:])  # cus_c's pending update, after its kept fold
    assert kept(engine) == reference(engine)
    with engine.connect() as conn:
        saved = conn.execute(
            select(committed_customers.c.state).where(committed_customers.c.customer_id == "cus_c")
        ).scalar_one()
    assert saved.startswith(rules_version() + "\n")
