"""`mrr users add|list|disable`: the people who sign in to the workspace."""

from __future__ import annotations

import click

from ingest.passwords import hash_password, new_password
from ledger.storage import users as accounts
from ledger.storage.db import make_engine
from ledger.storage.schema import USER_ROLES
from scripts.settings_cli import load_settings


@click.group("users")
def users_cmd() -> None:
    """Workspace accounts."""


@users_cmd.command("add")
@click.argument("email")
@click.option("--role", type=click.Choice(USER_ROLES), default="viewer", show_default=True)
def add(email: str, role: str) -> None:
    """Create an account and print its initial password (shown once, stored only hashed)."""
    try:
        user, password = add_account(load_settings().database_url, email, role)
    except accounts.BadUser as problem:
        raise click.UsageError(str(problem)) from None
    click.echo(f"added {user.email} ({user.role})")
    click.echo(f"password: {password}")
    click.echo("it is shown only now: hand it over privately", err=True)


def add_account(database_url: str, email: str, role: str) -> tuple[accounts.User, str]:
    """A new account and its initial password; `accounts.BadUser` if it cannot be added."""
    password = new_password()
    engine = make_engine(database_url)
    try:
        with engine.begin() as conn:
            return accounts.add(conn, email, hash_password(password), role), password
    finally:
        engine.dispose()


@users_cmd.command("list")
def list_users() -> None:
    """Every account: email, role, state, last sign-in."""
    engine = make_engine(load_settings().database_url)
    with engine.connect() as conn:
        found = accounts.all_users(conn)
    for user in found:
        state = "active" if user.active else f"disabled {user.disabled_at:%Y-%m-%d}"
        last = "never" if user.last_sign_in_at is None else f"{user.last_sign_in_at:%Y-%m-%d %H:%M}"
        click.echo(f"{user.email}\t{user.role}\t{state}\tlast sign-in {last}")
    if not found:
        click.echo("no accounts: add one with `mrr users add EMAIL`", err=True)


@users_cmd.command("disable")
@click.argument("email")
def disable(email: str) -> None:
    """Disable an account: its sessions end at once and it can no longer sign in."""
    engine = make_engine(load_settings().database_url)
    try:
        with engine.begin() as conn:
            user = accounts.disable(conn, email)
    except accounts.BadUser as problem:
        raise click.UsageError(str(problem)) from None
    click.echo(f"disabled {user.email}")
