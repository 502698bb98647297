"""Per-process singletons for jobs: settings, the database engine, the Stripe fetcher."""

from __future__ import annotations

from functools import cache

from sqlalchemy import Engine

from ledger.processing import Fetcher
from ledger.settings import Settings
from ledger.storage.db import make_engine


@cache
def settings() -> Settings:
    return _override[-1] if _override else Settings.from_env()


@cache
def engine() -> Engine:
    return make_engine(settings().database_url)


@cache
def fetcher() -> Fetcher | None:
    from workers.stripe_fetch import make_fetcher

    return make_fetcher(settings())


def use(chosen: Settings) -> None:
    """Run jobs in this process with these settings (tests, benchmarks, `mrr up`)."""
    engine.cache_clear()
    fetcher.cache_clear()
    settings.cache_clear()
    _override.clear()
    _override.append(chosen)


_override: list[Settings] = []
