"""The RQ queue of inbox ids."""

from __future__ import annotations

from collections.abc import Sequence

import redis
from rq import Queue, Retry
from rq.job import Job

from ledger.settings import Settings
from workers.redis_server import LOCAL_URL

JOB = "workers.jobs.process_inbox"
RETRY = Retry(max=3, interval=[2, 10, 30])


def connect(settings: Settings) -> redis.Redis:
    return redis.Redis.from_url(
        settings.redis_url or LOCAL_URL, socket_connect_timeout=1, socket_timeout=5
    )


def make_queue(settings: Settings, connection: redis.Redis) -> Queue:
    return Queue(settings.queue_name, connection=connection)


def enqueue(queue: Queue, inbox_ids: Sequence[int]) -> Job:
    return queue.enqueue(
        JOB,
        list(inbox_ids),
        retry=RETRY,
        job_timeout=600,
        result_ttl=300,
        failure_ttl=7 * 24 * 3600,
    )


def enqueue_batches(queue: Queue, inbox_ids: Sequence[int], size: int = 200) -> int:
    ids = list(inbox_ids)
    for start in range(0, len(ids), size):
        enqueue(queue, ids[start : start + size])
    return len(ids)
