"""Benchmark: the backfill against the fake Stripe API. Prints JSON.

    python bench/backfill.py [--customers 500] [--years 3] [--runs 3] [--concurrency 4]

Reports, as medians over the runs: objects (customers + subscriptions + invoices) per second,
Stripe requests per customer, and the ratio of the backfill's time to a baseline measured in
the same run: the same history delivered as webhook events (inbox + one replay per customer).
Each run (backfill and baseline alike) uses a fresh SQLite file.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import responses

from ledger.backfill import store as backfill_store
from ledger.settings import Settings
from ledger.storage import inbox, migrate
from ledger.storage.db import make_engine
from scripts.backfill import Backfill, Options, make_source
from tests.support.fake_stripe import GOOD_KEY, FakeStripe, make_account

BASE = "https://stripe.bench.test"


def fresh_database(workdir: Path, n: int) -> str:
    url = f"sqlite:///{workdir / f'bench_{n}.sqlite3'}"
    migrate.upgrade(url)
    return url


def one_backfill(url: str, account: Any, concurrency: int) -> dict[str, float]:
    settings = Settings(url, None, (), GOOD_KEY, BASE, None)
    engine = make_engine(url)
    with responses.RequestsMock(assert_all_requests_are_fired=False) as rsps:
        FakeStripe(account).install(rsps, BASE)
        source = make_source(settings, rps=0)
        run = Backfill(
            settings,
            source,
            Options(now=account.now, concurrency=concurrency),
            engine=engine,
            out=lambda _: None,
            progress_stream=open("/dev/null", "w"),  # noqa: SIM115
        )
        started = time.perf_counter()
        summary = run.run()
        seconds = time.perf_counter() - started
    engine.dispose()
    objects = summary.customers + summary.subscriptions + summary.invoices
    return {
        "seconds": seconds,
        "objects_per_second": objects / seconds,
        "requests_per_customer": summary.requests / summary.customers,
        "entries_appended": summary.appended,
    }


def one_webhook_replay(url: str, account: Any) -> float:
    engine = make_engine(url)
    by_customer: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for event in account.events:
        by_customer[event["data"]["object"]["customer"]].append(event)
    started = time.perf_counter()
    for customer_id, events in by_customer.items():
        with engine.begin() as conn:
            for event in events:
                inbox.store_events(conn, [(inbox.dumps(event), event)])
        backfill_store.process_customer(engine, customer_id, max_attempts=1)
    seconds = time.perf_counter() - started
    engine.dispose()
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--customers", type=int, default=500)
    parser.add_argument("--years", type=int, default=3)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--concurrency", type=int, default=4)
    args = parser.parse_args()
    account = make_account(args.customers, years=args.years, seed=41)
    runs: list[dict[str, float]] = []
    baselines: list[float] = []
    with tempfile.TemporaryDirectory() as tmp:
        for n in range(args.runs):
            runs.append(one_backfill(fresh_database(Path(tmp), 2 * n), account, args.concurrency))
            baselines.append(one_webhook_replay(fresh_database(Path(tmp), 2 * n + 1), account))

    def median(key: str) -> float:
        return statistics.median(r[key] for r in runs)

    print(
        json.dumps(
            {
                "benchmark": "backfill",
                "database": "sqlite",
                "customers": args.customers,
                "subscriptions": len(account.subscriptions),
                "invoices": len(account.invoices),
                "webhook_events_equivalent": len(account.events),
                "runs": args.runs,
                "backfill_seconds_median": round(median("seconds"), 3),
                "objects_per_second_median": round(median("objects_per_second"), 1),
                "requests_per_customer_median": round(median("requests_per_customer"), 3),
                "baseline_webhook_replay_seconds_median": round(statistics.median(baselines), 3),
                "ratio_backfill_to_webhook_replay": round(
                    median("seconds") / statistics.median(baselines), 3
                ),
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
