"""A customer's next event, as its history grows: from 10 to 20,000 stored events.

For each backend and history size N: a fresh database, customers with N events each (generated
by tests/support/histories.py) stored and processed in batches, as a backfill does; then
`--events` more of their events, each stored as the webhook stores it and processed at once
with `process_inbox_row`, that call timed, the sizes taking turns. Then, for the `--late-size`
customer, an event 30 days older than its newest, timed the same way. `full_replay_*`: the next
events with the checkpoints emptied first, so each replays the whole history (what every event
cost before checkpoints). Prints JSON; `ratio_*` compare the largest history with the smallest.

    python bench/history.py [--sizes 10,100,1000,4000,20000] [--events 100]
"""

from __future__ import annotations

import argparse
import json
import math
import random
import sys
import time
from contextlib import ExitStack
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sqlalchemy import Engine

from bench.common import database, fresh_databases, median
from ledger.processing import process_batch, process_inbox_row
from ledger.processing.replays import CHECKPOINT_EVERY
from ledger.storage import inbox
from ledger.storage import replay_checkpoints as checkpoints
from ledger.storage.db import make_engine
from tests.support.histories import DAY, START, Step, customer_steps, event_body

LATE_DAYS = 30


def bodies(steps: list[Step], prefix: str) -> list[dict[str, Any]]:
    return [event_body(f"evt_{prefix}_{n:06d}", step) for n, step in enumerate(steps)]


def store_history(engine: Engine, history: list[dict[str, Any]]) -> float:
    """Store and process the history as a backfill does; seconds taken."""
    started = time.perf_counter()
    for start in range(0, len(history), 2000):
        chunk = [(inbox.dumps(b), b) for b in history[start : start + 2000]]
        with engine.begin() as conn:
            ids = [s.inbox_id for s in inbox.store_events(conn, chunk, source="bench")]
        outcome = process_batch(engine, ids, max_attempts=1)
        if outcome.counts != {"processed": len(ids)}:
            raise RuntimeError(f"history not processed: {outcome.counts}")
    return time.perf_counter() - started


def arrive(engine: Engine, body: dict[str, Any], *, drop_checkpoints: bool = False) -> float:
    """Store an event, then process it as its webhook's job does; seconds the processing took."""
    with engine.begin() as conn:
        (stored,) = inbox.store_events(conn, [(inbox.dumps(body), body)])
        if drop_checkpoints:
            checkpoints.clear(conn)
    started = time.perf_counter()
    outcome = process_inbox_row(engine, stored.inbox_id, max_attempts=1)
    elapsed = time.perf_counter() - started
    if outcome.status != "processed":
        raise RuntimeError(f"event {body['id']} not processed: {outcome}")
    return elapsed


def late_event(steps: list[Step]) -> dict[str, Any]:
    """An update of a subscription live 30 days before the newest event (else a new one),
    dated then."""
    at = steps[-1].at - LATE_DAYS * DAY
    live: dict[str, Step] = {}
    for step in steps:
        if step.at >= at:
            break
        if step.kind == "deleted":
            live.pop(step.subscription.id, None)
        else:
            live[step.subscription.id] = step
    if not live:
        fresh = replace(steps[-1].subscription, id="sub_late", status="active", ended_at=None)
        return event_body("evt_late_000000", Step("created", at, fresh))
    chosen = live[sorted(live)[0]].subscription
    changed = replace(chosen, quantity=chosen.quantity + 1)
    return event_body("evt_late_000000", Step("updated", at, changed))


def ms(seconds: float) -> float:
    return round(seconds * 1000, 2)


def p99(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[math.ceil(0.99 * len(ordered)) - 1]


@dataclass
class Subject:
    """The customers of one history size, in their own database, and what is left to arrive.

    Small histories are spread over several customers, so that no customer grows by more
    than a tenth while its next events are timed: the 10-event figure is a 10-event customer's.
    """

    size: int
    engine: Engine
    steps: list[list[Step]]  # per customer: the whole history, then the events to arrive
    arriving: list[dict[str, Any]]
    backfill_seconds: float = 0.0
    timed: list[float] = field(default_factory=list)


def subject(url: str, size: int, args: argparse.Namespace) -> Subject:
    count = max(1, min(args.events, math.ceil(args.events * 10 / size)))
    each = math.ceil((args.events + args.full) / count)
    rng = random.Random(size)
    steps = [
        customer_steps(rng, f"cus_h{size}x{k}", size + each, START + rng.randrange(90) * DAY)
        for k in range(count)
    ]
    engine = make_engine(url)
    history = [b for k, s in enumerate(steps) for b in bodies(s[:size], f"h{k}")]
    later = [bodies(s[size:], f"n{k}") for k, s in enumerate(steps)]
    arriving = [later[k][n] for n in range(each) for k in range(count)]
    found = Subject(size, engine, steps, arriving)
    found.backfill_seconds = store_history(engine, history)
    return found


def report(found: Subject, args: argparse.Namespace) -> dict[str, Any]:
    full = [
        arrive(found.engine, body, drop_checkpoints=True)
        for body in found.arriving[args.events : args.events + args.full]
    ]
    with found.engine.connect() as conn:
        kept = checkpoints.count(conn)
    result: dict[str, Any] = {
        "history": found.size,
        "customers": len(found.steps),
        "median_ms": ms(median(found.timed)),
        "p99_ms": ms(p99(found.timed)),
        "max_ms": ms(max(found.timed)),
        "full_replay_median_ms": ms(median(full)) if full else None,
        "history_backfill_seconds": round(found.backfill_seconds, 2),
        "checkpoints_kept": kept,
    }
    if found.size == args.late_size:
        arrived = found.steps[0][: found.size + args.events]  # one customer at this size
        event = late_event(arrived)
        result["late_event"] = {
            "days_late": LATE_DAYS,
            "events_after_it": sum(1 for s in arrived if s.at > event["created"]),
            "ms": ms(arrive(found.engine, event)),
        }
    return result


def measure(backend: str, args: argparse.Namespace) -> dict[str, Any]:
    """Every size's database set up first, then their events timed in turns, so that a
    change in the machine's load falls on every size alike."""
    with fresh_databases() as templates, ExitStack() as stack:
        subjects = []
        for size in args.sizes:
            url = stack.enter_context(database(templates, backend))
            subjects.append(subject(url, size, args))
            stack.callback(subjects[-1].engine.dispose)
        for n in range(args.events):
            for found in subjects:
                found.timed.append(arrive(found.engine, found.arriving[n]))
        sizes = [report(found, args) for found in subjects]
    smallest, largest = sizes[0], sizes[-1]
    return {
        "sizes": sizes,
        "ratio_median_largest_to_smallest": round(largest["median_ms"] / smallest["median_ms"], 2),
        "ratio_p99_largest_to_smallest": round(largest["p99_ms"] / smallest["p99_ms"], 2),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument(
        "--sizes",
        type=lambda s: [int(x) for x in s.split(",")],
        default=[10, 100, 1000, 4000, 20000],
    )
    parser.add_argument("--events", type=int, default=100, help="events timed per size")
    parser.add_argument("--full", type=int, default=3, help="events timed replaying everything")
    parser.add_argument("--late-size", type=int, default=4000)
    parser.add_argument("--backends", default="postgresql,sqlite")
    args = parser.parse_args()
    out: dict[str, Any] = {
        "benchmark": "history",
        "events_timed": args.events,
        "checkpoint_every": CHECKPOINT_EVERY,
    }
    for backend in args.backends.split(","):
        out[backend] = measure(backend, args)
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
