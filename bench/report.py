"""Benchmark: `GET /api/mrr` for 36 months through gunicorn on loopback. Prints JSON.

    python bench/report.py [--entries 1000000] [--runs 3] [--requests 200] [--workers 2]

A fresh PostgreSQL database (unique name, dropped at the end) is filled by
bench/_ledger_data.py and its monthly totals built once with `projector.replay`. Gunicorn
(`ingest.app:create_app()`, sync workers) then serves it on 127.0.0.1; this process is the
client: one request at a time, a new connection each (sync workers do not keep connections
alive), --requests per run after a warm-up. Reported as medians over runs: p50 and p99 of
`GET /api/mrr?from=2023-01&to=2025-12&currency=usd` (each request first runs `catch_up`,
which finds nothing new, then reads the stored totals), of the same with one new ledger row
appended before each request (catch_up has one row to apply), and the baseline `GET /healthz`
on the same server in the same run (HTTP, Flask and gunicorn without any database work).
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import socket
import statistics
import subprocess
import sys
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import psycopg  # noqa: E402

from bench import _ledger_data as data  # noqa: E402

REPORT = "/api/mrr?from=2023-01&to=2025-12&currency=usd"
TOKEN = "bench-" + uuid.uuid4().hex


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def get(port: int, path: str) -> tuple[float, int, bytes]:
    started = time.perf_counter()
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    conn.request("GET", path, headers={"Authorization": f"Bearer {TOKEN}"})
    response = conn.getresponse()
    body = response.read()
    conn.close()
    return time.perf_counter() - started, response.status, body


def wait_ready(port: int, server: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise SystemExit(f"gunicorn exited with {server.returncode}")
        try:
            if get(port, "/healthz")[1] == 200:
                return
        except OSError:
            time.sleep(0.1)
    raise SystemExit("gunicorn did not answer within 30 s")


def serve(url: str, workers: int, token: str = TOKEN) -> tuple[subprocess.Popen[bytes], int]:
    """gunicorn with the app on a free port, over the database at `url`; the caller stops it."""
    port = free_port()
    env = os.environ | {
        "DATABASE_URL": url,
        "MRR_API_TOKEN": token,
        "MRR_SECRET_KEY": uuid.uuid4().hex,
        "REDIS_URL": "redis://127.0.0.1:6379/0",
        "MRR_QUEUE": f"bench-{uuid.uuid4().hex[:10]}",
    }
    command = [sys.executable, "-m", "gunicorn", "--workers", str(workers)]
    command += ["--bind", f"127.0.0.1:{port}", "--log-level", "warning"]
    server = subprocess.Popen([*command, "ingest.app:create_app()"], cwd=ROOT, env=env)
    return server, port


def percentiles(times: list[float]) -> tuple[float, float]:
    cuts = statistics.quantiles(times, n=100, method="inclusive")
    return statistics.median(times) * 1000, cuts[98] * 1000


def append_one(url: str, _n: int) -> None:
    """One ledger row through the chain trigger, as the workers append them."""
    with psycopg.connect(data.libpq_url(url)) as conn:
        conn.execute(
            "INSERT INTO ledger_entries (customer_id, subscription_id, category, currency, "
            "amount, effective_at, recorded_at, source_event_id, cause_event_id, explanation) "
            "VALUES (%s, %s, 'expansion', 'usd', 100, %s, %s, %s, %s, '{}')",
            (
                "cus_bench_live",
                "sub_bench_live",
                datetime(2025, 12, 15, tzinfo=UTC).replace(tzinfo=None),
                datetime.now(UTC).replace(tzinfo=None),
                f"evt_live_{uuid.uuid4().hex}",
                "evt_live",
            ),
        )


def series(port: int, path: str, count: int, before: Any = None) -> tuple[float, float]:
    times = []
    for n in range(count):
        if before is not None:
            before(n)
        seconds, status, body = get(port, path)
        if status != 200:
            raise SystemExit(f"GET {path} answered {status}: {body[:300]!r}")
        times.append(seconds)
    return percentiles(times)


def in_process_seconds(url: str, runs: int) -> float:
    from ledger.reporting.reports import build_report, report_query
    from ledger.storage.db import make_engine

    engine = make_engine(url)
    query = report_query("2023-01", "2025-12", currency="usd")
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        build_report(engine, query)
        times.append(time.perf_counter() - started)
    engine.dispose()
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--entries", type=int, default=1_000_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--customers", type=int, default=data.CUSTOMERS)
    args = parser.parse_args()
    if min(args.entries, args.runs, args.workers) < 1 or args.requests < 2:
        parser.error("--entries, --runs, --workers must be at least 1, --requests at least 2")
    with data.fresh_database() as url:
        data.load(url, args.entries, customers=args.customers)
        from ledger.reporting import projector
        from ledger.storage.db import make_engine

        engine = make_engine(url)
        with engine.begin() as conn:
            projector.replay(conn)
        engine.dispose()
        server, port = serve(url, args.workers)
        try:
            wait_ready(port, server)
            series(port, REPORT, 10)  # warm-up: connections, imports, caches
            report, appended, health = [], [], []
            for _ in range(args.runs):
                health.append(series(port, "/healthz", args.requests))
                report.append(series(port, REPORT, args.requests))
                appended.append(series(port, REPORT, args.requests, lambda n: append_one(url, n)))
            in_process = in_process_seconds(url, max(args.runs, 3))
        finally:
            server.terminate()
            server.wait(timeout=30)

    def med(found: list[tuple[float, float]], i: int) -> float:
        return round(statistics.median(p[i] for p in found), 2)

    print(
        json.dumps(
            {
                "benchmark": "report",
                "database": "postgresql",
                "entries": args.entries,
                "customers": args.customers,
                "months": 36,
                "runs": args.runs,
                "requests_per_run": args.requests,
                "gunicorn_workers": args.workers,
                "cpus": os.cpu_count(),
                "report_p50_ms_median": med(report, 0),
                "report_p99_ms_median": med(report, 1),
                "report_after_one_append_p50_ms_median": med(appended, 0),
                "report_after_one_append_p99_ms_median": med(appended, 1),
                "baseline_healthz_p50_ms_median": med(health, 0),
                "baseline_healthz_p99_ms_median": med(health, 1),
                "ratio_report_p99_to_healthz_p99": round(med(report, 1) / med(health, 1), 2),
                "build_report_in_process_ms_median": round(in_process * 1000, 2),
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
