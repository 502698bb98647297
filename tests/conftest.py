"""Real services: PostgreSQL and Redis on 127.0.0.1, SQLite in a temporary folder."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest
import redis
from rq import Queue
from sqlalchemy import Engine

from ledger.settings import Settings
from ledger.storage.db import make_engine
from tests.support.databases import Templates
from workers import runtime

REDIS_URL = "redis://127.0.0.1:6379/0"
WEBHOOK_SECRET = "whsec_test_primary"


@pytest.fixture(scope="session")
def templates(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Templates]:
    found = Templates(tmp_path_factory.mktemp("databases"), background=True)
    yield found
    found.close()


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest, templates: Templates) -> Iterator[str]:
    """Every test using this runs once on SQLite and once on PostgreSQL."""
    if request.param == "sqlite":
        yield templates.sqlite_copy()
    else:
        with templates.pg_copy() as url:
            yield url


@pytest.fixture
def engine(db_url: str) -> Iterator[Engine]:
    found = make_engine(db_url)
    yield found
    found.dispose()


@pytest.fixture
def settings(db_url: str) -> Iterator[Settings]:
    chosen = Settings(
        database_url=db_url,
        redis_url=REDIS_URL,
        webhook_secrets=(WEBHOOK_SECRET,),
        stripe_api_key=None,
        stripe_api_base=None,
        api_token="test-token-" + uuid.uuid4().hex,
        queue_name=f"test-{uuid.uuid4().hex[:10]}",
        secret_key="test-secret-" + uuid.uuid4().hex,
    )
    runtime.use(chosen)
    yield chosen
    runtime.engine().dispose()
    Queue(chosen.queue_name, connection=redis.Redis.from_url(REDIS_URL)).delete(delete_jobs=True)


@pytest.fixture
def queue(settings: Settings) -> Queue:
    return Queue(settings.queue_name, connection=redis.Redis.from_url(REDIS_URL))
