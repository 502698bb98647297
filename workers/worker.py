"""`mrr worker`: an RQ worker on the stripe-events queue, with the inbox sweeper beside it.

SimpleWorker runs jobs in the worker process itself: RQ's default Worker forks a child per
job, which costs more than processing a batch of events does, and would throw away the
process's warm database connections with every fork.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta

from rq import SimpleWorker

from ledger.settings import ConfigError, Settings
from workers import runtime
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
) -> None:
    sweep = sweep or SweepTiming.from_env()
    connection = connect(settings)
    queue = make_queue(settings, connection)
    engine = runtime.engine()
    requeue_pending(engine, queue, timedelta(0) if burst or requeue_now else sweep.older_than)
    stop = None if burst else start_periodic(engine, queue, sweep.every, sweep.older_than)
    try:
        SimpleWorker([queue], connection=connection).work(
            burst=burst, with_scheduler=not burst, logging_level="WARNING"
        )
    finally:
        if stop is not None:
            stop.set()
