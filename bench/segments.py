"""Benchmark: MRR by plan and the cohort table over a big ledger, against the plain report in the
same run. Prints JSON.

    python bench/segments.py [--entries 1000000] [--small 100000] [--customers 20000]
                             [--runs 3] [--requests 100] [--workers 2]

For each size (--small, then --entries), a fresh PostgreSQL database (unique name, dropped at
the end) is filled by bench/_ledger_data.py (20,000 customers over 36 months), its monthly
totals built by `projector.replay` and its per-customer months by `customer_months.replay`
(timed). The generated ledger has no Stripe events to replay, so each customer's segment rows
are made from its own months in SQL, as the processing would keep them for a customer with one
subscription of one item: a plan (one of 7 prices), a product (one of 3) and an interval
(monthly, or yearly for one customer in four); `segment_month_totals` and
`cohort_month_changes` are their sums.

Then, on the --entries database, gunicorn (`sync` workers) serves the API on loopback and this
process asks, one request at a time, a new connection each, alternating: the plain report
`GET /api/mrr?from=2023-01&to=2025-12&currency=usd`, the same `&by=plan`, and the cohort table
`GET /api/cohorts?from=2023-01&to=2025-12&currency=usd`. Reported as medians over runs: p50 and
p99 of each, and the by-plan p99 over the plain p99. In this process, on each size: the time of
the plain report, the by-plan report and the cohort table (medians of 5 x --runs, taking turns),
and apart from those the peak of Python memory (tracemalloc) while computing the last two, which
should not grow with the ledger.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
import tracemalloc
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import psycopg  # noqa: E402

from bench import _ledger_data as data  # noqa: E402
from bench.report import TOKEN, get, percentiles, serve, wait_ready  # noqa: E402

RANGE = "from=2023-01&to=2025-12&currency=usd"
PATHS = {
    "plain_report": f"/api/mrr?{RANGE}",
    "by_plan": f"/api/mrr?{RANGE}&by=plan",
    "cohorts": f"/api/cohorts?{RANGE}",
}
# Each customer's segment rows from its own months: one plan, product and interval.
SEGMENT_ROWS = """
INSERT INTO customer_months (livemode, account, dimension, segment, customer_id, currency, month,
  next_month, new,
  reactivation, expansion, contraction, churn, delinquent, recovered, delinquent_churn,
  delinquent_change, active_mrr, delinquent_mrr, customers_change, customers_lost, first_paid)
SELECT m.livemode, m.account, d.dimension,
  CASE d.dimension
    WHEN 'plan' THEN 'price_' || (abs(hashtext(m.customer_id)) % 7)
    WHEN 'product' THEN 'prod_' || (abs(hashtext(m.customer_id)) % 3)
    ELSE CASE WHEN abs(hashtext(m.customer_id)) % 4 = 0 THEN 'year' ELSE 'month' END
  END,
  m.customer_id, m.currency, m.month, m.next_month, m.new, m.reactivation, m.expansion,
  m.contraction, m.churn, m.delinquent, m.recovered, m.delinquent_churn, m.delinquent_change,
  m.active_mrr, m.delinquent_mrr, m.customers_change, m.customers_lost, m.first_paid
FROM customer_months m CROSS JOIN (VALUES ('plan'), ('product'), ('interval')) AS d(dimension)
WHERE m.dimension = 'all'
"""
SEGMENT_COHORTS = """
INSERT INTO cohort_month_changes
SELECT livemode, account, dimension, segment, currency, cohort, month, sum(joined),
  sum(retained), sum(late), sum(mrr)
FROM (
  SELECT livemode, account, dimension, segment, currency, first_paid AS cohort, month,
    (month = first_paid)::int AS joined, (active_mrr > 0)::int AS retained,
    (active_mrr <= 0 AND delinquent_mrr > 0)::int AS late, active_mrr AS mrr
  FROM customer_months WHERE dimension <> 'all' AND first_paid IS NOT NULL
  UNION ALL
  SELECT livemode, account, dimension, segment, currency, first_paid, next_month, 0,
    -(active_mrr > 0)::int,
    -(active_mrr <= 0 AND delinquent_mrr > 0)::int, -active_mrr
  FROM customer_months
  WHERE dimension <> 'all' AND first_paid IS NOT NULL AND next_month IS NOT NULL
) AS changes
GROUP BY livemode, account, dimension, segment, currency, cohort, month
"""
SEGMENT_TOTALS = """
INSERT INTO segment_month_totals
SELECT livemode, account, dimension, segment, currency, month, sum(new), sum(reactivation),
  sum(expansion),
  sum(contraction), sum(churn), sum(delinquent), sum(recovered), sum(delinquent_churn),
  sum(delinquent_change), sum(customers_change), sum(customers_lost)
FROM customer_months WHERE dimension <> 'all'
GROUP BY livemode, account, dimension, segment, currency, month
"""


def prepare(url: str, entries: int, customers: int) -> dict[str, float]:
    """Load the ledger and build every projection; seconds each step took."""
    from ledger.reporting import customer_months, projector
    from ledger.storage.db import make_engine

    took: dict[str, float] = {}
    started = time.monotonic()
    data.load(url, entries, customers=customers)
    took["load_seconds"] = time.monotonic() - started
    engine = make_engine(url)
    try:
        started = time.monotonic()
        with engine.begin() as conn:
            projector.replay(conn)
        took["totals_replay_seconds"] = time.monotonic() - started
        started = time.monotonic()
        with engine.begin() as conn:
            customer_months.replay(conn)
        took["customer_months_replay_seconds"] = time.monotonic() - started
    finally:
        engine.dispose()
    started = time.monotonic()
    with psycopg.connect(data.libpq_url(url)) as conn:
        conn.execute(SEGMENT_ROWS)
        conn.execute(SEGMENT_TOTALS)
        conn.execute(SEGMENT_COHORTS)
    with psycopg.connect(data.libpq_url(url), autocommit=True) as conn:
        conn.execute("VACUUM ANALYZE customer_months")
        conn.execute("VACUUM ANALYZE segment_month_totals")
        conn.execute("VACUUM ANALYZE cohort_month_changes")
        rows = conn.execute("SELECT count(*) FROM customer_months").fetchone()
    took["segment_rows_seconds"] = time.monotonic() - started
    took["customer_months_rows"] = float(rows[0] if rows else 0)
    return {k: round(v, 2) for k, v in took.items()}


def in_process(url: str, runs: int) -> dict[str, Any]:
    """Times of the plain report, the by-plan report and the cohort table computed here, and
    the peak of Python memory while computing the last two."""
    from ledger.reporting.cohorts import build_cohorts
    from ledger.reporting.reports import build_report, report_query
    from ledger.reporting.segments import build_segments, segment_query
    from ledger.storage.db import make_engine

    engine = make_engine(url)
    query = report_query("2023-01", "2025-12", currency="usd")
    times: dict[str, list[float]] = {"plain_report": [], "by_plan": [], "cohorts": []}
    peak = 0
    work = {
        "plain_report": lambda: build_report(engine, query),
        "by_plan": lambda: build_segments(engine, segment_query(query, "plan", [])),
        "cohorts": lambda: build_cohorts(engine, "2023-01", "2025-12", currency="usd"),
    }
    try:
        for _ in range(runs * 5 + 1):  # the first is a warm-up
            for name, run in work.items():
                started = time.perf_counter()
                run()
                times[name].append((time.perf_counter() - started) * 1000)
        # Memory apart: tracing every allocation slows Python several times over.
        for name in ("by_plan", "cohorts"):
            tracemalloc.start()
            work[name]()
            peak = max(peak, tracemalloc.get_traced_memory()[1])
            tracemalloc.stop()
    finally:
        engine.dispose()
    return {
        **{f"{k}_ms_median": round(statistics.median(v[1:]), 1) for k, v in times.items()},
        "python_peak_kib": round(peak / 1024),
    }


def through_api(url: str, runs: int, requests: int, workers: int) -> dict[str, Any]:
    server, port = serve(url, workers, TOKEN)
    measured: dict[str, list[tuple[float, float]]] = {name: [] for name in PATHS}
    try:
        wait_ready(port, server)
        for path in PATHS.values():
            for _ in range(3):  # warm-up: connections, imports, catch-ups
                _check(get(port, path), path)
        for _ in range(runs):
            times: dict[str, list[float]] = {name: [] for name in PATHS}
            for _ in range(requests):
                for name, path in PATHS.items():
                    seconds, *_ = _check(get(port, path), path)
                    times[name].append(seconds)
            for name, found in times.items():
                measured[name].append(percentiles(found))
    finally:
        server.terminate()
        server.wait(timeout=30)

    def med(name: str, i: int) -> float:
        return round(statistics.median(p[i] for p in measured[name]), 2)

    return {
        "pages": {
            name: {
                "path": PATHS[name],
                "p50_ms_median": med(name, 0),
                "p99_ms_median": med(name, 1),
                "p99_ms_per_run": [round(p[1], 2) for p in measured[name]],
            }
            for name in PATHS
        },
        "ratio_by_plan_p99_to_plain_p99": round(med("by_plan", 1) / med("plain_report", 1), 2),
    }


def _check(found: tuple[float, int, bytes], path: str) -> tuple[float, int, bytes]:
    if found[1] != 200:
        raise SystemExit(f"GET {path} answered {found[1]}: {found[2][:300]!r}")
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--entries", type=int, default=1_000_000)
    parser.add_argument("--small", type=int, default=100_000)
    parser.add_argument("--customers", type=int, default=data.CUSTOMERS)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--requests", type=int, default=100)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    if min(args.entries, args.small, args.customers, args.runs, args.workers) < 1:
        parser.error("--entries, --small, --customers, --runs and --workers must be at least 1")
    if args.requests < 2:
        parser.error("--requests must be at least 2")
    sizes: dict[str, Any] = {}
    api: dict[str, Any] = {}
    for label, entries in (("small", args.small), ("large", args.entries)):
        with data.fresh_database() as url:
            built = prepare(url, entries, args.customers)
            sizes[label] = {"entries": entries, **built, **in_process(url, args.runs)}
            if label == "large":
                api = through_api(url, args.runs, args.requests, args.workers)
    large, small = sizes["large"], sizes["small"]
    print(
        json.dumps(
            {
                "benchmark": "segments",
                "database": "postgresql",
                "customers": args.customers,
                "months": data.MONTHS,
                "runs": args.runs,
                "requests_per_run": args.requests,
                "gunicorn_workers": args.workers,
                "cpus": os.cpu_count(),
                "load_average_1m_at_end": round(os.getloadavg()[0], 2),
                "targets": {
                    "ratio_by_plan_p99_to_plain_p99": 3,
                    "by_plan_api_p99_ms": 300,
                    "cohorts_ms": 1000,
                },
                "sizes": sizes,
                "api": api,
                "ratio_in_process_by_plan_to_plain": round(
                    large["by_plan_ms_median"] / large["plain_report_ms_median"], 2
                ),
                "ratio_python_peak_large_to_small": round(
                    large["python_peak_kib"] / max(small["python_peak_kib"], 1), 2
                ),
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
