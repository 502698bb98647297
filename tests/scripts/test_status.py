"""`mrr status`: what it reads from the database and Redis, and when it asks for a person."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

from click.testing import CliRunner, Result
from rq import Queue, SimpleWorker
from sqlalchemy import Engine, update

from ledger.settings import Settings
from ledger.storage import inbox
from ledger.storage.schema import InboxStatus
from ledger.storage.schema import inbox as inbox_table
from scripts.cli import main
from scripts.status_cli import Status, Thresholds, problems
from tests.support.pipeline import subscription_event
from workers.seen import WorkerSeen

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
EVENT_TIME = 1_767_225_600


def healthy(**changes: object) -> Status:
    status = Status(
        checked_at=NOW,
        inbox={"processed": 10},
        oldest_pending_age_seconds=0.0,
        failed_last_day={},
        projector_lag_entries=0,
        queue_depth=0,
        workers=[WorkerSeen("w1", "idle", NOW - timedelta(seconds=30))],
    )
    for name, value in changes.items():
        setattr(status, name, value)
    return status


def test_a_healthy_status_needs_nobody() -> None:
    assert problems(healthy(), Thresholds()) == []


def test_each_threshold_names_its_problem() -> None:
    stale = WorkerSeen("w1", "idle", NOW - timedelta(seconds=700))
    found = problems(
        healthy(
            oldest_pending_age_seconds=601.0,
            failed_last_day={"bad payload": 2},
            workers=[stale, WorkerSeen("w2", "busy", None)],
            unreadable=["Redis unreachable (ConnectionError)"],
        ),
        Thresholds(min_workers=3),
    )
    assert found == [
        "Redis unreachable (ConnectionError)",
        "the oldest pending row waits for 601s (> 600s)",
        "2 rows failed in the last day (> 0)",
        "2 RQ workers (< 3)",
        "worker w1: last heartbeat 700s ago",
        "worker w2: last heartbeat never",
    ]
    relaxed = Thresholds(max_pending_age=601, max_failed=2, min_workers=2, max_heartbeat_age=700)
    assert problems(healthy(failed_last_day={"x": 2}, workers=[stale] * 2), relaxed) == []


def status(settings: Settings, *args: str, **env: str) -> Result:
    base = {
        "DATABASE_URL": settings.database_url,
        "REDIS_URL": settings.redis_url or "",
        "MRR_QUEUE": settings.queue_name,
    }
    return CliRunner().invoke(main, ["status", *args], env={**base, **env})


def test_status_reads_the_inbox_queue_and_workers(
    settings: Settings, engine: Engine, queue: Queue
) -> None:
    with engine.begin() as conn:
        bodies = [
            subscription_event(f"evt_{i}", "customer.subscription.created", EVENT_TIME)
            for i in range(3)
        ]
        inbox.store_events(conn, [(inbox.dumps(body), body) for body in bodies])
        rows = inbox.list_rows(conn)
        old = datetime.now(UTC) - timedelta(minutes=20)
        conn.execute(
            update(inbox_table).where(inbox_table.c.id == rows[0].id).values(received_at=old)
        )
        reason = "reason: customer jane@example.com unreadable"
        inbox.mark(conn, [rows[1].id], InboxStatus.FAILED, reason)
        inbox.mark(conn, [rows[2].id], InboxStatus.PROCESSED)

    first = status(settings, "--format", "json")
    assert first.exit_code == 1, first.output
    seen = json.loads(first.output)
    assert seen["inbox"] == {"pending": 1, "failed": 1, "processed": 1}
    assert 1190 < seen["oldest_pending_age_seconds"] < 1300
    assert seen["failed_last_day"] == {"reason: customer <email> unreadable": 1}
    assert seen["workers"] == [] and seen["queue_depth"] == 0
    assert seen["last_received_at"] is not None and seen["last_processed_at"] is not None
    assert seen["projector_lag_entries"] == 0
    assert seen["problems"] == [
        f"the oldest pending row waits for {seen['oldest_pending_age_seconds']:.0f}s (> 600s)",
        "1 rows failed in the last day (> 0)",
        "0 RQ workers (< 1)",
    ]

    worker = SimpleWorker([queue], connection=queue.connection)
    worker.register_birth()
    try:
        relaxed = status(settings, "--max-pending-age", "3600", MRR_STATUS_MAX_FAILED="1")
    finally:
        worker.register_death()
    assert relaxed.exit_code == 0, relaxed.output
    assert f"{worker.name}  " in relaxed.output and "all well" in relaxed.output
    assert "jane@example.com" not in relaxed.output


def test_an_unreachable_redis_needs_a_person(settings: Settings) -> None:
    down = status(settings, "--min-workers", "0", REDIS_URL="redis://127.0.0.1:1/0")
    assert down.exit_code == 1
    assert "needs attention:\n  - Redis unreachable (ConnectionError)" in down.output


def test_status_shows_the_last_backfill_and_reconcile_and_a_difference_needs_a_person(
    settings: Settings, engine: Engine
) -> None:
    from ledger.backfill import reconcile_store
    from ledger.backfill import store as backfill_store
    from ledger.backfill.reconcile import Cause, Difference

    base = ["--min-workers", "0"]
    never = status(settings, *base)
    assert "last backfill:      never" in never.output
    assert "last reconcile:     never" in never.output and never.exit_code == 0
    with engine.begin() as conn:
        backfill_store.save_checkpoint(conn, "all", None, 40, completed=True)
        run_id = reconcile_store.start_run(conn, "schedule", datetime.now(UTC))
        found = Difference(
            "sub_9", "cus_9", "eur", "absent", 0, 0, "active", 2500, 0,
            Cause.NO_EVENTS, "no event stored for it",
        )  # fmt: skip
        reconcile_store.finish_run(
            conn, run_id, datetime.now(UTC), subscriptions=12, differences=[found], fixed=0
        )
    shown = status(settings, *base)
    assert shown.exit_code == 1, shown.output
    assert "last backfill:      all, 40 customers, started " in shown.output
    assert (
        "last reconcile:     " in shown.output and "12 subscriptions, 1 differences" in shown.output
    )
    assert "  - the last reconcile found 1 differences" in shown.output
    assert "  - sub_9 (cus_9): ledger absent, Stripe active; no_events" in shown.output
    seen = json.loads(status(settings, *base, "--format", "json").output)
    assert seen["last_backfill"]["scope"] == "all" and seen["last_backfill"]["completed_at"]
    assert seen["last_reconcile"]["details"][0]["stripe_mrr"] == "25.00"
    assert seen["ok"] is False
    allowed = status(settings, *base, MRR_STATUS_MAX_RECONCILE_DIFFERENCES="1")
    assert allowed.exit_code == 0, allowed.output
