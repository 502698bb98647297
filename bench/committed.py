"""Benchmark: `mrr committed` over many stored subscription events on PostgreSQL. Prints JSON.

    python bench/committed.py [--subscriptions 20000] [--events 10] [--runs 3]

A fresh database gets `--subscriptions` subscriptions of one flat price with `--events`
stored `customer.subscription.*` events each (a creation, then quantity changes; one in ten
scheduled to cancel at the period's end by its last event), stored as the webhook stores them,
its MRR in the ledger as one entry; and the same at a tenth of the subscriptions. The kept
folds are then built as migration 0017 and `mrr replay` build them (`rebuild_s`), and each run
times `build_committed` (12 months, usd), which reads one kept row per customer
(`seconds`), against the fold of every stored event per request, as before the kept folds
(`whole_fold_s`, the baseline, same figures asserted). `refold_ms` is what the worker adds
to processing one subscription event: one customer's ten events folded again.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.common import database, fresh_databases  # noqa: E402
from ledger.reporting.committed import bases, build_committed  # noqa: E402
from ledger.rules.commitments import committed  # noqa: E402
from ledger.storage import commitments, inbox  # noqa: E402
from ledger.storage.db import make_engine  # noqa: E402
from ledger.storage.schema import ledger_entries  # noqa: E402
from scripts import stripe_objects as so  # noqa: E402

DAY = 86_400
START = int(datetime(2026, 1, 1, tzinfo=UTC).timestamp())
TODAY = datetime(2026, 11, 15, tzinfo=UTC)
BATCH = 2_000


def events(subscriptions: int, per: int) -> list[dict[str, Any]]:
    price = so.price("price_2900", 2_900, "usd", "month")
    found = []
    for n in range(subscriptions):
        sub_id, created = f"sub_{n}", START + n
        for k in range(per):
            at = created + k * 30 * DAY
            item = so.subscription_item(f"si_{n}", sub_id, price, 1 + k, (at, at + 30 * DAY))
            cancels = n % 10 == 0 and k == per - 1
            obj = so.subscription(
                sub_id,
                f"cus_{n}",
                [item],
                status="active",
                currency="usd",
                created=created,
                cancel_at_period_end=cancels,
            )
            kind = "customer.subscription.created" if k == 0 else "customer.subscription.updated"
            found.append(so.event(f"evt_{n}_{k}", kind, at, obj))
    return found


def entries(subscriptions: int, per: int) -> list[dict[str, Any]]:
    """Each subscription's MRR in the ledger: one `new` entry at its last quantity."""
    at = datetime.fromtimestamp(START, UTC)
    return [
        {
            "customer_id": f"cus_{n}",
            "subscription_id": f"sub_{n}",
            "category": "new",
            "currency": "usd",
            "amount": 2_900 * per,
            "effective_at": at,
            "recorded_at": at,
            "source_event_id": f"evt_{n}_0",
            "cause_event_id": f"evt_{n}_0",
            "reversal_of": None,
            "explanation": "{}",
        }
        for n in range(subscriptions)
    ]


def measure(url: str, subscriptions: int, per: int, runs: int) -> dict[str, float]:
    engine = make_engine(url)
    stored = events(subscriptions, per)
    with engine.begin() as conn:
        for start in range(0, len(stored), BATCH):
            chunk = stored[start : start + BATCH]
            inbox.store_events(conn, [(inbox.dumps(e), e) for e in chunk])
        conn.execute(ledger_entries.insert(), entries(subscriptions, per))
    began = time.perf_counter()
    with engine.begin() as conn:
        commitments.rebuild(conn)
    rebuild_s = time.perf_counter() - began
    times, whole, refolds = [], [], []
    for run in range(runs):
        began = time.perf_counter()
        found = build_committed(engine, TODAY, 12, "usd")
        times.append(time.perf_counter() - began)
        began = time.perf_counter()
        with engine.connect() as conn:
            reference = committed(commitments.fold_all(conn), bases(conn, False), "usd", TODAY, 12)
        whole.append(time.perf_counter() - began)
        assert found == reference, "the kept folds give the whole fold's figures"
        began = time.perf_counter()
        with engine.begin() as conn:
            commitments.refold(conn, [f"cus_{run * 7 % subscriptions}"])
        refolds.append(time.perf_counter() - began)
    engine.dispose()
    seconds = statistics.median(times)
    assert found.at_risk, "the scheduled cancellations are found"
    return {
        "events": len(stored),
        "seconds": round(seconds, 3),
        "whole_fold_s": round(statistics.median(whole), 3),
        "speedup": round(statistics.median(whole) / seconds, 1),
        "rebuild_s": round(rebuild_s, 2),
        "refold_ms": round(statistics.median(refolds) * 1000, 1),
        "at_risk": len(found.at_risk),
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--subscriptions", type=int, default=20_000)
    parser.add_argument("--events", type=int, default=10)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    result: dict[str, object] = {"benchmark": "committed"}
    with fresh_databases() as templates:
        for count in (max(1, args.subscriptions // 10), args.subscriptions):
            with database(templates, "postgresql") as url:
                result[str(count)] = measure(url, count, args.events, args.runs)
    small = result[str(max(1, args.subscriptions // 10))]
    large = result[str(args.subscriptions)]
    assert isinstance(small, dict) and isinstance(large, dict)
    result["large_over_small"] = round(large["seconds"] / small["seconds"], 2)
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
