"""Benchmark: `mrr replay` (ledger.projector.replay) against one SQL GROUP BY. Prints JSON.

    python bench/projection.py [--entries 1000000] [--runs 3] [--memory-factor 4]
                               [--customers 20000] [--no-fold]

For each size (N entries, then N x memory-factor), on a fresh PostgreSQL database (created with a
unique name, dropped at the end) filled by bench/_ledger_data.py:
- baseline: `SELECT currency, month, category, sum(amount) ... GROUP BY` over ledger_entries,
  fetched by psycopg (median of --runs);
- replay: `projector.replay` in a fresh Python process per run (what `mrr replay` does: rebuild
  every stored total and commit), timed inside that process; its peak RSS (VmHWM) and the
  RSS it had before replaying (interpreter, SQLAlchemy, one connection). Medians over runs;
  the ratio replay / GROUP BY uses medians from the same size and the same run of the script;
- a check that the stored movement totals equal the GROUP BY's sums;
- DuckDB (first size only, skipped if `import duckdb` fails): the same rows exported once with
  COPY to a CSV file and loaded into an in-memory DuckDB table; only the GROUP BY is timed;
- fold (first size only, one run, unless --no-fold): the pure Python `Projection` over every
  row streamed in effective order: what replay did before it became one SQL statement.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import psycopg  # noqa: E402

from bench import _ledger_data as data  # noqa: E402

GROUP_BY = """SELECT currency, date_trunc('month', effective_at) AS month, category, sum(amount)
FROM ledger_entries GROUP BY 1, 2, 3"""


def _rss_mb() -> float:
    """Peak RSS of this process. Linux's VmHWM belongs to this program's memory alone;
    ru_maxrss would also count the parent's RSS at fork time (it survives the exec)."""
    status = Path("/proc/self/status")
    if status.exists():
        for line in status.read_text().splitlines():
            if line.startswith("VmHWM:"):
                return round(int(line.split()[1]) / 1024, 1)
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)


# --- run inside a fresh process ------------------------------------------------------------


def child(mode: str, url: str) -> None:
    from ledger.reporting import projector
    from ledger.reporting.balances import Posting, Projection
    from ledger.rules.months import month_index
    from ledger.storage.db import make_engine

    engine = make_engine(url)
    with engine.connect() as conn:
        conn.exec_driver_sql("SELECT 1")
    before = _rss_mb()
    started = time.perf_counter()
    if mode == "replay":
        with engine.begin() as conn:
            read = projector.replay(conn)
    else:
        with engine.connect() as conn:
            projection = Projection()
            read = 0
            rows = projector.in_effective_order(conn, projector.entry_columns())
            for customer_id, currency, category, amount, at in rows:
                projection.add(
                    Posting(
                        customer_id, currency, category, amount, month_index(at), currency, amount
                    )
                )
                read += 1
            projection.totals()
    seconds = time.perf_counter() - started
    engine.dispose()
    print(
        json.dumps({"seconds": seconds, "read": read, "rss_before_mb": before, "rss_mb": _rss_mb()})
    )


def in_child(mode: str, url: str) -> dict[str, Any]:
    done = subprocess.run(
        [sys.executable, __file__, "--child", mode, url],
        check=True,
        capture_output=True,
        text=True,
        cwd=ROOT,
    )
    found: dict[str, Any] = json.loads(done.stdout)
    return found


# --- measurements ----------------------------------------------------------------------------


def group_by_seconds(url: str, runs: int) -> tuple[float, dict[tuple[str, str, str], int]]:
    times: list[float] = []
    sums: dict[tuple[str, str, str], int] = {}
    with psycopg.connect(data.libpq_url(url)) as conn:
        for _ in range(runs):
            started = time.perf_counter()
            rows = conn.execute(GROUP_BY).fetchall()
            times.append(time.perf_counter() - started)
        sums = {(c, f"{m:%Y-%m}", k): int(s) for c, m, k, s in rows}
    return statistics.median(times), sums


def stored_sums(url: str) -> dict[tuple[str, str, str], int]:
    from ledger.reporting.balances import MOVEMENTS

    with psycopg.connect(data.libpq_url(url)) as conn:
        names = ", ".join(f'"{c.value}"' for c in MOVEMENTS)
        rows = conn.execute(f"SELECT currency, month, {names} FROM mrr_month_totals").fetchall()
    return {
        (row[0], row[1], c.value): int(row[2 + i])
        for row in rows
        for i, c in enumerate(MOVEMENTS)
        if row[2 + i]
    }


def duckdb_seconds(url: str, runs: int) -> dict[str, Any] | None:
    try:
        import duckdb
    except ImportError:
        return None
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "ledger.csv"
        with psycopg.connect(data.libpq_url(url)) as conn, path.open("wb") as out:
            query = "COPY (SELECT currency, effective_at, category, amount FROM ledger_entries)"
            with conn.cursor().copy(query + " TO STDOUT (FORMAT csv)") as copy:
                for block in copy:
                    out.write(block)
        db = duckdb.connect()
        db.execute(
            "CREATE TABLE ledger AS SELECT * FROM read_csv(?, header = false, columns = "
            "{'currency': 'VARCHAR', 'effective_at': 'TIMESTAMP', 'category': 'VARCHAR', "
            "'amount': 'BIGINT'})",
            [str(path)],
        )
        times = []
        for _ in range(runs):
            started = time.perf_counter()
            db.execute(
                "SELECT currency, date_trunc('month', effective_at), category, sum(amount) "
                "FROM ledger GROUP BY ALL"
            ).fetchall()
            times.append(time.perf_counter() - started)
        db.close()
    return {
        "version": duckdb.__version__,
        "how": "rows exported once with COPY to CSV, loaded into an in-memory DuckDB table; "
        "only the GROUP BY is timed",
        "group_by_seconds_median": round(statistics.median(times), 4),
    }


def measure(entries: int, args: argparse.Namespace, first: bool) -> dict[str, Any]:
    with data.fresh_database() as url:
        started = time.perf_counter()
        data.load(url, entries, customers=args.customers)
        load_seconds = time.perf_counter() - started
        baseline, sums = group_by_seconds(url, args.runs)
        replays = [in_child("replay", url) for _ in range(args.runs)]
        replay = statistics.median(r["seconds"] for r in replays)
        result: dict[str, Any] = {
            "entries": entries,
            "load_seconds": round(load_seconds, 1),
            "group_by_seconds_median": round(baseline, 4),
            "replay_seconds_median": round(replay, 4),
            "ratio_replay_to_group_by": round(replay / baseline, 2),
            "replay_rows_read": replays[0]["read"],
            "replay_totals_match_group_by": stored_sums(url) == sums,
            "replay_peak_rss_mb": max(r["rss_mb"] for r in replays),
            "replay_rss_before_mb": max(r["rss_before_mb"] for r in replays),
        }
        if first:
            found = duckdb_seconds(url, args.runs)
            if found is not None:
                found["ratio_replay_to_duckdb"] = round(
                    replay / found["group_by_seconds_median"], 2
                )
            result["duckdb"] = found if found is not None else "skipped: duckdb not importable"
            if not args.no_fold:
                fold = in_child("fold", url)
                result["python_fold_seconds_one_run"] = round(fold["seconds"], 3)
                result["python_fold_peak_rss_mb"] = fold["rss_mb"]
                result["ratio_python_fold_to_group_by"] = round(fold["seconds"] / baseline, 2)
    return result


def main() -> None:
    if len(sys.argv) == 4 and sys.argv[1] == "--child":
        child(sys.argv[2], sys.argv[3])
        return
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--entries", type=int, default=1_000_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--memory-factor", type=int, default=4)
    parser.add_argument("--customers", type=int, default=data.CUSTOMERS)
    parser.add_argument("--no-fold", action="store_true")
    args = parser.parse_args()
    if args.entries < 1 or args.runs < 1 or args.memory_factor < 1:
        parser.error("--entries, --runs and --memory-factor must be at least 1")
    sizes = [measure(args.entries, args, first=True)]
    if args.memory_factor > 1:
        sizes.append(measure(args.entries * args.memory_factor, args, first=False))
    print(
        json.dumps(
            {
                "benchmark": "projection",
                "database": "postgresql",
                "customers": args.customers,
                "runs": args.runs,
                "cpus": os.cpu_count(),
                "sizes": sizes,
                "peak_rss_ratio_largest_to_smallest": round(
                    sizes[-1]["replay_peak_rss_mb"] / sizes[0]["replay_peak_rss_mb"], 3
                ),
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
