"""`mrr db create-app-role NAME`: the restricted PostgreSQL role the service should run as."""

from __future__ import annotations

import os

import click

from ledger.storage.app_role import AppRoleError, check_role_name, create_app_role
from ledger.storage.db import make_engine


def _role_name(_ctx: click.Context, _param: click.Parameter, value: str) -> str:
    try:
        return check_role_name(value)
    except AppRoleError as problem:
        raise click.BadParameter(str(problem)) from None


@click.command("create-app-role")
@click.argument("name", callback=_role_name)
@click.option(
    "--password-env",
    metavar="VAR",
    help="Set the role's password from this environment variable (never from the command line).",
)
def create_app_role_cmd(name: str, password_env: str | None) -> None:
    """Create or update role NAME: INSERT and SELECT only on the ledger (PostgreSQL)."""
    from scripts.settings_cli import load_settings

    password = None
    if password_env is not None:
        password = os.environ.get(password_env)
        if not password:
            raise click.BadParameter(
                f"environment variable {password_env} is not set or empty",
                param_hint="--password-env",
            )
    settings = load_settings()
    engine = make_engine(settings.database_url)
    try:
        grants = create_app_role(engine, name, password)
    except AppRoleError as problem:
        raise click.UsageError(str(problem)) from None
    finally:
        engine.dispose()
    click.echo(f"role {grants.role} can log in{' with a password' if password else ''}:")
    click.echo(f"  SELECT, INSERT (append only): {', '.join(grants.append_only)}")
    click.echo(f"  SELECT: {', '.join(grants.read_only)}")
    click.echo(f"  SELECT, INSERT, UPDATE: {', '.join(grants.working)}")
    click.echo(f"  SELECT, INSERT, UPDATE, DELETE (projections): {', '.join(grants.rebuilt)}")
