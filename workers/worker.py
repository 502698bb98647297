"""`mrr worker`: an RQ worker on the stripe-events queue, with the inbox sweeper beside it.

SimpleWorker runs jobs in the worker process itself: RQ's default Worker forks a child per
job, which costs more than processing an event does.
"""

from __future__ import annotations

import logging
from datetime import timedelta

from rq import SimpleWorker

from ledger.settings import Settings
from workers import runtime
from workers.queue import connect, make_queue
from workers.sweeper import requeue_pending, start_periodic

log = logging.getLogger(__name__)

SWEEP_EVERY_SECONDS = 30.0
SWEEP_OLDER_THAN = timedelta(seconds=60)


def run(settings: Settings, *, burst: bool = False, requeue_now: bool = False) -> None:
    connection = connect(settings)
    queue = make_queue(settings, connection)
    engine = runtime.engine()
    requeue_pending(engine, queue, timedelta(0) if burst or requeue_now else SWEEP_OLDER_THAN)
    stop = None if burst else start_periodic(engine, queue, SWEEP_EVERY_SECONDS, SWEEP_OLDER_THAN)
    try:
        SimpleWorker([queue], connection=connection).work(
            burst=burst, with_scheduler=not burst, logging_level="WARNING"
        )
    finally:
        if stop is not None:
            stop.set()
