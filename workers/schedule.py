"""The worker's periodic checks: a daemon thread that asks "is a job due?" once a minute, and a
Redis key that lets only one of several workers queue it.

Not RQ's scheduler: it runs in a forked process, which would inherit the worker's database
connections (see workers/worker.py). The database says whether the work is due (whoever did it
last, a command or a request included); the job runs in an RQ worker like any other. Used by
the reconcile (`reconcile_schedule`) and the month's forecast (`forecast_schedule`).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from datetime import UTC, datetime

from rq import Queue
from rq.job import Job

log = logging.getLogger(__name__)

CHECK_EVERY_SECONDS = 60.0
RESULT_TTL_SECONDS = 7 * 86_400


def queue_once(queue: Queue, key: str, hold: float, job: str, timeout: int) -> Job | None:
    """Queue `job` unless a worker has set `key` in the last `hold` seconds (it then expires)."""
    if not queue.connection.set(key, b"1", nx=True, ex=max(1, int(hold))):
        return None
    return queue.enqueue(
        job, job_timeout=timeout, result_ttl=RESULT_TTL_SECONDS, failure_ttl=RESULT_TTL_SECONDS
    )


def start_periodic(
    name: str, check: Callable[[datetime], object], every: float = CHECK_EVERY_SECONDS
) -> threading.Event:
    """Call `check(now)` in a daemon thread, at start and every `every` seconds, until the
    event is set; a failed check is logged and tried again at the next."""
    stop = threading.Event()

    def loop() -> None:
        while True:
            try:
                check(datetime.now(UTC))
            except Exception:
                log.exception("%s: check failed; trying again in %ss", name, every)
            if stop.wait(every):
                return

    threading.Thread(target=loop, name=name, daemon=True).start()
    return stop
