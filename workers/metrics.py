"""Prometheus metrics of the processing side, counted in the worker process.

Under PROMETHEUS_MULTIPROC_DIR (see docs/operations.md#metrics) prometheus_client writes them
to files in that directory, which the web app's `GET /metrics` adds up with its own.
"""

from __future__ import annotations

from prometheus_client import Counter, Histogram
from sqlalchemy import Engine

from ledger.processing import BatchOutcome
from ledger.storage.inbox_stats import outcomes_by_type

EVENTS = Counter(
    "mrr_events_total",
    "Inbox events that reached a final status, by Stripe event type and outcome",
    ["event_type", "outcome"],
)
BATCH_ROWS = Histogram(
    "mrr_batch_rows",
    "Inbox rows handled by one processing batch",
    buckets=(1, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000),
)
BATCH_SECONDS = Histogram(
    "mrr_batch_duration_seconds",
    "Time to process one batch of inbox rows",
    buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60),
)
ENTRIES_APPENDED = Counter("mrr_ledger_entries_appended_total", "Ledger entries appended")
ENTRIES_REVERSED = Counter(
    "mrr_ledger_entries_reversed_total", "Ledger entries appended to reverse an earlier entry"
)


def record_batch(engine: Engine, outcome: BatchOutcome, seconds: float) -> None:
    BATCH_ROWS.observe(len(outcome.handled))
    BATCH_SECONDS.observe(seconds)
    ENTRIES_APPENDED.inc(outcome.appended)
    ENTRIES_REVERSED.inc(outcome.reversed)
    with engine.connect() as conn:
        outcomes = outcomes_by_type(conn, outcome.handled)
    for (event_type, status), n in outcomes.items():
        EVENTS.labels(event_type=event_type, outcome=status).inc(n)
