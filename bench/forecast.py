"""Benchmark: `mrr forecast` over a large ledger on PostgreSQL. Prints JSON.

    python bench/forecast.py [--entries 1000000] [--small 100000] [--runs 3]

For each size (--small and --entries rows, bench/_ledger_data.py: 20,000 customers over the 36
months 2023-01..2025-12, rows recorded up to 3 days after they take effect) a fresh database is
filled and its monthly totals built once. Then, each run in a fresh process:

- `cold`: the first forecast ever made, "today" 2026-01-15, with nothing kept: the kept cells
  built from the whole ledger, every model fitted from each of the 34 cut-offs (the seasonal
  fits from 24 months of history on), all kept, the winner kept in `mrr_forecasts`. This is
  what every month's first forecast cost before cut-offs were kept: the baseline;
- `kept`: the same request again, reading the kept forecast;
- `backtest`: `mrr forecast --backtest` (every cut-off kept);
- `first`: a month later ("today" 2026-02-15), the month's first forecast as the worker's
  schedule or the first request makes it: the kept cells first set back by a month's share of
  the ledger's rows (1/36, what a month appends), so it catches up on those, reads the kept
  cut-offs and fits the models from one new cut-off.

Times are medians over runs, after `import statsmodels` (its import, about 1.3 s, is reported
apart: a web process pays it once, the CLI once per command). `rss_growth_mb` is the peak RSS
of the process during the calls minus its RSS before them: flat when it does not grow with the
ledger. `cold_over_first` is the ratio of the two in the same runs.
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
NEXT_MONTH = datetime(2026, 2, 15, tzinfo=UTC)


def child(url: str, entries: int) -> None:
    started = time.perf_counter()
    import statsmodels.tsa.holtwinters  # noqa: F401

    imported = time.perf_counter() - started
    from sqlalchemy import delete, update

    from ledger.reporting import forecast_cells, projector
    from ledger.reporting.forecast import build_backtest, build_forecast
    from ledger.storage.db import make_engine
    from ledger.storage.schema import (
        forecast_backtests,
        mrr_forecasts,
        projector_checkpoints,
    )
    from ledger.storage.schema import forecast_cells as cells_table

    engine = make_engine(url)
    with engine.begin() as conn:
        for table in (mrr_forecasts, forecast_backtests, cells_table):
            conn.execute(delete(table))
        conn.execute(
            update(projector_checkpoints)
            .where(projector_checkpoints.c.name == forecast_cells.CHECKPOINT)
            .values(last_entry_id=0)
        )
    before = _rss_mb()

    def month_behind() -> None:
        with engine.begin() as conn:
            horizon = projector.safe_horizon(conn)
            forecast_cells._rebuild(conn, horizon - entries // 36)

    times = {}
    for name, call in (
        ("cold", lambda: build_forecast(engine, TODAY, 12, "usd")),
        ("kept", lambda: build_forecast(engine, TODAY, 12, "usd")),
        ("backtest", lambda: build_backtest(engine, TODAY, "usd")),
        ("setup", month_behind),
        ("first", lambda: build_forecast(engine, NEXT_MONTH, 12, "usd")),
    ):
        began = time.perf_counter()
        found = call()
        times[name] = round(time.perf_counter() - began, 3)
        if name == "backtest":
            model = getattr(found, "chosen", None)
    del times["setup"]
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


def measure(url: str, runs: int, entries: int) -> dict[str, object]:
    found = []
    for _ in range(runs):
        out = subprocess.run(
            [sys.executable, __file__, "--child", url, "--entries", str(entries)],
            check=True,
            capture_output=True,
            text=True,
        )
        found.append(json.loads(out.stdout.strip().splitlines()[-1]))
    keys = ("cold", "first", "kept", "backtest", "import_s", "rss_growth_mb")
    result: dict[str, object] = {k: statistics.median(float(r[k]) for r in found) for k in keys}
    ratios = [float(r["cold"]) / float(r["first"]) for r in found]
    return result | {
        "cold_over_first": round(statistics.median(ratios), 1),
        "chosen": found[-1]["chosen"],
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
        child(args.child, args.entries)
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
            result[str(size)] = measure(url, args.runs, size)
    small, large = result[str(args.small)], result[str(args.entries)]
    assert isinstance(small, dict) and isinstance(large, dict)
    result["first_large_over_small"] = round(large["first"] / small["first"], 2)
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
