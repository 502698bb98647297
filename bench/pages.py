"""Benchmark: every page of the accountants' workspace through gunicorn on loopback. Prints JSON.

    python bench/pages.py [--entries 1000000] [--customers 20000] [--runs 3] [--requests 100]

A fresh PostgreSQL database (unique name, dropped at the end) is filled by
bench/_ledger_data.py, plus one customer with --heavy entries (default 500) spread over the 36
months, and its monthly totals and per-customer months built once (`projector.replay`,
`customer_months.replay`, as `mrr replay` does). A viewer account is added;
gunicorn (`ingest.app:create_app()`, sync workers) serves the app on 127.0.0.1 and this process
signs in once (CSRF token and session cookie, as a browser does), then requests each page one
at a time, a new connection each, --requests per page and run after a warm-up. Reported per
page as medians over runs: p50 and p99, and the ratio of its p99 to the p99 of `GET /healthz`
measured on the same server in the same run. The pages:

- the overview as it first opens (no query: the last 12 months to today, every currency);
- overview and bridge over the generated months (2025), in USD;
- entries: the drill-down into the bridge cell with the most entries (month, category and
  currency filters), its second page, and the whole ledger unfiltered;
- entry: one entry's proof page;
- customers at the last month end (sorted by active MRR, first page), and searched by id;
- customer: the customer with --heavy entries;
- data quality (the inbox is empty: the queries run, nothing is listed).
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import re
import statistics
import sys
import time
import uuid
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import psycopg  # noqa: E402

from bench import _ledger_data as data  # noqa: E402
from bench.report import percentiles, serve, wait_ready  # noqa: E402

EMAIL = "bench@example.com"
PASSWORD = "bench-" + uuid.uuid4().hex
HEAVY = "cus_bench_heavy"
_CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


class Client:
    """One signed-in browser: the session cookie, sent on every request."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.cookie = ""

    def request(self, method: str, path: str, body: str | None = None) -> tuple[float, int, bytes]:
        headers = {"Cookie": self.cookie} if self.cookie else {}
        if body is not None:
            headers["Content-Type"] = "application/x-www-form-urlencoded"
        started = time.perf_counter()
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=60)
        conn.request(method, path, body=body, headers=headers)
        response = conn.getresponse()
        found = response.read()
        conn.close()
        cookie = response.getheader("Set-Cookie")
        if cookie:
            self.cookie = cookie.split(";", 1)[0]
        return time.perf_counter() - started, response.status, found

    def sign_in(self) -> None:
        _, _, form = self.request("GET", "/sign-in")
        token = _CSRF.search(form.decode())
        if token is None:
            raise SystemExit("the sign-in form has no CSRF token")
        body = f"csrf_token={token.group(1)}&email={EMAIL}&password={PASSWORD}&next="
        _, status, answer = self.request("POST", "/sign-in", body)
        if status != 302:
            raise SystemExit(f"sign-in answered {status}: {answer[:300]!r}")

    def series(self, path: str, count: int) -> tuple[float, float]:
        times = []
        for _ in range(count):
            seconds, status, body = self.request("GET", path)
            if status != 200:
                raise SystemExit(f"GET {path} answered {status}: {body[:300]!r}")
            times.append(seconds)
        return percentiles(times)


def heavy_rows(first_id: int, count: int) -> Iterator[data.Row]:
    """`count` rows of one customer: a `new`, then expansions and contractions, over 36 months."""
    step = (data._month_start(data.MONTHS) - data.FIRST) / count
    for n in range(count):
        at = (data.FIRST + step * n + timedelta(seconds=1)).replace(tzinfo=None)
        category, amount = (
            ("new", 4_900) if n == 0 else (("expansion", 900), ("contraction", -900))[n % 2]
        )
        event = f"evt_heavy_{n:014d}"
        yield (
            first_id + n,
            HEAVY,
            "sub_bench_heavy",
            category,
            "usd",
            amount,
            at,
            at + timedelta(hours=1),
            event,
            event,
            None,
            f'{{"rule": "{category}", "mrr_change": {amount}}}',
        )


def largest_cell(url: str) -> tuple[str, str, str, int]:
    """The (month, category, currency) with the most entries, and how many."""
    with psycopg.connect(data.libpq_url(url)) as conn:
        found = conn.execute(
            "SELECT to_char(effective_at, 'YYYY-MM') AS m, category, currency, count(*) "
            "FROM ledger_entries GROUP BY 1, 2, 3 ORDER BY 4 DESC, 1, 2, 3 LIMIT 1"
        ).fetchone()
    assert found is not None
    return str(found[0]), str(found[1]), str(found[2]), int(found[3])


def prepare(url: str, entries: int, customers: int, heavy: int) -> None:
    data.load(url, entries, customers=customers, extra=heavy_rows(entries + 1, heavy))
    from ingest.passwords import hash_password
    from ledger.reporting import customer_months, projector
    from ledger.storage import users
    from ledger.storage.db import make_engine

    engine = make_engine(url)
    with engine.begin() as conn:
        projector.replay(conn)
        customer_months.replay(conn)
        users.add(conn, EMAIL, hash_password(PASSWORD))
    engine.dispose()
    with psycopg.connect(data.libpq_url(url), autocommit=True) as conn:
        conn.execute("VACUUM ANALYZE customer_months")


def pages(url: str, entries: int) -> dict[str, str]:
    month, category, currency, _ = largest_cell(url)
    cell = f"/entries?month={month}&category={category}&currency={currency}"
    with psycopg.connect(data.libpq_url(url)) as conn:
        found = conn.execute(
            "SELECT id FROM ledger_entries WHERE to_char(effective_at, 'YYYY-MM') = %s "
            "AND category = %s AND currency = %s ORDER BY id OFFSET 50 LIMIT 1",
            (month, category, currency),
        ).fetchone()
    second = f"{cell}&after={found[0]}" if found else cell
    return {
        "overview_default": "/overview",
        "overview": "/overview?from=2025-01&to=2025-12&currency=usd",
        "bridge": "/bridge?from=2025-07&to=2025-12&currency=usd",
        "entries_largest_cell": cell,
        "entries_largest_cell_page_2": second,
        "entries_unfiltered": "/entries",
        "entry": f"/entries/{entries // 2}",
        "customers": "/customers?month=2025-12",
        "customers_search": "/customers?month=2025-12&q=cus_00000000000123",
        "customer_heavy": f"/customers/{HEAVY}",
        "data_quality": "/data-quality",
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--entries", type=int, default=1_000_000)
    parser.add_argument("--customers", type=int, default=data.CUSTOMERS)
    parser.add_argument("--heavy", type=int, default=500)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--requests", type=int, default=100)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    if min(args.entries, args.customers, args.runs, args.workers, args.heavy) < 1:
        parser.error("--entries, --customers, --heavy, --runs, --workers must be at least 1")
    if args.requests < 2:
        parser.error("--requests must be at least 2")
    started = time.monotonic()
    with data.fresh_database() as url:
        prepare(url, args.entries, args.customers, args.heavy)
        loaded = time.monotonic() - started
        paths = pages(url, args.entries)
        server, port = serve(url, args.workers)
        try:
            wait_ready(port, server)
            client = Client(port)
            client.sign_in()
            for path in paths.values():  # warm-up: connections, imports, catch-ups
                client.series(path, 2)
            measured: dict[str, list[tuple[float, float]]] = {"healthz": []}
            measured |= {name: [] for name in paths}
            for _ in range(args.runs):
                measured["healthz"].append(client.series("/healthz", args.requests))
                for name, path in paths.items():
                    measured[name].append(client.series(path, args.requests))
        finally:
            server.terminate()
            server.wait(timeout=30)

    def med(name: str, i: int) -> float:
        return round(statistics.median(p[i] for p in measured[name]), 2)

    health_p99 = med("healthz", 1)
    figures = {
        name: {
            "path": paths.get(name, "/healthz"),
            "p50_ms_median": med(name, 0),
            "p99_ms_median": med(name, 1),
            "p99_ms_per_run": [round(p[1], 2) for p in measured[name]],
            "ratio_p99_to_healthz_p99": round(med(name, 1) / health_p99, 2),
        }
        for name in measured
    }
    print(
        json.dumps(
            {
                "benchmark": "pages",
                "database": "postgresql",
                "entries": args.entries + args.heavy,
                "customers": args.customers + 1,
                "heavy_customer_entries": args.heavy,
                "months": data.MONTHS,
                "runs": args.runs,
                "requests_per_run": args.requests,
                "gunicorn_workers": args.workers,
                "cpus": os.cpu_count(),
                "load_average_1m_at_end": round(os.getloadavg()[0], 2),
                "load_seconds": round(loaded, 1),
                "target_p99_ms": 150,
                "slowest_page": max(paths, key=lambda name: med(name, 1)),
                "pages": figures,
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
