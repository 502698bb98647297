"""`mrr backfill` (and `scripts/backfill`): rebuild history from the Stripe API."""

from __future__ import annotations

import sys
from datetime import UTC, datetime

import click

from ledger.settings import ConfigError, Settings


def _date(value: datetime | None) -> int | None:
    return None if value is None else int(value.replace(tzinfo=UTC).timestamp())


@click.command("backfill")
@click.option(
    "--since",
    type=click.DateTime(formats=["%Y-%m-%d"]),
    help="Only history from this UTC date (YYYY-MM-DD); earlier state enters as of that day.",
)
@click.option("--customer", metavar="ID", help="Only this Stripe customer (cus_...), to check.")
@click.option(
    "--dry-run", is_flag=True, help="Print what would be stored and appended; write nothing."
)
@click.option("--resume", is_flag=True, help="Continue from the checkpoint of an interrupted run.")
@click.option(
    "--concurrency",
    type=click.IntRange(1, 64),
    default=4,
    show_default=True,
    help="Customers fetched and processed at once.",
)
@click.option(
    "--rps",
    type=click.FloatRange(min=0, min_open=True),
    default=25.0,
    show_default=True,
    help="Most Stripe API requests per second (25 is Stripe's test-mode limit).",
)
@click.option(
    "--via-queue",
    is_flag=True,
    help="Queue the stored events for the workers instead of processing them here.",
)
@click.option(
    "--mode",
    type=click.Choice(["live", "test"]),
    help="The key's mode, said explicitly: a test key against a ledger holding live data "
    "needs --mode test.",
)
def backfill(
    since: datetime | None,
    customer: str | None,
    dry_run: bool,
    resume: bool,
    concurrency: int,
    rps: float,
    via_queue: bool,
    mode: str | None,
) -> None:
    """Load Stripe history (customers, subscriptions, invoices, recent events) into the ledger.

    Needs STRIPE_API_KEY (read access); STRIPE_API_BASE points it at another server speaking
    Stripe's API. Safe to run again, and next to live webhooks: nothing counts twice.
    """
    from scripts.backfill import Backfill, BackfillError, Options, make_source

    if customer is not None and not customer.startswith("cus_"):
        raise click.BadParameter(
            f"{customer!r} is not a Stripe customer id (cus_...)", param_hint="--customer"
        )
    if dry_run and (resume or via_queue):
        raise click.UsageError(
            "--dry-run writes nothing, so it takes neither --resume nor --via-queue"
        )
    try:
        settings = Settings.from_env()
    except ConfigError as problem:
        raise click.UsageError(str(problem)) from None
    options = Options(
        since=_date(since),
        customer=customer,
        dry_run=dry_run,
        resume=resume,
        concurrency=concurrency,
        rps=rps,
        via_queue=via_queue,
        mode=mode,
    )
    try:
        source = make_source(settings, rps=rps)
        run = Backfill(settings, source, options, out=click.echo)
        summary = run.run()
    except BackfillError as problem:
        click.echo(f"backfill: {problem}", err=True)
        sys.exit(1)
    except KeyboardInterrupt:
        click.echo("backfill: interrupted; run again with --resume to continue", err=True)
        sys.exit(130)
    for line in summary.lines(dry_run):
        click.echo(line)
