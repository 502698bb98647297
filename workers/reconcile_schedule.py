"""The worker's reconcile schedule: with `MRR_RECONCILE_EVERY` set, a reconcile job is queued
whenever the last run started longer ago than that (`workers.schedule`: a check once a minute).

The database says when the last run started (whoever ran it, `mrr reconcile` included), and a
Redis key set once per interval lets only one of several workers queue the job. The job
(`workers.jobs.reconcile`) records its result in `reconcile_runs`.
"""

from __future__ import annotations

import logging
import os
import re
import threading
from collections.abc import Mapping
from datetime import datetime

from rq import Queue
from rq.job import Job
from sqlalchemy import Engine

from ledger.backfill.reconcile_store import last_started_at
from ledger.settings import ConfigError
from workers import schedule

log = logging.getLogger(__name__)

JOB = "workers.jobs.reconcile"
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
    job = schedule.queue_once(queue, claim_key(queue.name), every, JOB, JOB_TIMEOUT_SECONDS)
    if job is not None:
        log.info("reconcile: due (last run %s); queued", last.isoformat() if last else "never")
    return job


def start_periodic(
    engine: Engine, queue: Queue, every: float, check: float = schedule.CHECK_EVERY_SECONDS
) -> threading.Event:
    """Check in a daemon thread, at start and every `check` seconds, until the event is set."""
    return schedule.start_periodic(
        "reconcile-schedule",
        lambda now: queue_if_due(engine, queue, every, now),
        min(check, every),
    )
