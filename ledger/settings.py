"""Configuration from the environment (12-factor), with defaults that work on a laptop."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from ledger.rules.sources import parse_secret

DEFAULT_SQLITE_PATH = Path("var") / "mrr.sqlite3"
DEFAULT_QUEUE = "stripe-events"
DEFAULT_MAX_BODY = 1024 * 1024
SIGNATURE_TOLERANCE_SECONDS = 300


class ConfigError(ValueError):
    """A configuration value is present but unusable."""


@dataclass(frozen=True, slots=True)
class Settings:
    # Secrets and URLs that may hold passwords stay out of repr(), so they never reach a log.
    database_url: str = field(repr=False)
    redis_url: str | None = field(repr=False)
    webhook_secrets: tuple[str, ...] = field(repr=False)
    stripe_api_key: str | None = field(repr=False)
    stripe_api_base: str | None
    api_token: str | None = field(repr=False)
    queue_name: str = DEFAULT_QUEUE
    max_body_bytes: int = DEFAULT_MAX_BODY
    max_attempts: int = 4
    # Signs the workspace's session cookie; None: a key kept in var/ (ingest/security.py).
    secret_key: str | None = field(default=None, repr=False)
    # Send the session cookie only over HTTPS (set where the workspace is served behind TLS).
    cookie_secure: bool = False
    # Relevant events between a customer's replay checkpoints; None: the processing's default.
    checkpoint_every: int | None = None

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if env is None else env
        secrets = tuple(
            s.strip() for s in env.get("STRIPE_WEBHOOK_SECRET", "").split(",") if s.strip()
        )
        for entry in secrets:
            try:
                parse_secret(entry)
            except ValueError as problem:
                raise ConfigError(f"STRIPE_WEBHOOK_SECRET: {problem}") from None
        return cls(
            database_url=env.get("DATABASE_URL") or default_database_url(),
            redis_url=env.get("REDIS_URL") or None,
            webhook_secrets=secrets,
            stripe_api_key=env.get("STRIPE_API_KEY") or None,
            stripe_api_base=env.get("STRIPE_API_BASE") or None,
            api_token=env.get("MRR_API_TOKEN") or None,
            queue_name=env.get("MRR_QUEUE") or DEFAULT_QUEUE,
            max_body_bytes=_positive_int(env, "MRR_MAX_BODY_BYTES", DEFAULT_MAX_BODY),
            max_attempts=_positive_int(env, "MRR_MAX_ATTEMPTS", 4),
            secret_key=env.get("MRR_SECRET_KEY") or None,
            cookie_secure=_flag(env, "MRR_COOKIE_SECURE"),
            checkpoint_every=_positive_int(env, "MRR_CHECKPOINT_EVERY", 0) or None,
        )


def default_database_url() -> str:
    return f"sqlite:///{DEFAULT_SQLITE_PATH.resolve()}"


def _flag(env: Mapping[str, str], name: str) -> bool:
    raw = (env.get(name) or "").strip().lower()
    if raw in ("", "0", "false", "no", "off"):
        return False
    if raw in ("1", "true", "yes", "on"):
        return True
    raise ConfigError(f"{name} must be true or false, got {raw!r}")


def _positive_int(env: Mapping[str, str], name: str, default: int) -> int:
    raw = env.get(name)
    if not raw:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ConfigError(f"{name} must be a whole number, got {raw!r}") from None
    if value <= 0:
        raise ConfigError(f"{name} must be positive, got {value}")
    return value


def redact_url(url: str) -> str:
    """A database or Redis URL with any password hidden, for logs and banners."""
    from sqlalchemy.engine import make_url

    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:
        return url.split("@")[-1]
