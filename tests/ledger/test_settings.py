"""Configuration from the environment."""

from __future__ import annotations

import pytest

from ledger.settings import ConfigError, Settings


def test_defaults_work_on_a_laptop() -> None:
    found = Settings.from_env({})
    assert found.database_url.startswith("sqlite:///") and found.database_url.endswith(
        "var/mrr.sqlite3"
    )
    assert found.redis_url is None and found.webhook_secrets == ()
    assert (found.queue_name, found.max_body_bytes) == ("stripe-events", 1024 * 1024)
    assert found.checkpoint_every is None  # the processing's own default


def test_checkpoint_spacing_from_the_environment() -> None:
    assert Settings.from_env({"MRR_CHECKPOINT_EVERY": "2"}).checkpoint_every == 2
    with pytest.raises(ConfigError, match="MRR_CHECKPOINT_EVERY must be positive"):
        Settings.from_env({"MRR_CHECKPOINT_EVERY": "0"})


def test_several_webhook_secrets_for_a_rotation() -> None:
    found = Settings.from_env({"STRIPE_WEBHOOK_SECRET": " whsec_old , whsec_new ,"})
    assert found.webhook_secrets == ("whsec_old", "whsec_new")


def test_secrets_stay_out_of_repr() -> None:
    env = {
        "DATABASE_URL": "postgresql://mrr:db-pass@db/mrr",
        "REDIS_URL": "redis://:redis-pass@cache:6379/0",
        "STRIPE_WEBHOOK_SECRET": "whsec_secret",
        "STRIPE_API_KEY": "sk_live_secret",
        "MRR_API_TOKEN": "token-secret",
    }
    shown = repr(Settings.from_env(env))
    assert not any(secret in shown for secret in ("db-pass", "redis-pass", "secret"))


@pytest.mark.parametrize(("value", "message"), [("lots", "whole number"), ("0", "positive")])
def test_bad_numbers_name_the_variable(value: str, message: str) -> None:
    with pytest.raises(ConfigError, match=f"MRR_MAX_BODY_BYTES must be .*{message}"):
        Settings.from_env({"MRR_MAX_BODY_BYTES": value})
