"""What the web process shares between requests: settings, engine, queue."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field

import redis
from flask import current_app
from redis import Redis
from rq import Queue
from sqlalchemy import Engine

from ledger.settings import Settings
from workers.queue import thread_client


@dataclass(frozen=True, slots=True)
class Services:
    settings: Settings
    engine: Engine
    redis: redis.Redis
    queue: Queue
    threads: threading.local = field(default_factory=threading.local)

    def wake_client(self) -> Redis:
        """This thread's client for the queue's wake flag (`workers.queue.thread_client`)."""
        return thread_client(self.redis, self.threads)


def services() -> Services:
    found: Services = current_app.extensions["mrr"]
    return found
