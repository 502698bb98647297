"""Settings for CLI commands: a configuration problem is a usage error that names it."""

from __future__ import annotations

import click

from ledger.settings import ConfigError, Settings


def load_settings() -> Settings:
    try:
        return Settings.from_env()
    except ConfigError as problem:
        raise click.UsageError(str(problem)) from None
