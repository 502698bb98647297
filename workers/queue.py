"""The RQ queue of inbox ids."""

from __future__ import annotations

from collections.abc import Sequence

import redis
from rq import Queue, Retry
from rq.job import Job

from ledger.settings import Settings
from workers.redis_server import LOCAL_URL

JOB = "workers.jobs.process_inbox"
# Immediate retries need no RQ scheduler; a row still failing stays pending, and the sweeper
# queues it again after MRR_SWEEP_AFTER seconds: that is the backoff.
RETRY = Retry(max=3)
WAKE_TTL_SECONDS = 10


def connect(settings: Settings) -> redis.Redis:
    return redis.Redis.from_url(
        settings.redis_url or LOCAL_URL, socket_connect_timeout=1, socket_timeout=5
    )


def make_queue(settings: Settings, connection: redis.Redis) -> Queue:
    return Queue(settings.queue_name, connection=connection)


def enqueue(
    queue: Queue, inbox_ids: Sequence[int], *, flag: redis.Redis | None = None
) -> Job | None:
    """Wake the workers for newly stored rows: queue a job unless one is already waiting.

    A job claims pending rows from the inbox itself, so one waiting job serves every row
    committed before it starts: the job clears the flag (`started`) before it claims, so a
    row committed while the flag is set is seen by that job. One RQ job per event would cost
    RQ's bookkeeping (several Redis round trips, milliseconds) per event. The flag expires,
    so a job lost with its flag costs at most WAKE_TTL of latency; the sweeper is the backstop.
    `flag`: the client that sets the flag (`thread_client`), if not the queue's.
    """
    setter = flag if flag is not None else queue.connection
    if not setter.set(wake_key(queue.name), b"1", nx=True, ex=WAKE_TTL_SECONDS):
        return None
    return enqueue_now(queue, inbox_ids)


class WakeFlag:
    """`enqueue(queue, [])` on one connection of the queue's pool, taken at the first call and
    kept until `close`: every checkout from a redis-py pool polls the socket for stray data,
    which cost more CPU than the SET it served. For one thread at a time (`workers.waker`)."""

    def __init__(self, queue: Queue) -> None:
        self.queue = queue
        self.client: redis.Redis | None = None

    def __call__(self) -> Job | None:
        if self.client is None:
            self.client = redis.Redis(
                connection_pool=self.queue.connection.connection_pool,
                single_connection_client=True,
            )
        return enqueue(self.queue, [], flag=self.client)

    def close(self) -> None:
        if self.client is not None:
            self.client.close()
            self.client = None


def enqueue_now(queue: Queue, inbox_ids: Sequence[int]) -> Job:
    """Queue a job for these ids whatever is already waiting (sweeper, retries)."""
    return queue.enqueue(
        JOB,
        list(inbox_ids),
        retry=RETRY,
        job_timeout=600,
        result_ttl=300,
        failure_ttl=7 * 24 * 3600,
    )


def started(connection: redis.Redis, queue_name: str) -> None:
    """A job is starting: the next stored row must queue a new one."""
    connection.delete(wake_key(queue_name))


def wake_key(queue_name: str) -> str:
    return f"mrr:wake:{queue_name}"


def enqueue_batches(queue: Queue, inbox_ids: Sequence[int], size: int = 200) -> int:
    ids = list(inbox_ids)
    for start in range(0, len(ids), size):
        enqueue_now(queue, ids[start : start + size])
    return len(ids)
