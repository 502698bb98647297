"""Worker throughput: a filled inbox drained into the ledger by one worker process.

For each backend and run: a fresh database, an inbox filled with N generated events, then
`mrr worker --burst` in this process (the sweeper queues the backlog in batches, a SimpleWorker
drains it). Baseline, same run and database: N plain rows of a ledger-like table inserted in
batches of the same size. Prints JSON with medians over the runs.

    python bench/worker.py [--events 20000] [--customers 2000] [--runs 3]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from rq import SimpleWorker
from sqlalchemy import (
    BigInteger,
    Column,
    Engine,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    func,
    insert,
    select,
)

from bench.common import database, fresh_databases, median
from ledger.settings import Settings
from ledger.storage import inbox
from ledger.storage.db import UTCDateTime, make_engine
from ledger.storage.schema import InboxStatus
from ledger.storage.schema import inbox as inbox_table
from tests.support.histories import histories, serialized
from workers import runtime
from workers.jobs import BATCH_SIZE
from workers.queue import connect, enqueue, make_queue
from workers.worker import run

REDIS_URL = "redis://127.0.0.1:6379/0"

plain = Table(
    "bench_plain_rows",
    MetaData(),
    Column("id", BigInteger().with_variant(Integer(), "sqlite"), primary_key=True),
    Column("customer_id", String(255), nullable=False, index=True),
    Column("subscription_id", String(255), nullable=False),
    Column("category", String(32), nullable=False),
    Column("currency", String(3), nullable=False),
    Column("amount", BigInteger, nullable=False),
    Column("effective_at", UTCDateTime(), nullable=False),
    Column("source_event_id", String(255), nullable=False),
    Column("explanation", Text, nullable=False),
)


def baseline_rows_per_s(engine: Engine, count: int, batch: int) -> float:
    plain.create(engine)
    now = datetime.now(UTC)
    rows = [
        {
            "customer_id": f"cus_{i % 2000}",
            "subscription_id": f"sub_{i}",
            "category": "new",
            "currency": "usd",
            "amount": 1000 + i,
            "effective_at": now,
            "source_event_id": f"evt_{i}",
            "explanation": '{"mrr_after": 1000, "mrr_before": 0}',
        }
        for i in range(count)
    ]
    started = time.perf_counter()
    for start in range(0, count, batch):
        with engine.begin() as conn:
            conn.execute(insert(plain), rows[start : start + batch])
    return count / (time.perf_counter() - started)


def fill(engine: Engine, raws: list[str]) -> None:
    for start in range(0, len(raws), 2000):
        with engine.begin() as conn:
            events = [(raw, json.loads(raw)) for raw in raws[start : start + 2000]]
            inbox.store_events(conn, events, source="bench")


def drain(url: str, mode: str) -> float:
    settings = Settings(
        database_url=url,
        redis_url=REDIS_URL,
        webhook_secrets=(),
        stripe_api_key=None,
        stripe_api_base=None,
        api_token=None,
        queue_name=f"bench-{uuid.uuid4().hex[:10]}",
    )
    runtime.use(settings)
    queue = make_queue(settings, connect(settings))
    try:
        started = time.perf_counter()
        if mode == "backlog":
            run(settings, burst=True)
        else:
            with runtime.engine().connect() as conn:
                ids = [int(i) for i in conn.execute(select(inbox_table.c.id)).scalars()]
            for inbox_id in ids:
                enqueue(queue, [inbox_id])
            started = time.perf_counter()
            SimpleWorker([queue], connection=queue.connection).work(
                burst=True, logging_level="WARNING"
            )
        elapsed = time.perf_counter() - started
        with runtime.engine().connect() as conn:
            pending = conn.execute(
                select(func.count()).where(inbox_table.c.status == InboxStatus.PENDING)
            ).scalar_one()
        if pending:
            raise RuntimeError(f"{pending} inbox rows still pending after the drain")
        return elapsed
    finally:
        runtime.engine().dispose()
        queue.delete(delete_jobs=True)


def measure(backend: str, args: argparse.Namespace, raws: list[str]) -> dict[str, Any]:
    events: list[float] = []
    baseline: list[float] = []
    with fresh_databases() as templates:
        for _ in range(args.runs):
            with database(templates, backend) as url:
                engine = make_engine(url)
                fill(engine, raws)
                events.append(len(raws) / drain(url, args.mode))
                baseline.append(baseline_rows_per_s(engine, len(raws), BATCH_SIZE))
                engine.dispose()
    result = {
        "events_per_s": round(median(events)),
        "baseline_rows_per_s": round(median(baseline)),
        "ratio": round(median(events) / median(baseline), 3),
        "runs_events_per_s": [round(x) for x in events],
    }
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--events", type=int, default=20_000)
    parser.add_argument("--customers", type=int, default=2_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--backends", default="postgresql,sqlite")
    parser.add_argument(
        "--mode",
        choices=["backlog", "per-event-jobs"],
        default="backlog",
        help="backlog: the sweeper queues the filled inbox in batches; per-event-jobs: one "
        "RQ job per event, as the webhook queues them",
    )
    args = parser.parse_args()
    raws = list(serialized(histories(args.events, args.customers)))
    out: dict[str, Any] = {
        "events": args.events,
        "customers": args.customers,
        "runs": args.runs,
        "mode": args.mode,
        "batch_size": BATCH_SIZE,
    }
    for backend in args.backends.split(","):
        out[backend] = measure(backend, args, raws)
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
