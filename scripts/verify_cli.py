"""`mrr verify`: recompute the ledger's hash chain and name the first row that does not match."""

from __future__ import annotations

import click

from ledger.storage.chain import verify as verify_chain
from ledger.storage.db import make_engine


@click.command()
def verify() -> None:
    """Recompute the ledger's hash chain; exit 1 at the first row that does not match."""
    from scripts.settings_cli import load_settings

    engine = make_engine(load_settings().database_url)
    try:
        with engine.connect() as conn:
            verdict = verify_chain(conn)
    finally:
        engine.dispose()
    if verdict.problem is None:
        click.echo(f"ok: {verdict.verified} rows verified (chain head {verdict.head})")
        return
    problem = verdict.problem
    where = f" (chain position {problem.seq})" if problem.seq is not None else ""
    click.echo(
        f"MISMATCH at ledger entry {problem.entry_id}{where}: {problem.kind.value}: "
        f"{problem.detail}; {verdict.verified} rows before it verified"
    )
    raise SystemExit(1)
