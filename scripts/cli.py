"""`mrr`: one click group whose commands are thin calls into ledger/, workers/ and ingest/."""

from __future__ import annotations

import json
import logging
import os
import sys
from datetime import timedelta

import click

from ledger import logs
from ledger.settings import ConfigError
from ledger.storage import inbox
from ledger.storage.db import make_engine
from ledger.storage.schema import InboxStatus
from scripts.app_role_cli import create_app_role_cmd
from scripts.backfill_cli import backfill
from scripts.explain_cli import explain_cmd
from scripts.forecast_cli import committed_cmd, forecast_cmd
from scripts.reconcile_cli import reconcile_cmd
from scripts.report_cli import cohorts, customers_cmd, fx_cmd, ledger_cmd, replay, report
from scripts.settings_cli import load_settings
from scripts.status_cli import status_cmd
from scripts.users_cli import users_cmd
from scripts.verify_cli import verify

log = logging.getLogger(__name__)


@click.group()
@click.option("-v", "--verbose", is_flag=True, help="Log at INFO level.")
def main(verbose: bool) -> None:
    """MRR Ledger: Stripe events to an append-only MRR ledger."""
    try:
        logs.configure(os.environ, logging.INFO if verbose else logging.WARNING)
    except ConfigError as problem:
        raise click.UsageError(str(problem)) from None


@main.group()
def db() -> None:
    """Database schema."""


@db.command("upgrade")
@click.option("--revision", default="head", show_default=True)
def db_upgrade(revision: str) -> None:
    """Apply migrations (alembic) to DATABASE_URL."""
    from ledger.settings import redact_url
    from ledger.storage import migrate

    settings = load_settings()
    migrate.upgrade(settings.database_url, revision)
    click.echo(f"database {redact_url(settings.database_url)} is at revision {revision}")


@main.command()
@click.option("--burst", is_flag=True, help="Queue every pending row, drain the queue, then exit.")
@click.option("--requeue-now", is_flag=True, help="Queue every pending inbox row at start.")
def worker(burst: bool, requeue_now: bool) -> None:
    """Run an RQ worker on the stripe-events queue (plus the inbox sweeper, and the reconcile
    schedule when MRR_RECONCILE_EVERY is set)."""
    from workers.reconcile_schedule import every_from_env
    from workers.worker import SweepTiming, run

    try:
        sweep = SweepTiming.from_env()
        every = every_from_env()
    except ConfigError as problem:
        raise click.UsageError(str(problem)) from None
    if not burst:
        _serve_worker_metrics()
    run(
        load_settings(),
        burst=burst,
        requeue_now=requeue_now,
        sweep=sweep,
        reconcile_every=every,
    )


def _serve_worker_metrics() -> None:
    """The worker's own /metrics when MRR_WORKER_METRICS_PORT is set."""
    from workers.metrics_endpoint import MetricsEndpoint, serve

    try:
        endpoint = MetricsEndpoint.from_env()
    except ConfigError as problem:
        raise click.UsageError(str(problem)) from None
    if endpoint is None:
        return
    try:
        serve(endpoint)
    except OSError as problem:
        raise click.ClickException(
            f"cannot serve worker metrics on {endpoint.address}:{endpoint.port}: {problem}"
        ) from None
    log.info("worker metrics on http://%s:%s/metrics", endpoint.address, endpoint.port)


@main.command()
@click.option(
    "--older-than",
    type=click.IntRange(min=0),
    default=60,
    show_default=True,
    help="Only rows pending for at least this many seconds.",
)
def requeue(older_than: int) -> None:
    """Queue inbox rows that are still pending (the sweeper, once)."""
    from workers.queue import connect, make_queue
    from workers.sweeper import requeue_pending

    settings = load_settings()
    queue = make_queue(settings, connect(settings))
    count = requeue_pending(
        make_engine(settings.database_url), queue, timedelta(seconds=older_than)
    )
    click.echo(f"queued {count} pending inbox rows")


@main.group(invoke_without_command=True)
@click.option("--status", type=click.Choice([s.value for s in InboxStatus]))
@click.option("--limit", type=click.IntRange(1, 10_000), default=50, show_default=True)
@click.option("--json", "as_json", is_flag=True, help="One JSON object per line.")
@click.pass_context
def inbox_cmd(ctx: click.Context, status: str | None, limit: int, as_json: bool) -> None:
    """List stored events (`mrr inbox --status failed`), or retry them."""
    if ctx.invoked_subcommand is not None:
        return
    engine = make_engine(load_settings().database_url)
    with engine.connect() as conn:
        rows = inbox.list_rows(
            conn, status=None if status is None else InboxStatus(status), limit=limit
        )
        counts = inbox.status_counts(conn)
    for row in rows:
        if as_json:
            fields = {k: getattr(row, k) for k in ("id", "event_id", "event_type", "created")}
            fields |= {"customer_id": row.customer_id, "status": row.status, "error": row.error}
            click.echo(json.dumps(fields))
        else:
            error = f"  {row.error}" if row.error else ""
            click.echo(
                f"{row.id:>8}  {row.status:<9}  {row.event_id}  {row.event_type}  "
                f"{row.customer_id or '-'}{error}"
            )
    if not as_json:
        summary = ", ".join(f"{n} {s}" for s, n in sorted(counts.items())) or "empty"
        click.echo(f"inbox: {summary}", err=True)


main.add_command(inbox_cmd, name="inbox")
main.add_command(backfill)


@inbox_cmd.command("retry")
@click.argument("ids", nargs=-1, type=click.IntRange(min=1))
@click.option("--all-failed", is_flag=True, help="Retry every failed row.")
def inbox_retry(ids: tuple[int, ...], all_failed: bool) -> None:
    """Queue failed inbox rows again: `mrr inbox retry ID...` or `--all-failed`."""
    from workers.queue import connect, enqueue_batches, make_queue

    if bool(ids) == all_failed:
        raise click.UsageError("give inbox ids or --all-failed (one of the two)")
    settings = load_settings()
    engine = make_engine(settings.database_url)
    with engine.begin() as conn:
        chosen = inbox.failed_ids(conn) if all_failed else list(ids)
        changed = inbox.reset_for_retry(conn, chosen)
    not_failed = sorted(set(chosen) - set(changed))
    if not_failed:
        click.echo(f"not failed (left alone): {', '.join(map(str, not_failed))}", err=True)
    enqueue_batches(make_queue(settings, connect(settings)), changed)
    click.echo(f"queued {len(changed)} inbox rows again")


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", type=click.IntRange(1, 65535), default=8000, show_default=True)
@click.option("--no-demo", is_flag=True, help="Do not load demo data into an empty ledger.")
def up(host: str, port: int, no_demo: bool) -> None:
    """Run web + worker locally (SQLite and an embedded Redis unless configured)."""
    from scripts.local import run_local

    sys.exit(run_local(load_settings(), host=host, port=port, demo=not no_demo))


main.add_command(explain_cmd)
main.add_command(report)
main.add_command(committed_cmd)
main.add_command(forecast_cmd)
main.add_command(cohorts)
main.add_command(customers_cmd, name="customers")
main.add_command(ledger_cmd, name="ledger")
main.add_command(replay)
main.add_command(fx_cmd, name="fx")
main.add_command(verify)
main.add_command(status_cmd)
main.add_command(reconcile_cmd)
db.add_command(create_app_role_cmd)
main.add_command(users_cmd)

if __name__ == "__main__":
    main()
