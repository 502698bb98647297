"""Benchmark: `mrr forecast` over a large ledger on PostgreSQL. Prints JSON.

    python bench/forecast.py [--entries 1000000] [--small 100000] [--runs 3]

For each size (--small and --entries rows, bench/_ledger_data.py: 20,000 customers over the 36
months 2023-01..2025-12, rows recorded up to 3 days after they take effect) a fresh database is
filled and its monthly totals built once. Then, each run in a fresh process, "today" being
2026-01-15:

- `first`: the month's first forecast: the ledger summed by effective and recorded month in
  SQL, every model backtested from every past month (33 cut-offs, the seasonal fits from 24
  months of history on), the winner projected and kept in `mrr_forecasts`;
- `kept`: the same request again, reading the kept forecast;
- `backtest`: `mrr forecast --backtest`.

Times are medians over runs, after `import statsmodels` (its import, about 1.3 s, is reported
apart: a web process pays it once, the CLI once per command). `rss_growth_mb` is the peak RSS
of the process during the three calls minus its RSS before them: flat when it does not grow
with the ledger.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench import _ledger_data as data  # noqa: E402
from bench.projection import _rss_mb  # noqa: E402

TODAY = datetime(2026, 1, 15, tzinfo=UTC)


def child(url: str) -> None:
    started = time.perf_counter()
    import statsmodels.tsa.holtwinters  # noqa: F401

    imported = time.perf_counter() - started
    from sqlalchemy import delete

    from ledger.reporting.forecast import build_backtest, build_forecast
    from ledger.storage.db import make_engine
    from ledger.storage.schema import mrr_forecasts

    engine = make_engine(url)
    with engine.begin() as conn:
        conn.execute(delete(mrr_forecasts))
    before = _rss_mb()
    times = {}
    for name, call in (
        ("first", lambda: build_forecast(engine, TODAY, 12, "usd")),
        ("kept", lambda: build_forecast(engine, TODAY, 12, "usd")),
        ("backtest", lambda: build_backtest(engine, TODAY, "usd")),
    ):
        began = time.perf_counter()
        found = call()
        times[name] = round(time.perf_counter() - began, 3)
    model = getattr(found, "chosen", None)
    engine.dispose()
    print(
        json.dumps(
            {
                **times,
                "import_s": round(imported, 3),
                "rss_growth_mb": round(_rss_mb() - before, 1),
                "chosen": model,
            }
        )
    )


def measure(url: str, runs: int) -> dict[str, object]:
    found = []
    for _ in range(runs):
        out = subprocess.run(
            [sys.executable, __file__, "--child", url], check=True, capture_output=True, text=True
        )
        found.append(json.loads(out.stdout.strip().splitlines()[-1]))
    keys = ("first", "kept", "backtest", "import_s", "rss_growth_mb")
    return {k: statistics.median(float(r[k]) for r in found) for k in keys} | {
        "chosen": found[-1]["chosen"]
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--entries", type=int, default=1_000_000)
    parser.add_argument("--small", type=int, default=100_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--customers", type=int, default=data.CUSTOMERS)
    parser.add_argument("--child")
    args = parser.parse_args()
    if args.child:
        child(args.child)
        return
    from ledger.reporting import projector
    from ledger.storage.db import make_engine

    result: dict[str, object] = {"benchmark": "forecast"}
    for size in (args.small, args.entries):
        with data.fresh_database() as url:
            data.load(url, size, customers=args.customers)
            engine = make_engine(url)
            with engine.begin() as conn:
                projector.replay(conn)
            engine.dispose()
            result[str(size)] = measure(url, args.runs)
    small, large = result[str(args.small)], result[str(args.entries)]
    assert isinstance(small, dict) and isinstance(large, dict)
    result["first_ratio"] = round(large["first"] / small["first"], 2)
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
