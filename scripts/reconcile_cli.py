"""`mrr reconcile`: every subscription's MRR and standing in the ledger against Stripe's live
object; exit 1 when anything differs."""

from __future__ import annotations

import csv
import io
import json
import sys
from typing import IO

import click
import redis
import stripe
from sqlalchemy.exc import SQLAlchemyError

from ledger.backfill.reconcile import FIELDS, Difference
from ledger.settings import Settings
from ledger.storage.db import make_engine
from scripts.settings_cli import load_settings
from workers.reconcile import ENDED_WITHIN_DAYS, Options, Outcome, run
from workers.stripe_client import DEFAULT_RPS, connect

_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def _amount(standing: str, active: str, delinquent: str) -> str:
    if standing == "delinquent":
        return f"{standing} {delinquent}"
    return f"{standing} {active}" if standing == "active" else standing


def table(outcome: Outcome) -> list[str]:
    since = outcome.ended_since.date().isoformat()
    head = (
        f"checked {outcome.subscriptions} subscriptions (not ended, or ended since {since}) "
        f"with {outcome.requests} Stripe requests"
    )
    if not outcome.differences:
        return [head, "no difference: the ledger agrees with Stripe"]
    rows = [d.fields() for d in outcome.differences]
    cells = [
        (
            r["subscription_id"],
            r["customer_id"],
            _amount(r["ledger_standing"], r["ledger_mrr"], r["ledger_delinquent_mrr"]),
            _amount(r["stripe_standing"], r["stripe_mrr"], r["stripe_delinquent_mrr"]),
            r["currency"].upper(),
            r["cause"],
        )
        for r in rows
    ]
    titles = ("subscription", "customer", "ledger", "stripe", "cur", "likely cause")
    widths = [max(len(t), *(len(c[n]) for c in cells)) for n, t in enumerate(titles)]
    lines = [
        head,
        f"{len(rows)} differ:",
        "  ".join(t.ljust(w) for t, w in zip(titles, widths, strict=True)).rstrip(),
    ]
    for cell, row in zip(cells, rows, strict=True):
        lines.append("  ".join(c.ljust(w) for c, w in zip(cell, widths, strict=True)).rstrip())
        lines.append(f"    {row['detail']}")
    return lines


def as_json(outcome: Outcome) -> dict[str, object]:
    return {
        "checked_at": outcome.checked_at.isoformat(),
        "ended_since": outcome.ended_since.isoformat(),
        "subscriptions": outcome.subscriptions,
        "differences": [d.fields() for d in outcome.differences],
        "stored": len(outcome.stored),
        "requests": outcome.requests,
        "ok": not outcome.differences,
    }


def _cell(value: str) -> str:
    # A spreadsheet runs a text cell starting with "=" as a formula; ids come from Stripe.
    return "'" + value if value.startswith(_FORMULA_START) else value


def as_csv(differences: list[Difference]) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(FIELDS)
    for found in differences:
        fields = found.fields()
        writer.writerow([_cell(fields[name]) for name in FIELDS])
    return out.getvalue()


class _Listing:
    """Subscriptions listed so far, on one line of a terminal; nothing elsewhere."""

    def __init__(self, stream: IO[str]) -> None:
        self.stream = stream
        self.tty = stream.isatty()

    def __call__(self, listed: int, requests: int) -> None:
        if self.tty:
            self.stream.write(f"\rreconcile: {listed} subscriptions, {requests} requests")
            self.stream.flush()

    def close(self) -> None:
        if self.tty:
            self.stream.write("\n")


@click.command("reconcile")
@click.option(
    "--ended-within",
    "days",
    type=click.IntRange(min=0),
    default=ENDED_WITHIN_DAYS,
    show_default=True,
    metavar="DAYS",
    help="Also check subscriptions that ended in the last DAYS days.",
)
@click.option("--format", "fmt", type=click.Choice(["table", "json", "csv"]), default="table")
@click.option(
    "--fix",
    is_flag=True,
    help="Store each differing live object as an event dated now, for the workers to process.",
)
@click.option(
    "--rps",
    type=click.FloatRange(min=0, min_open=True),
    default=DEFAULT_RPS,
    show_default=True,
    help="Most Stripe API requests per second.",
)
def reconcile_cmd(days: int, fmt: str, fix: bool, rps: float) -> None:
    """Compare each subscription's MRR and standing in the ledger with Stripe's live object.

    Lists every subscription not ended (and those ended in the last --ended-within days),
    computes its MRR by the same rules, and prints each difference with its likely cause.
    Exits 1 when anything differs (also with --fix: run it again after the workers caught up).
    """
    from scripts.backfill import explain

    settings = load_settings()
    if not settings.stripe_api_key:
        raise click.UsageError("STRIPE_API_KEY is not set: reconcile reads Stripe's API")
    engine = make_engine(settings.database_url)
    listing = _Listing(sys.stderr)
    try:
        outcome = run(
            engine,
            connect(settings, rps=rps),
            Options(ended_within_days=days, fix=fix),
            enqueue=lambda ids: _enqueue(settings, ids),
            progress=listing,
        )
    except stripe.StripeError as problem:
        listing.close()
        click.echo(f"reconcile: {explain(problem, settings)}", err=True)
        sys.exit(2)
    except SQLAlchemyError as problem:
        listing.close()
        click.echo(
            f"reconcile: cannot use the database ({type(problem).__name__}): check "
            "DATABASE_URL and run `mrr db upgrade`",
            err=True,
        )
        sys.exit(2)
    listing.close()
    if fmt == "json":
        click.echo(json.dumps(as_json(outcome), indent=2))
    elif fmt == "csv":
        click.echo(as_csv(outcome.differences), nl=False)
    else:
        click.echo("\n".join(table(outcome)))
    if fix:
        click.echo(
            f"stored {len(outcome.stored)} reconciliation events; the workers process them",
            err=True,
        )
    sys.exit(1 if outcome.differences else 0)


def _enqueue(settings: Settings, ids: list[int]) -> None:
    from workers.queue import connect as connect_redis
    from workers.queue import enqueue_batches, make_queue

    try:
        enqueue_batches(make_queue(settings, connect_redis(settings)), ids)
    except (redis.exceptions.RedisError, OSError) as problem:
        click.echo(
            f"reconcile: Redis unavailable ({type(problem).__name__}); a worker's sweeper "
            "queues the stored events",
            err=True,
        )
