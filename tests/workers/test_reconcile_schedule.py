"""The worker's reconcile schedule: due when the last run is older than MRR_RECONCILE_EVERY,
queued once across workers, run by an RQ worker and recorded."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest
import responses
from rq import Queue
from sqlalchemy import Engine

from ledger import processing
from ledger.backfill import reconcile_store
from ledger.settings import ConfigError, Settings
from ledger.storage import inbox
from tests.support.fake_stripe import DAY, GOOD_KEY, FakeStripe, make_account
from tests.support.pipeline import drain, subscription_event
from workers import runtime
from workers.reconcile_schedule import claim_key, parse_every, queue_if_due

BASE = "https://stripe.fake.test"


def test_durations_read_as_seconds() -> None:
    assert [parse_every(t) for t in ("24h", "90m", "1d", "3600s", "45", "1.5h")] == [
        86_400, 5_400, 86_400, 3_600, 45, 5_400,
    ]  # fmt: skip
    for bad in ("", "0h", "-1h", "daily", "24 hours", "1w"):
        with pytest.raises(ConfigError, match="MRR_RECONCILE_EVERY"):
            parse_every(bad)


@pytest.fixture
def stripe_api() -> Iterator[FakeStripe]:
    fake = FakeStripe(make_account(6, seed=11))
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        fake.install(mock, BASE)
        yield fake


def test_a_due_reconcile_is_queued_once_run_by_a_worker_and_recorded(
    settings: Settings, engine: Engine, queue: Queue, stripe_api: FakeStripe
) -> None:
    runtime.use(replace(settings, stripe_api_key=GOOD_KEY, stripe_api_base=BASE))
    account = stripe_api.account
    ghost = subscription_event(
        "evt_ghost", "customer.subscription.created", account.now - DAY,
        customer="cus_ghost", sub_id="sub_ghost",
    )  # fmt: skip
    with engine.begin() as conn:
        stored = inbox.store_events(conn, [(inbox.dumps(e), e) for e in [*account.events, ghost]])
    processing.process_batch(engine, [s.inbox_id for s in stored], max_attempts=1)
    queue.connection.delete(claim_key(queue.name))
    now = datetime.now(UTC)
    every = 3600.0
    try:
        assert queue_if_due(engine, queue, every, now) is not None  # never ran: due
        assert queue_if_due(engine, queue, every, now) is None  # another worker: already queued
        drain(queue)
        with engine.connect() as conn:
            run = reconcile_store.last_finished(conn)
        assert run is not None and run.trigger == "schedule" and run.error is None
        assert run.differences == 1 and run.details[0]["subscription_id"] == "sub_ghost"
        assert run.details[0]["cause"] == "unknown_subscription"
        queue.connection.delete(claim_key(queue.name))
        assert queue_if_due(engine, queue, every, now + timedelta(minutes=59)) is None
        assert queue_if_due(engine, queue, every, now + timedelta(minutes=61)) is not None
    finally:
        queue.connection.delete(claim_key(queue.name))


def test_a_failed_scheduled_run_records_why(
    settings: Settings, engine: Engine, queue: Queue, stripe_api: FakeStripe
) -> None:
    runtime.use(replace(settings, stripe_api_key="sk_test_revoked", stripe_api_base=BASE))
    queue.connection.delete(claim_key(queue.name))
    try:
        assert queue_if_due(engine, queue, 60, datetime.now(UTC)) is not None
        drain(queue)
    finally:
        queue.connection.delete(claim_key(queue.name))
    with engine.connect() as conn:
        run = reconcile_store.last_finished(conn)
        assert reconcile_store.last_finished(conn, succeeded=True) is None
    assert run is not None and run.error is not None and "AuthenticationError" in run.error
    assert run.problems() == [f"the last reconcile failed: {run.error}"]
    assert "sk_test_revoked" not in run.error


def test_the_worker_refuses_a_schedule_it_cannot_read(settings: Settings) -> None:
    from click.testing import CliRunner

    from scripts.cli import main

    env = {"DATABASE_URL": settings.database_url, "MRR_RECONCILE_EVERY": "every day"}
    refused = CliRunner().invoke(main, ["worker", "--burst"], env=env)
    assert refused.exit_code == 2 and "MRR_RECONCILE_EVERY" in refused.output
