"""Per-process singletons for jobs: settings, the database engine, the Stripe API."""

from __future__ import annotations

from functools import cache
from typing import TYPE_CHECKING

from sqlalchemy import Engine

from ledger.processing import Fetcher
from ledger.settings import Settings
from ledger.storage.db import make_engine

if TYPE_CHECKING:
    from workers.stripe_client import StripeApi


@cache
def settings() -> Settings:
    return _override[-1] if _override else Settings.from_env()


@cache
def engine() -> Engine:
    return make_engine(settings().database_url)


@cache
def stripe_api() -> StripeApi | None:
    """The process's Stripe API (one rate limit, one request count); None without a key."""
    from workers.stripe_client import connect

    return connect(settings()) if settings().stripe_api_key else None


def fetcher() -> Fetcher | None:
    api = stripe_api()
    return None if api is None else api.reference


def use(chosen: Settings) -> None:
    """Run jobs in this process with these settings (tests, benchmarks, `mrr up`)."""
    engine.cache_clear()
    stripe_api.cache_clear()
    settings.cache_clear()
    _override.clear()
    _override.append(chosen)


_override: list[Settings] = []
