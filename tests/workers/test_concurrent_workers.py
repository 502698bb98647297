"""Per-customer serialization: four worker processes give the ledger that one gives."""

from __future__ import annotations

import os
import random
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from rq import Queue
from sqlalchemy import Engine

from ledger.settings import Settings
from ledger.storage import inbox, store
from ledger.storage.db import make_engine
from tests.ledger.test_order_free import deliver, in_effect, monthly_sums
from tests.support.databases import Templates
from tests.support.pipeline import subscription_event
from workers.queue import enqueue

ROOT = Path(__file__).resolve().parents[2]
DAY = 86_400
T0 = 1_767_225_600


def contended_history(customers: int = 3, changes: int = 25) -> list[dict]:
    """Many events on few customers, so workers collide on the same customer."""
    rng = random.Random(7)
    events = []
    for c in range(customers):
        for s in range(2):
            sub, t = f"sub_{c}_{s}", T0 + rng.randrange(30) * DAY
            events.append(
                subscription_event(
                    f"evt_{sub}_0",
                    "customer.subscription.created",
                    t,
                    customer=f"cus_{c}",
                    sub_id=sub,
                )
            )
            for n in range(1, changes):
                t += rng.randrange(1, 5) * DAY
                events.append(
                    subscription_event(
                        f"evt_{sub}_{n}",
                        "customer.subscription.updated",
                        t,
                        customer=f"cus_{c}",
                        sub_id=sub,
                        amount=rng.choice([1000, 2000, 3000, 5000]),
                    )
                )
    return events


def test_four_worker_processes_match_one(
    settings: Settings, engine: Engine, queue: Queue, templates: Templates
) -> None:
    events = contended_history()
    shuffled = random.Random(3).sample(events, len(events))
    with engine.begin() as conn:
        stored = inbox.store_events(conn, [(inbox.dumps(b), b) for b in shuffled])
        ids = [s.inbox_id for s in stored]
    for inbox_id in ids:
        enqueue(queue, [inbox_id])

    env = dict(
        os.environ,
        DATABASE_URL=settings.database_url,
        REDIS_URL=settings.redis_url or "",
        MRR_QUEUE=settings.queue_name,
        MRR_CHECKPOINT_EVERY="2",  # most replays resume from a checkpoint
    )
    command = [sys.executable, "-m", "scripts.cli", "worker", "--burst"]
    workers = [subprocess.Popen(command, env=env, cwd=ROOT) for _ in range(4)]
    assert [w.wait(timeout=240) for w in workers] == [0, 0, 0, 0]

    with engine.connect() as conn:
        assert inbox.status_counts(conn) == {"processed": len(events)}
    single = make_engine(templates.sqlite_copy())
    deliver(single, sorted(events, key=lambda e: (e["created"], e["id"])))
    assert in_effect(engine) == in_effect(single)
    assert monthly_sums(engine) == monthly_sums(single)


@pytest.mark.parametrize("wanted", [["cus_1"], ["cus_0", "cus_1", "cus_5"]])
def test_a_customer_lock_makes_a_second_writer_wait(db_url: str, wanted: list[str]) -> None:
    """A writer locking a set of customers waits for whoever holds any one of them."""
    first, second = make_engine(db_url), make_engine(db_url)
    order: list[str] = []
    locked = threading.Event()

    def hold() -> None:
        with first.begin() as conn:
            store.lock_customers(conn, ["cus_1"])
            locked.set()
            time.sleep(0.3)
            order.append("first commits")

    holder = threading.Thread(target=hold)
    holder.start()
    assert locked.wait(10)
    with second.begin() as conn:
        store.lock_customers(conn, wanted)
        order.append("second holds the lock")
    holder.join()
    assert order == ["first commits", "second holds the lock"]
    first.dispose()
    second.dispose()
