"""The worker's reconcile schedule: with `MRR_RECONCILE_EVERY` set, a reconcile job is queued
whenever the last run started longer ago than that.

Not RQ's scheduler: it runs in a forked process, which would inherit the worker's database
connections (see workers/worker.py). A daemon thread beside the sweeper checks once a minute;
the database says when the last run started (whoever ran it, `mrr reconcile` included), and a
Redis key set once per interval lets only one of several workers queue the job. The job runs in
an RQ worker like any other (`workers.jobs.reconcile`) and records its result in
`reconcile_runs`.
"""

from __future__ import annotations

import logging
import os
import re
import threading
from collections.abc import Mapping
from datetime import UTC, datetime

from rq import Queue
from rq.job import Job
from sqlalchemy import Engine

from ledger.backfill.reconcile_store import last_started_at
from ledger.settings import ConfigError

log = logging.getLogger(__name__)

JOB = "workers.jobs.reconcile"
CHECK_EVERY_SECONDS = 60.0
JOB_TIMEOUT_SECONDS = 3600
_UNITS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86_400}
_EVERY = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhd]?)\s*$")


def parse_every(text: str) -> float:
    """`24h`, `90m`, `1d`, `3600s` or `3600` (seconds) as seconds."""
    found = _EVERY.match(text.lower())
    if found is None or float(found.group(1)) <= 0:
        raise ConfigError(
            f"MRR_RECONCILE_EVERY must be a positive duration such as 24h, 90m, 1d or 3600s, "
            f"got {text!r}"
        )
    return float(found.group(1)) * _UNITS[found.group(2)]


def every_from_env(env: Mapping[str, str] | None = None) -> float | None:
    raw = (os.environ if env is None else env).get("MRR_RECONCILE_EVERY")
    return parse_every(raw) if raw else None


def claim_key(queue_name: str) -> str:
    return f"mrr:reconcile-queued:{queue_name}"


def queue_if_due(engine: Engine, queue: Queue, every: float, now: datetime) -> Job | None:
    """Queue a reconcile job if the last run started `every` seconds ago or more (or never)."""
    with engine.connect() as conn:
        last = last_started_at(conn)
    if last is not None and (now - last).total_seconds() < every:
        return None
    # The first worker to set the key this interval queues the job; the key expires with it.
    if not queue.connection.set(claim_key(queue.name), b"1", nx=True, ex=max(1, int(every))):
        return None
    log.info("reconcile: due (last run %s); queued", last.isoformat() if last else "never")
    return queue.enqueue(
        JOB, job_timeout=JOB_TIMEOUT_SECONDS, result_ttl=7 * 86_400, failure_ttl=7 * 86_400
    )


def start_periodic(
    engine: Engine, queue: Queue, every: float, check: float = CHECK_EVERY_SECONDS
) -> threading.Event:
    """Check in a daemon thread, at start and every `check` seconds, until the event is set."""
    stop = threading.Event()

    def loop() -> None:
        while True:
            try:
                queue_if_due(engine, queue, every, datetime.now(UTC))
            except Exception:
                log.exception("reconcile schedule: check failed; trying again in %ss", check)
            if stop.wait(min(check, every)):
                return

    threading.Thread(target=loop, name="reconcile-schedule", daemon=True).start()
    return stop
