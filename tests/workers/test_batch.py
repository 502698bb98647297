"""Batches of inbox rows: same ledger as one row at a time, crash-safe, one bad row isolated."""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Iterator
from contextlib import ExitStack
from datetime import timedelta
from typing import Any

import pytest
from click.testing import CliRunner
from rq import Queue
from sqlalchemy import Engine, select

import ledger.processing.replays
from ledger.processing import process_batch, process_inbox_row
from ledger.rules.entries import EntryKey
from ledger.settings import Settings
from ledger.storage import inbox, store
from ledger.storage.db import make_engine
from ledger.storage.schema import InboxStatus
from ledger.storage.schema import inbox as inbox_table
from scripts.cli import main
from tests.support.databases import Templates
from tests.support.histories import histories
from tests.support.ledger import all_entries
from tests.support.pipeline import drain
from workers.queue import enqueue, enqueue_batches
from workers.worker import SweepTiming

MAX = 4


def fill(engine: Engine, bodies: list[dict[str, Any]]) -> list[int]:
    with engine.begin() as conn:
        stored = inbox.store_events(conn, [(inbox.dumps(b), b) for b in bodies])
    return [s.inbox_id for s in stored]


def shuffled(bodies: list[dict[str, Any]], seed: int = 3) -> list[dict[str, Any]]:
    out = list(bodies)
    random.Random(seed).shuffle(out)
    return out


def ledger_keys(engine: Engine) -> Counter[EntryKey]:
    with engine.connect() as conn:
        return Counter(e.key() for e in store.in_effect(conn))


def statuses(engine: Engine) -> Counter[str]:
    with engine.connect() as conn:
        return Counter(str(s) for s in conn.execute(select(inbox_table.c.status)).scalars())


def reference_ledger(engine: Engine, bodies: list[dict[str, Any]]) -> Counter[EntryKey]:
    for inbox_id in fill(engine, bodies):
        process_inbox_row(engine, inbox_id, max_attempts=MAX)
    return ledger_keys(engine)


@pytest.fixture
def reference_engine(db_url: str, templates: Templates) -> Iterator[Engine]:
    """A second fresh database of the same kind, for the one-row-at-a-time reference."""
    with ExitStack() as stack:
        if db_url.startswith("sqlite"):
            url = templates.sqlite_copy()
        else:
            url = stack.enter_context(templates.pg_copy())
        found = make_engine(url)
        stack.callback(found.dispose)
        yield found


def test_a_batch_gives_the_ledger_of_one_row_at_a_time(
    engine: Engine, reference_engine: Engine
) -> None:
    bodies = histories(300, 25, seed=5)
    ids = fill(engine, shuffled(bodies))
    first = process_batch(engine, ids[:120], max_attempts=MAX)
    rest = process_batch(engine, ids[120:], max_attempts=MAX)
    assert first.counts == {"processed": 120} and rest.counts == {"processed": 180}
    assert first.retry == rest.retry == []
    assert statuses(engine) == {"processed": 300}
    assert ledger_keys(engine) == reference_ledger(reference_engine, bodies)


def test_processing_a_batch_again_appends_nothing(engine: Engine) -> None:
    ids = fill(engine, histories(60, 6, seed=9))
    process_batch(engine, ids, max_attempts=MAX)
    before = ledger_keys(engine)
    with engine.begin() as conn:
        inbox.mark(conn, ids, InboxStatus.PENDING)
    again = process_batch(engine, ids, max_attempts=MAX)
    assert again.appended == again.reversed == 0
    assert ledger_keys(engine) == before


class Crash(BaseException):
    """Stands in for the process dying mid-transaction (not an Exception: nothing catches it)."""


def test_a_crash_mid_batch_leaves_every_row_pending_and_no_entries(
    engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    ids = fill(engine, histories(80, 8, seed=2))

    def crash(*args: object) -> None:
        raise Crash

    monkeypatch.setattr(inbox, "mark", crash)
    with pytest.raises(Crash):
        process_batch(engine, ids, max_attempts=MAX)
    assert statuses(engine) == {"pending": 80}
    with engine.connect() as conn:
        assert all_entries(conn) == []
    monkeypatch.undo()
    assert process_batch(engine, ids, max_attempts=MAX).counts == {"processed": 80}
    assert sum(ledger_keys(engine).values()) > 0


def test_one_failing_customer_does_not_hold_back_the_batch(
    engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    bodies = histories(40, 4, seed=4)
    ids = fill(engine, bodies)
    bad = bodies[0]["data"]["object"]["customer"]
    owners = [b["data"]["object"]["customer"] for b in bodies]
    bad_ids = {i for i, owner in zip(ids, owners, strict=True) if owner == bad}
    real = ledger.processing.replays.replay_customer

    def flaky(customer_id: str, *args: Any) -> Any:
        if customer_id == bad:
            raise RuntimeError("rules bug")
        return real(customer_id, *args)

    monkeypatch.setattr(ledger.processing.replays, "replay_customer", flaky)
    outcome = process_batch(engine, ids, max_attempts=MAX)
    assert outcome.counts == {"processed": 40 - len(bad_ids)}
    assert sorted(outcome.retry) == sorted(bad_ids)
    for _ in range(MAX - 1):
        outcome = process_batch(engine, sorted(bad_ids), max_attempts=MAX)
    assert outcome.counts == {"failed": len(bad_ids)} and outcome.retry == []
    with engine.connect() as conn:
        failed = inbox.list_rows(conn, status=InboxStatus.FAILED)
    assert {r.id for r in failed} == bad_ids
    assert all(r.attempts == MAX and "rules bug" in (r.error or "") for r in failed)


def test_ignored_and_malformed_rows_in_a_batch(engine: Engine) -> None:
    ids = fill(engine, histories(10, 2, seed=1))
    other = {
        "id": "evt_customer",
        "object": "event",
        "type": "customer.created",
        "created": 1_700_000_000,
        "data": {"object": {"id": "cus_x", "object": "customer"}},
    }
    ids += fill(engine, [other])
    outcome = process_batch(engine, ids, max_attempts=MAX)
    assert outcome.counts == {"processed": 10, "ignored": 1}


def test_a_job_claims_the_other_pending_rows_of_its_customers(engine: Engine) -> None:
    bodies = histories(30, 3, seed=6)
    ids = fill(engine, bodies)
    owner = {i: b["data"]["object"]["customer"] for i, b in zip(ids, bodies, strict=True)}
    outcome = process_batch(engine, [ids[0]], max_attempts=MAX, claim_customer_rows=100)
    same = [i for i in ids if owner[i] == owner[ids[0]]]
    assert outcome.counts == {"processed": len(same)}
    with engine.connect() as conn:
        pending = {r.id for r in inbox.list_rows(conn, status=InboxStatus.PENDING)}
    assert pending == set(ids) - set(same)
    topped_up = process_batch(engine, [], max_attempts=MAX, claim_extra=5)
    assert topped_up.counts == {"processed": 5}


def test_rows_another_worker_holds_are_left_to_it(engine: Engine) -> None:
    if engine.dialect.name != "postgresql":
        pytest.skip("SQLite serializes whole transactions; there is no row to skip")
    ids = fill(engine, histories(10, 2, seed=8))
    with engine.begin() as holder:
        assert len(inbox.claim_pending(holder, ids[:4])) == 4
        outcome = process_batch(engine, ids, max_attempts=MAX)
        assert outcome.counts == {"processed": 6}
    assert statuses(engine) == {"processed": 6, "pending": 4}


def test_per_event_jobs_and_batch_jobs_drain_the_inbox(
    settings: Settings, engine: Engine, queue: Queue
) -> None:
    ids = fill(engine, shuffled(histories(120, 12, seed=12)))
    for inbox_id in ids[:60]:
        enqueue(queue, [inbox_id])
    enqueue_batches(queue, ids[60:], size=25)
    drain(queue)
    assert statuses(engine) == {"processed": 120}


def test_the_sweeper_pages_through_every_pending_row(
    settings: Settings, engine: Engine, queue: Queue, monkeypatch: pytest.MonkeyPatch
) -> None:
    import workers.sweeper

    ids = fill(engine, histories(50, 5, seed=13))
    monkeypatch.setattr(workers.sweeper, "PAGE", 7)
    assert workers.sweeper.requeue_pending(engine, queue, older_than=timedelta(0)) == 50
    assert sum(len(job.args[0]) for job in queue.jobs) == len(ids)


def test_sweep_timing_comes_from_the_environment(settings: Settings) -> None:
    timing = SweepTiming.from_env({"MRR_SWEEP_EVERY": "0.5", "MRR_SWEEP_AFTER": "2"})
    assert timing == SweepTiming(every=0.5, older_than=timedelta(seconds=2))
    assert SweepTiming.from_env({}) == SweepTiming()
    runner = CliRunner()
    env = {"DATABASE_URL": settings.database_url, "MRR_SWEEP_AFTER": "soon"}
    bad = runner.invoke(main, ["worker", "--burst"], env=env)
    assert bad.exit_code == 2 and "MRR_SWEEP_AFTER must be a number of seconds" in bad.output
    zero = runner.invoke(main, ["worker", "--burst"], env={**env, "MRR_SWEEP_AFTER": "0"})
    assert zero.exit_code == 2 and "positive" in zero.output


def test_one_waiting_job_serves_every_row_stored_before_it_starts(
    settings: Settings, engine: Engine, queue: Queue
) -> None:
    ids = fill(engine, histories(20, 4, seed=14))
    assert enqueue(queue, [ids[0]]) is not None
    assert all(enqueue(queue, [i]) is None for i in ids[1:])
    assert len(queue) == 1
    drain(queue)
    assert statuses(engine) == {"processed": 20}
    more = fill(engine, histories(5, 1, seed=15, prefix="evt_more"))
    assert enqueue(queue, more[:1]) is not None  # the job cleared the flag when it started
    drain(queue)
    assert statuses(engine) == {"processed": 25}
