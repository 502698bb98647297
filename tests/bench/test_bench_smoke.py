"""The benchmark scripts still run: tiny ledgers, one run each, JSON with the expected keys.

Figures are not checked here (speed targets live in bench/, see bench/README.md).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]


def run(script: str, *args: str) -> dict[str, Any]:
    done = subprocess.run(
        [sys.executable, str(ROOT / "bench" / script), *args],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=ROOT,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    found: dict[str, Any] = json.loads(done.stdout)
    return found


def test_history_benchmark_runs() -> None:
    found = run(
        "history.py",
        *("--sizes", "10,40", "--events", "3", "--full", "1", "--late-size", "40"),
        *("--backends", "sqlite"),
    )
    sizes = found["sqlite"]["sizes"]
    assert [s["history"] for s in sizes] == [10, 40]
    assert [s["customers"] for s in sizes] == [3, 1]
    assert sizes[1]["late_event"]["days_late"] == 30 and sizes[1]["late_event"]["ms"] > 0
    assert sizes[1]["checkpoints_kept"] > 0 and sizes[1]["full_replay_median_ms"] > 0
    assert found["sqlite"]["ratio_median_largest_to_smallest"] > 0


def test_projection_benchmark_runs() -> None:
    found = run(
        "projection.py",
        "--entries",
        "2000",
        "--runs",
        "1",
        "--memory-factor",
        "2",
        "--customers",
        "200",
    )
    assert found["benchmark"] == "projection"
    assert [s["entries"] for s in found["sizes"]] == [2000, 4000]
    small = found["sizes"][0]
    for key in (
        "group_by_seconds_median",
        "replay_seconds_median",
        "ratio_replay_to_group_by",
        "replay_peak_rss_mb",
        "duckdb",
        "python_fold_seconds_one_run",
    ):
        assert key in small
    assert small["replay_rows_read"] == 2000
    assert all(s["replay_totals_match_group_by"] for s in found["sizes"])
    assert found["peak_rss_ratio_largest_to_smallest"] > 0


def test_report_benchmark_runs() -> None:
    found = run(
        "report.py", "--entries", "2000", "--runs", "1", "--requests", "10", "--customers", "200"
    )
    assert found["benchmark"] == "report"
    for key in (
        "report_p50_ms_median",
        "report_p99_ms_median",
        "report_after_one_append_p99_ms_median",
        "baseline_healthz_p99_ms_median",
        "ratio_report_p99_to_healthz_p99",
        "build_report_in_process_ms_median",
    ):
        assert found[key] > 0


def test_ingest_benchmark_runs_each_configuration() -> None:
    found = run("ingest.py", "--requests", "40", "--runs", "1")
    assert set(found) >= {"sync", "gthread"}
    for name in ("sync", "gthread"):
        figures = found[name]
        assert figures["gunicorn"]
        for app in ("webhook", "bare", "webhook_metrics"):
            assert figures[app]["requests_per_s"] > 0
            assert figures[app]["p99_ms"] >= figures[app]["p50_ms"] > 0
        assert len(figures["ratio_per_run"]) == 1
        assert figures["ratio"] > 0
        assert figures["metrics_ratio"] > 0 and len(figures["metrics_ratio_per_run"]) == 1


def test_ingest_benchmark_names_a_bad_configuration() -> None:
    done = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "ingest.py"), "--gunicorn", "--workers 3"],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
    )
    assert done.returncode != 0
    assert "NAME=SETTINGS" in done.stderr and "'--workers 3'" in done.stderr


def test_demo_benchmark_runs() -> None:
    found = run("demo.py", "--runs", "1", "--backends", "sqlite")
    assert found["benchmark"] == "demo"
    figures = found["sqlite"]
    assert (figures["usd_closing_mrr"], figures["usd_customers"]) == (2_750_000, 300)
    assert figures["seconds_median"] >= figures["deliver_seconds_median"] > 0
    assert figures["process_seconds_median"] > 0 and figures["events"] > 0


def test_pages_benchmark_runs_every_page() -> None:
    found = run(
        "pages.py",
        "--entries",
        "2000",
        "--customers",
        "200",
        "--heavy",
        "20",
        "--runs",
        "1",
        "--requests",
        "3",
    )
    assert found["benchmark"] == "pages"
    assert found["entries"] == 2020
    pages = found["pages"]
    assert set(pages) == {
        "healthz",
        "overview_default",
        "overview",
        "bridge",
        "entries_largest_cell",
        "entries_largest_cell_page_2",
        "entries_unfiltered",
        "entry",
        "customers",
        "customers_search",
        "customer_heavy",
        "data_quality",
    }
    for figures in pages.values():
        assert figures["p99_ms_median"] >= figures["p50_ms_median"] > 0
        assert figures["ratio_p99_to_healthz_p99"] > 0
    assert found["slowest_page"] in pages


def test_forecast_benchmark_runs() -> None:
    found = run(
        "forecast.py", "--entries", "4000", "--small", "2000", "--runs", "1", "--customers", "200"
    )
    assert found["benchmark"] == "forecast"
    for size in ("2000", "4000"):
        assert found[size]["cold"] > 0 and found[size]["first"] > 0 and found[size]["kept"] > 0
        assert found[size]["cold_over_first"] > 0
        assert found[size]["chosen"] in {"last", "drift3", "rates", "ets"}
    assert found["first_large_over_small"] > 0


def test_segments_benchmark_runs() -> None:
    found = run(
        "segments.py",
        *("--entries", "3000", "--small", "1000", "--customers", "200"),
        *("--runs", "1", "--requests", "3", "--workers", "1"),
    )
    assert set(found["sizes"]) == {"small", "large"}
    assert found["sizes"]["large"]["customer_months_rows"] > 0
    assert set(found["api"]["pages"]) == {"plain_report", "by_plan", "cohorts"}
    assert found["api"]["ratio_by_plan_p99_to_plain_p99"] > 0
    assert found["ratio_python_peak_large_to_small"] > 0


def test_committed_benchmark_runs() -> None:
    found = run("committed.py", "--subscriptions", "50", "--events", "3", "--runs", "1")
    assert found["benchmark"] == "committed"
    for size in ("5", "50"):
        assert found[size]["events"] == int(size) * 3 and found[size]["seconds"] > 0
        assert found[size]["whole_fold_s"] > 0 and found[size]["refold_ms"] > 0
        assert found[size]["at_risk"] == int(size) // 10 + (1 if int(size) % 10 else 0)
    assert found["large_over_small"] > 0
