"""`mrr worker`: an RQ worker on the stripe-events queue, with the inbox sweeper beside it.

SimpleWorker runs jobs in the worker process itself: RQ's default Worker forks a child per
job, which costs more than processing a batch of events does, and would throw away the
process's warm database connections with every fork.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta

import redis
from rq import Queue, SimpleWorker
from sqlalchemy import Engine

from ledger.settings import ConfigError, Settings
from workers import forecast_schedule, reconcile_schedule, runtime
from workers.queue import connect, make_queue
from workers.sweeper import requeue_pending, start_periodic

log = logging.getLogger(__name__)

SWEEP_EVERY_SECONDS = 30.0
SWEEP_OLDER_THAN = timedelta(seconds=60)


@dataclass(frozen=True, slots=True)
class SweepTiming:
    """How often the sweeper runs, and how long a row must have been pending to be queued."""

    every: float = SWEEP_EVERY_SECONDS
    older_than: timedelta = SWEEP_OLDER_THAN

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> SweepTiming:
        env = os.environ if env is None else env
        every = _seconds(env, "MRR_SWEEP_EVERY", SWEEP_EVERY_SECONDS)
        after = _seconds(env, "MRR_SWEEP_AFTER", SWEEP_OLDER_THAN.total_seconds())
        return cls(every=every, older_than=timedelta(seconds=after))


def _seconds(env: Mapping[str, str], name: str, default: float) -> float:
    raw = env.get(name)
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError:
        raise ConfigError(f"{name} must be a number of seconds, got {raw!r}") from None
    if not value > 0:
        raise ConfigError(f"{name} must be a positive number of seconds, got {raw!r}")
    return value


def run(
    settings: Settings,
    *,
    burst: bool = False,
    requeue_now: bool = False,
    sweep: SweepTiming | None = None,
    reconcile_every: float | None = None,
) -> None:
    """`reconcile_every`: seconds between scheduled reconciles (MRR_RECONCILE_EVERY), if any."""
    sweep = sweep or SweepTiming.from_env()
    connection = connect(settings)
    queue = make_queue(settings, connection)
    engine = runtime.engine()
    if burst:
        requeue_pending(engine, queue, timedelta(0))
        SimpleWorker([queue], connection=connection).work(burst=True, logging_level="WARNING")
        return
    try:
        requeue_pending(engine, queue, timedelta(0) if requeue_now else sweep.older_than)
    except (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError) as problem:
        log.warning("worker: Redis unavailable at start (%s); the sweeper will queue", problem)
    stop = start_periodic(engine, queue, sweep.every, sweep.older_than)
    stop_reconcile = _schedule_reconcile(settings, engine, queue, reconcile_every)
    stop_forecast = forecast_schedule.start_periodic(engine, queue)
    try:
        _work_through_redis_outages(queue)
    finally:
        stop.set()
        stop_forecast.set()
        if stop_reconcile is not None:
            stop_reconcile.set()


def _schedule_reconcile(
    settings: Settings, engine: Engine, queue: Queue, every: float | None
) -> threading.Event | None:
    if every is None:
        return None
    if not settings.stripe_api_key:
        log.warning("worker: MRR_RECONCILE_EVERY is set but STRIPE_API_KEY is not; no reconcile")
        return None
    log.info("worker: reconcile every %gs", every)
    return reconcile_schedule.start_periodic(engine, queue, every)


def _work_through_redis_outages(queue: Queue, pause: float = 1.0) -> None:
    """Run a SimpleWorker; when it quits on a lost Redis, wait and start a fresh one.

    RQ's worker logs an unhandled exception (a Redis connection error included) and quits.
    The inbox, not Redis, holds the events, so the worker only needs to come back: the sweeper
    re-queues whatever Redis lost meanwhile. A stop asked for by a signal is honoured.
    """
    while True:
        worker: SimpleWorker | None = None
        try:
            # Connects to Redis (CLIENT SETNAME): inside the try, for a worker started or
            # restarted while Redis is down.
            worker = SimpleWorker([queue], connection=queue.connection)
            # No RQ scheduler: it runs in a forked process that would inherit this process's
            # database connections, and keep a killed worker's transaction (and its locks)
            # open. Retries are immediate; the sweeper is the backoff (see workers.queue).
            worker.work(with_scheduler=False, logging_level="WARNING")
        except (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError) as problem:
            log.warning("worker: lost Redis (%s)", problem)
        if worker is not None and _stop_asked(worker):
            return
        log.warning("worker: RQ worker quit without a stop request; restarting in %ss", pause)
        time.sleep(pause)
        # RQ's signal handler still points at this worker during the pause.
        if worker is not None and _stop_asked(worker):
            return


def _stop_asked(worker: SimpleWorker) -> bool:
    """A signal asked RQ to stop: busy, it sets `_stop_requested`; idle, it only records when."""
    return bool(getattr(worker, "_stop_requested", False)) or (
        getattr(worker, "_shutdown_requested_date", None) is not None
    )
