"""RQ job functions: each receives inbox ids, loads, calls pure code, stores."""

from __future__ import annotations

import logging
import time
from datetime import UTC, datetime

from rq import Queue, get_current_job

from ledger.processing import process_batch
from workers import metrics, runtime
from workers.queue import enqueue, started

log = logging.getLogger(__name__)

# Rows per transaction. A job tops its own ids up to BATCH_SIZE with other fresh pending rows,
# so a backlog drains in full batches whatever size the jobs were queued with, then adds up to
# CUSTOMER_ROWS more pending rows of the same customers: their events are replayed anyway.
BATCH_SIZE = 500
CUSTOMER_ROWS = 4500


class RetryLater(Exception):
    """Some rows of the batch hit a transient failure; RQ retries the job."""


def process_inbox(inbox_ids: list[int]) -> dict[str, int]:
    job = get_current_job()
    if job is not None:
        started(job.connection, job.origin)
    began = time.perf_counter()
    outcome = process_batch(
        runtime.engine(),
        inbox_ids,
        max_attempts=runtime.settings().max_attempts,
        fetch=runtime.fetcher(),
        claim_extra=max(0, BATCH_SIZE - len(inbox_ids)),
        claim_customer_rows=CUSTOMER_ROWS,
        checkpoint_every=runtime.settings().checkpoint_every,
    )
    metrics.record_batch(runtime.engine(), outcome, time.perf_counter() - began)
    if job is not None and sum(outcome.counts.values()) >= BATCH_SIZE:
        # A full batch: more rows may be waiting, with no job of their own.
        enqueue(Queue(job.origin, connection=job.connection), [])
    if outcome.retry:
        # Rows this job claimed beyond its own ids are retried by the sweeper.
        raise RetryLater(f"inbox rows to retry: {outcome.retry}")
    return outcome.counts


def reconcile() -> dict[str, int]:
    """The scheduled reconcile (workers/reconcile_schedule.py): compare and record, no fix."""
    from workers.reconcile import Options
    from workers.reconcile import run as run_reconcile

    api = runtime.stripe_api()
    if api is None:
        raise RuntimeError("STRIPE_API_KEY is not set: reconcile reads Stripe's API")
    outcome = run_reconcile(runtime.engine(), api, Options(trigger="schedule"))
    return {"subscriptions": outcome.subscriptions, "differences": len(outcome.differences)}


def forecast() -> list[str]:
    """The month's forecasts not made yet (workers/forecast_schedule.py); returns currencies."""
    from ledger.reporting.forecast import make_due

    made = make_due(runtime.engine(), datetime.now(UTC))
    log.info("forecast: made this month's for %s", ", ".join(made) or "no currency")
    return made
