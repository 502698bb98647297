"""Prometheus metrics of the processing side and of Stripe API calls, counted where they happen.

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

STRIPE_REQUESTS = Counter(
    "mrr_stripe_requests_total",
    "Stripe API requests (each attempt), by endpoint and answer (HTTP status or network_error)",
    ["endpoint", "status"],
)
STRIPE_RETRIES = Counter(
    "mrr_stripe_retries_total",
    "Stripe API requests retried: `throttled` (a 429, our loop) or `library` (the stripe "
    "library's own: 5xx, 409, network errors, Stripe-Should-Retry)",
    ["reason"],
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
