"""Loading the demo (`mrr up` on an empty ledger): seconds from nothing to the final month.

For each backend and run: a fresh migrated database, then `scripts.demo.load_demo` as `mrr up`
calls it: generate the events, sign and POST each to the webhook (Flask, in this process),
process the inbox rows through the workers' batch path, read the final month's report.
Baseline, same run: generating and serializing the events alone. Prints JSON with medians.

    python bench/demo.py [--runs 3] [--backends sqlite,postgresql]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import redis
from rq import Queue

from bench.common import database, fresh_databases, median, unique
from ledger.rules.months import Month
from ledger.settings import Settings
from scripts.demo import load_demo
from scripts.demo_data import demo_events

REDIS_URL = "redis://127.0.0.1:6379/0"
FINAL = Month.parse("2026-06")


def generating_seconds() -> float:
    began = time.monotonic()
    for body in demo_events(FINAL):
        json.dumps(body, separators=(",", ":"))
    return time.monotonic() - began


def one_run(url: str) -> dict[str, Any]:
    settings = Settings(
        database_url=url,
        redis_url=REDIS_URL,
        webhook_secrets=(),
        stripe_api_key=None,
        stripe_api_base=None,
        api_token=None,
        queue_name=unique("bench-demo"),
    )
    try:
        loaded = load_demo(settings, FINAL)
    finally:
        Queue(settings.queue_name, connection=redis.Redis.from_url(REDIS_URL)).delete(
            delete_jobs=True
        )
    usd = loaded.closing["usd"]
    return {
        "events": loaded.events,
        "customers": loaded.customers,
        "entries": loaded.entries,
        "seconds": loaded.seconds,
        "deliver_seconds": loaded.deliver_seconds,
        "process_seconds": loaded.process_seconds,
        "usd_closing_mrr": usd.closing_mrr,
        "usd_customers": usd.customers,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--backends", default="sqlite,postgresql")
    args = parser.parse_args()
    out: dict[str, Any] = {"benchmark": "demo", "final_month": str(FINAL), "runs": args.runs}
    with fresh_databases() as templates:
        for backend in args.backends.split(","):
            runs, baseline = [], []
            for _ in range(args.runs):
                baseline.append(generating_seconds())
                with database(templates, backend) as url:
                    runs.append(one_run(url))
            out[backend] = {
                **{k: runs[-1][k] for k in ("events", "customers", "entries")},
                "usd_closing_mrr": runs[-1]["usd_closing_mrr"],
                "usd_customers": runs[-1]["usd_customers"],
                "seconds_median": median([r["seconds"] for r in runs]),
                "seconds_per_run": [round(r["seconds"], 2) for r in runs],
                "deliver_seconds_median": median([r["deliver_seconds"] for r in runs]),
                "process_seconds_median": median([r["process_seconds"] for r in runs]),
                "baseline_generate_seconds_median": median(baseline),
            }
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
