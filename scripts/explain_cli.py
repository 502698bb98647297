"""`mrr explain ENTRY_ID`."""

from __future__ import annotations

import json

import click

from ledger.reporting.explain import explain, render
from ledger.storage.db import make_engine
from scripts.settings_cli import load_settings


@click.command("explain")
@click.argument("entry_id", type=click.IntRange(min=1))
@click.option("--json", "as_json", is_flag=True, help="Print the explanation as JSON.")
def explain_cmd(entry_id: int, as_json: bool) -> None:
    """Print an entry, its Stripe event, the states before and after, and the arithmetic."""
    engine = make_engine(load_settings().database_url)
    with engine.connect() as conn:
        found = explain(conn, entry_id)
    if found is None:
        raise click.BadParameter(f"no ledger entry with id {entry_id}", param_hint="ENTRY_ID")
    click.echo(json.dumps(found, indent=2, default=str) if as_json else render(found))
