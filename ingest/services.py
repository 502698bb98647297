"""What the web process shares between requests: settings, engine, queue, waker."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field

import redis
from flask import current_app
from rq import Queue
from sqlalchemy import Engine

from ledger.settings import Settings
from workers.waker import Waker


@dataclass(frozen=True, slots=True)
class Services:
    settings: Settings
    engine: Engine
    redis: redis.Redis
    queue: Queue
    waker: Waker
    threads: threading.local = field(default_factory=threading.local)


def services() -> Services:
    found: Services = current_app.extensions["mrr"]
    return found
