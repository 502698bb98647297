"""What the web process shares between requests: settings, engine, queue."""

from __future__ import annotations

from dataclasses import dataclass

import redis
from flask import current_app
from rq import Queue
from sqlalchemy import Engine

from ledger.settings import Settings


@dataclass(frozen=True, slots=True)
class Services:
    settings: Settings
    engine: Engine
    redis: redis.Redis
    queue: Queue


def services() -> Services:
    found: Services = current_app.extensions["mrr"]
    return found
