"""The inbox sweeper: queues rows still pending, whatever happened to their first job."""

from __future__ import annotations

import logging
import threading
from datetime import timedelta

from rq import Queue
from sqlalchemy import Engine

from ledger.storage import inbox
from workers.queue import enqueue_batches

log = logging.getLogger(__name__)

PAGE = 10_000


def requeue_pending(engine: Engine, queue: Queue, older_than: timedelta) -> int:
    """Queue every row pending for at least `older_than`, in batches; returns how many."""
    queued = 0
    after_id = 0
    while True:
        with engine.connect() as conn:
            ids = inbox.pending_ids(conn, older_than=older_than, after_id=after_id, limit=PAGE)
        if not ids:
            break
        queued += enqueue_batches(queue, ids)
        after_id = ids[-1]
    if queued:
        log.info("sweeper: queued %d pending inbox rows", queued)
    return queued


def start_periodic(
    engine: Engine, queue: Queue, every: float, older_than: timedelta
) -> threading.Event:
    """Sweep in a daemon thread until the returned event is set."""
    stop = threading.Event()

    def loop() -> None:
        while not stop.wait(every):
            try:
                requeue_pending(engine, queue, older_than)
            except Exception:
                log.exception("sweeper: pass failed; trying again in %ss", every)

    threading.Thread(target=loop, name="inbox-sweeper", daemon=True).start()
    return stop
