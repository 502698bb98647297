"""The worker side: Redis outages, the sweeper, retries and the failed-row workflow."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import replace
from datetime import timedelta
from pathlib import Path

import pytest
import redis
from click.testing import CliRunner
from rq import Queue
from sqlalchemy import Engine

import ledger.processing.apply
import ledger.processing.replays
from ingest.app import create_app
from ledger.rules.sources import Unit
from ledger.settings import Settings
from ledger.storage import inbox
from scripts.cli import main
from tests.conftest import WEBHOOK_SECRET
from tests.support.ledger import all_entries
from tests.support.pipeline import drain, subscription_event
from tests.support.redis_server import PrivateRedis
from tests.support.stripe_sign import signed
from workers import runtime
from workers.sweeper import requeue_pending

NOW = 1_767_225_600


@pytest.fixture
def private_redis(tmp_path: Path) -> Iterator[PrivateRedis]:
    server = PrivateRedis(tmp_path)
    server.start()
    yield server
    server.stop()


def test_redis_down_the_event_is_kept_and_the_sweeper_queues_it(
    settings: Settings,
    engine: Engine,
    private_redis: PrivateRedis,
    caplog: pytest.LogCaptureFixture,
) -> None:
    own = replace(settings, redis_url=private_redis.url)
    runtime.use(own)
    client = create_app(own).test_client()
    private_redis.stop()

    payload, headers = signed(
        subscription_event("evt_a", "customer.subscription.created", NOW), WEBHOOK_SECRET
    )
    response = client.post("/webhooks/stripe", data=payload, headers=headers)
    assert response.status_code == 200 and response.json["status"] == "pending"
    assert client.application.extensions["mrr"].waker.flush()
    assert "could not wake the workers (ConnectionError)" in caplog.text
    assert client.get("/readyz").status_code == 503

    private_redis.start()
    queue = Queue(own.queue_name, connection=redis.Redis.from_url(private_redis.url))
    assert len(queue) == 0
    assert requeue_pending(engine, queue, older_than=timedelta(0)) == 1
    drain(queue)
    with engine.connect() as conn:
        assert [r.status for r in inbox.list_rows(conn)] == ["processed"]
        assert [e.amount for e in all_entries(conn)] == [10000]


def test_database_down_answers_503_so_stripe_retries(settings: Settings) -> None:
    down = replace(settings, database_url="postgresql+psycopg://postgres@127.0.0.1:1/test")
    client = create_app(down).test_client()
    payload, headers = signed(
        subscription_event("evt_a", "customer.subscription.created", NOW), WEBHOOK_SECRET
    )
    response = client.post("/webhooks/stripe", data=payload, headers=headers)
    assert response.status_code == 503
    assert response.json["error"] == "storage_unavailable"


def test_a_failing_event_is_retried_then_marked_failed_then_retried_by_hand(
    settings: Settings, engine: Engine, queue: Queue, monkeypatch: pytest.MonkeyPatch
) -> None:
    with engine.begin() as conn:
        body = subscription_event("evt_a", "customer.subscription.created", NOW)
        (stored,) = inbox.store_events(conn, [(inbox.dumps(body), body)])

    def broken(*args: object, **kwargs: object) -> None:
        raise RuntimeError("rules bug")

    monkeypatch.setattr(ledger.processing.replays, "replay_customer", broken)
    for attempt in range(1, settings.max_attempts + 1):
        try:
            outcome = ledger.processing.process_inbox_row(
                engine, stored.inbox_id, max_attempts=settings.max_attempts
            )
        except RuntimeError:
            assert attempt < settings.max_attempts
        else:
            assert attempt == settings.max_attempts and outcome.status == "failed"
    with engine.connect() as conn:
        row = inbox.get(conn, stored.inbox_id)
    assert row is not None and row.status == "failed" and "rules bug" in (row.error or "")

    runner = CliRunner()
    env = {
        "DATABASE_URL": settings.database_url,
        "REDIS_URL": settings.redis_url or "",
        "MRR_QUEUE": settings.queue_name,
    }
    listed = runner.invoke(main, ["inbox", "--status", "failed"], env=env)
    assert listed.exit_code == 0 and "evt_a" in listed.output and "rules bug" in listed.output

    monkeypatch.undo()
    retried = runner.invoke(main, ["inbox", "retry", "--all-failed"], env=env)
    assert retried.exit_code == 0, retried.output
    assert "queued 1" in retried.output
    drain(queue)
    with engine.connect() as conn:
        assert [r.status for r in inbox.list_rows(conn)] == ["processed"]
        assert [e.amount for e in all_entries(conn)] == [10000]


def test_cli_argument_errors_name_the_problem(settings: Settings) -> None:
    runner = CliRunner()
    env = {"DATABASE_URL": settings.database_url}
    both = runner.invoke(main, ["inbox", "retry", "3", "--all-failed"], env=env)
    assert both.exit_code == 2 and "one of the two" in both.output
    bad_status = runner.invoke(main, ["inbox", "--status", "lost"], env=env)
    assert bad_status.exit_code == 2 and "'lost' is not one of" in bad_status.output
    bad_env = runner.invoke(main, ["inbox"], env={**env, "MRR_MAX_ATTEMPTS": "lots"})
    assert bad_env.exit_code == 2 and "MRR_MAX_ATTEMPTS must be a whole number" in bad_env.output


def test_a_row_left_pending_after_its_entries_were_written_appends_nothing_twice(
    settings: Settings, engine: Engine
) -> None:
    """As if a worker died after appending but before marking the row: the ledger is
    derived again from the stored events, so reprocessing finds nothing missing."""
    body = subscription_event("evt_a", "customer.subscription.created", NOW)
    with engine.begin() as conn:
        (stored,) = inbox.store_events(conn, [(inbox.dumps(body), body)])
    with engine.begin() as conn:
        ledger.processing.apply.recompute_customer(conn, Unit("cus_1", "", False), "evt_a")
    with engine.connect() as conn:
        assert inbox.get(conn, stored.inbox_id).status == "pending"  # type: ignore[union-attr]
    outcome = ledger.processing.process_inbox_row(engine, stored.inbox_id, max_attempts=1)
    assert (outcome.status, outcome.appended, outcome.reversed) == ("processed", 0, 0)
    with engine.connect() as conn:
        assert [e.amount for e in all_entries(conn)] == [10000]


def test_a_worker_started_while_redis_is_down_waits_for_it(
    settings: Settings, engine: Engine, tmp_path: Path
) -> None:
    server = PrivateRedis(tmp_path)  # not started yet
    with engine.begin() as conn:
        body = subscription_event("evt_a", "customer.subscription.created", NOW)
        inbox.store_events(conn, [(inbox.dumps(body), body)])
    env = {
        **os.environ,
        "DATABASE_URL": settings.database_url,
        "REDIS_URL": server.url,
        "MRR_QUEUE": settings.queue_name,
        "MRR_SWEEP_EVERY": "0.2",
        "MRR_SWEEP_AFTER": "0.1",
    }
    log = tmp_path / "worker.log"
    with log.open("wb") as stderr:
        worker = subprocess.Popen(
            [sys.executable, "-m", "scripts.cli", "worker"],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=stderr,
        )
    try:
        # Wait for the worker to have met the missing Redis, however slowly it starts.
        deadline = time.monotonic() + 60
        while b"Redis unavailable at start" not in log.read_bytes():
            assert worker.poll() is None, "the worker exited while Redis was down"
            assert time.monotonic() < deadline, "the worker never said Redis was unavailable"
            time.sleep(0.2)
        time.sleep(1)
        assert worker.poll() is None, "the worker exited while Redis was down"
        server.start()
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            with engine.connect() as conn:
                if [r.status for r in inbox.list_rows(conn)] == ["processed"]:
                    break
            time.sleep(0.2)
        with engine.connect() as conn:
            assert [r.status for r in inbox.list_rows(conn)] == ["processed"]
        assert worker.poll() is None
    finally:
        worker.terminate()
        worker.wait(timeout=30)
        server.stop()
