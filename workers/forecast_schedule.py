"""The worker's forecast schedule: the month's forecast of each currency, made by the worker
when the month starts, not by the first report asked for (`workers.schedule`: a check once a
minute). A report still makes it if no worker has (ledger/reporting/forecast.py).

Due while a currency with earlier months in the stored totals has no forecast kept for the
current month; a Redis key per month lets one of several workers queue the job, and again an
hour later if the forecasts are still missing then (a failed job).
"""

from __future__ import annotations

import logging
import threading
from datetime import datetime

from rq import Queue
from rq.job import Job
from sqlalchemy import Engine, select

from ledger.reporting.forecast import unmade
from ledger.rules.months import Month
from ledger.storage.schema import ledger_entries, mrr_month_totals
from workers import schedule

log = logging.getLogger(__name__)

JOB = "workers.jobs.forecast"
JOB_TIMEOUT_SECONDS = 1800
RETRY_SECONDS = 3600.0


def claim_key(queue_name: str, month: Month) -> str:
    return f"mrr:forecast-queued:{queue_name}:{month}"


def due(engine: Engine, now: datetime) -> bool:
    """Some currency lacks this month's forecast; or the stored totals were never built (the
    job builds them) while the ledger has entries."""
    with engine.connect() as conn:
        if unmade(conn, now):
            return True
        built = conn.execute(select(mrr_month_totals.c.currency).limit(1)).first() is not None
        return not built and conn.execute(select(ledger_entries.c.id).limit(1)).first() is not None


def queue_if_due(engine: Engine, queue: Queue, now: datetime) -> Job | None:
    if not due(engine, now):
        return None
    key = claim_key(queue.name, Month.of(now))
    job = schedule.queue_once(queue, key, RETRY_SECONDS, JOB, JOB_TIMEOUT_SECONDS)
    if job is not None:
        log.info("forecast: this month's is not made yet; queued")
    return job


def start_periodic(
    engine: Engine, queue: Queue, check: float = schedule.CHECK_EVERY_SECONDS
) -> threading.Event:
    return schedule.start_periodic(
        "forecast-schedule", lambda now: queue_if_due(engine, queue, now), check
    )
