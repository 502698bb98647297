"""`mrr report`, `mrr cohorts`, `mrr customers`, `mrr ledger`, `mrr replay`, `mrr fx load`: the
accountant's commands."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import replace
from typing import Any, TextIO, TypeVar

import click
from sqlalchemy import Engine

from ledger.processing import replays
from ledger.processing import segments as segment_rebuild
from ledger.processing.apply import DATA_ERRORS, StoredReferences
from ledger.reporting import (
    customer_months,
    exports,
    forecast_cells,
    fx,
    projector,
    queries,
    segment_exports,
)
from ledger.reporting.accounts import Breakdown, build_breakdown
from ledger.reporting.cohorts import METRICS, build_cohorts
from ledger.reporting.modes import choose_mode
from ledger.reporting.reports import (
    BadInput,
    build_report,
    parse_account,
    parse_month,
    report_query,
)
from ledger.reporting.segments import SegmentQuery, build_segments, segment_query
from ledger.rules.entries import Category
from ledger.rules.timeline import MissingReference
from ledger.settings import ConfigError, Settings
from ledger.storage import commitments as kept_commitments
from ledger.storage import replay_checkpoints as checkpoints
from ledger.storage.db import make_engine

FLAGS = {
    "from": "--from",
    "to": "--to",
    "currency": "--currency",
    "reporting_currency": "--reporting-currency",
    "as_of": "--as-of",
    "mode": "--mode",
    "source": "--source",
    "month": "--month",
    "customer": "--customer",
    "subscription": "--subscription",
    "by": "--by",
    "where": "--where",
    "metric": "--metric",
}
FORMATS = click.Choice(["table", "json", "csv"])
MODE_OPTION = click.option(
    "--mode",
    type=click.Choice(["live", "test"]),
    help="Live (the default, or test when there is no live data) or test-mode data; never "
    "both in one figure.",
)
SOURCE_OPTION = click.option(
    "--source",
    metavar="ACCOUNT",
    help="Only this Stripe account (acct_..., or 'default' for the endpoint's own); "
    "default: every account together.",
)
_Found = TypeVar("_Found")


def _emit(
    fmt: str,
    found: _Found,
    as_json: Callable[[_Found], Any],
    as_csv: Callable[[_Found], Iterable[str]],
    as_table: Callable[[_Found], str],
) -> None:
    """One answer in the format asked: JSON, CSV lines or a text table."""
    if fmt == "json":
        click.echo(json.dumps(as_json(found), indent=2))
    elif fmt == "csv":
        click.echo("".join(as_csv(found)), nl=False)
    else:
        click.echo(as_table(found), nl=False)


def _settings() -> Settings:
    try:
        return Settings.from_env()
    except ConfigError as problem:
        raise click.UsageError(str(problem)) from None


@contextmanager
def _engine() -> Iterator[Engine]:
    engine = make_engine(_settings().database_url)
    try:
        yield engine
    finally:
        engine.dispose()


def _bad(field: str, message: str) -> click.BadParameter:
    return click.BadParameter(message, param_hint=f"'{FLAGS.get(field, field)}'")


@click.command()
@click.option("--from", "first", required=True, metavar="YYYY-MM", help="First month.")
@click.option("--to", "last", required=True, metavar="YYYY-MM", help="Last month.")
@click.option("--currency", help="Currency of the entries (needed when the ledger has several).")
@click.option("--reporting-currency", help="Convert every entry into this currency (mrr fx load).")
@click.option("--as-of", metavar="TIMESTAMP", help="Report what the ledger said at this time.")
@click.option(
    "--by",
    metavar="DIMENSION",
    help="One bridge per segment: plan, product, interval, country or metadata.KEY; or "
    "account: one per Stripe account of the mode, then all together (exit 1 if they differ).",
)
@click.option(
    "--where",
    "where",
    multiple=True,
    metavar="DIMENSION=VALUE",
    help="Only this segment (repeatable), e.g. plan=price_123.",
)
@MODE_OPTION
@SOURCE_OPTION
@click.option("--format", "fmt", type=FORMATS, default="table", show_default=True)
def report(
    first: str,
    last: str,
    currency: str | None,
    reporting_currency: str | None,
    as_of: str | None,
    by: str | None,
    where: tuple[str, ...],
    mode: str | None,
    source: str | None,
    fmt: str,
) -> None:
    """Monthly MRR balances (the MRR bridge), one currency, one mode, months FROM..TO."""
    try:
        query = report_query(
            first,
            last,
            currency=currency,
            reporting_currency=reporting_currency,
            as_of=as_of,
            mode=mode,
            account=source,
        )
        if by == "account" and not where:
            with _engine() as engine:
                _breakdown(build_breakdown(engine, query), fmt)
            return
        if by is not None or where:
            if as_of is not None or reporting_currency is not None:
                raise BadInput("by", "segments are reported from the stored figures: not with "
                               "--as-of or --reporting-currency")  # fmt: skip
            _segments(segment_query(query, by, where), fmt)
            return
        with _engine() as engine:
            found = build_report(engine, query)
    except BadInput as problem:
        raise _bad(problem.field, problem.message) from None
    if found.mode.note is not None:
        click.echo(f"note: {found.mode.note} (--mode live to insist)", err=True)
    for warning in found.warnings:
        click.echo(f"warning: {warning}", err=True)
    _emit(fmt, found, exports.report_json, exports.report_csv, exports.report_table)


def _breakdown(found: Breakdown, fmt: str) -> None:
    if found.consolidated.mode.note is not None:
        click.echo(f"note: {found.consolidated.mode.note} (--mode live to insist)", err=True)
    _emit(fmt, found, exports.breakdown_json, exports.breakdown_csv, exports.breakdown_table)
    if found.mismatches:
        raise SystemExit(1)


def _segments(query: SegmentQuery, fmt: str) -> None:
    with _engine() as engine:
        found = build_segments(engine, query)
    _emit(
        fmt,
        found,
        segment_exports.segment_json,
        segment_exports.segment_csv,
        segment_exports.segment_table,
    )


@click.command()
@click.option("--from", "first", required=True, metavar="YYYY-MM", help="First cohort month.")
@click.option("--to", "last", required=True, metavar="YYYY-MM", help="Last month followed.")
@click.option("--currency", help="Currency of the entries (needed when the ledger has several).")
@click.option(
    "--metric", type=click.Choice(METRICS), default="customers", show_default=True,
    help="What the table shows: the share of customers retained, or of MRR.",
)  # fmt: skip
@click.option(
    "--by",
    metavar="DIMENSION",
    help="Cohorts per segment: plan, product, interval, country or metadata.KEY.",
)
@MODE_OPTION
@SOURCE_OPTION
@click.option("--format", "fmt", type=FORMATS, default="table", show_default=True)
def cohorts(
    first: str,
    last: str,
    currency: str | None,
    metric: str,
    by: str | None,
    mode: str | None,
    source: str | None,
    fmt: str,
) -> None:
    """Customers by the month of their first paid MRR, and what each cohort keeps after."""
    try:
        with _engine() as engine:
            found = build_cohorts(
                engine,
                first,
                last,
                currency=currency,
                metric=metric,
                by=by,
                mode=mode,
                source=source,
            )
    except BadInput as problem:
        raise _bad(problem.field, problem.message) from None
    if found.mode.note is not None:
        click.echo(f"note: {found.mode.note} (--mode live to insist)", err=True)
    _emit(
        fmt,
        found,
        segment_exports.cohort_json,
        segment_exports.cohort_csv,
        segment_exports.cohort_table,
    )


@click.command("customers")
@click.option("--from", "first", required=True, metavar="YYYY-MM", help="First month.")
@click.option("--to", "last", required=True, metavar="YYYY-MM", help="Last month.")
@click.option("--currency", help="Currency of the entries (needed when the ledger has several).")
@click.option(
    "--top", type=click.IntRange(1, 1000), help="Instead, the N largest customers at --to."
)
@click.option(
    "--format", "fmt", type=click.Choice(["csv", "json"]), default="csv", show_default=True
)
@MODE_OPTION
@SOURCE_OPTION
def customers_cmd(
    first: str,
    last: str,
    currency: str | None,
    top: int | None,
    fmt: str,
    mode: str | None,
    source: str | None,
) -> None:
    """MRR per customer per month (one row each: active and delinquent MRR, the month's
    movements, plans); its sums are the report's closing and delinquent MRR."""
    try:
        query = report_query(first, last, currency=currency, mode=mode, account=source)
        with _engine() as engine:
            plain = build_report(engine, query)
            account = query.account
            chosen, livemode = plain.main.currency, plain.mode.livemode
            if plain.mode.note is not None:
                click.echo(f"note: {plain.mode.note} (--mode live to insist)", err=True)
            with engine.begin() as conn:
                customer_months.catch_up(conn)
            with engine.connect() as conn:
                if top is not None:
                    found = customer_months.top(
                        conn, query.last, chosen, top, livemode=livemode, account=account
                    )
                    click.echo(json.dumps(segment_exports.top_json(found), indent=2))
                    return
                rows = customer_months.monthly(
                    conn, query.first, query.last, chosen, livemode=livemode, account=account
                )
                if fmt == "csv":
                    for line in segment_exports.customer_months_csv(rows):
                        click.echo(line, nl=False)
                    return
                click.echo('{"currency": ' + json.dumps(chosen) + ', "rows": [', nl=False)
                for n, row in enumerate(rows):
                    fields = segment_exports.customer_month_fields(row)
                    click.echo(("," if n else "") + "\n  " + json.dumps(fields), nl=False)
                click.echo("\n]}")
    except BadInput as problem:
        raise _bad(problem.field, problem.message) from None


@click.command("ledger")
@click.option("--month", metavar="YYYY-MM", help="Entries effective in this month.")
@click.option("--customer", help="A Stripe customer id.")
@click.option("--subscription", help="A Stripe subscription id.")
@click.option("--category", type=click.Choice([c.value for c in Category]))
@MODE_OPTION
@click.option("--source", metavar="ACCOUNT", help="Only this Stripe account's entries.")
@click.option("--format", "fmt", type=FORMATS, default="table", show_default=True)
def ledger_cmd(
    month: str | None,
    customer: str | None,
    subscription: str | None,
    category: str | None,
    mode: str | None,
    source: str | None,
    fmt: str,
) -> None:
    """Ledger entries with the Stripe events they came from (reversals included)."""
    try:
        account = None if source is None else parse_account(source)
        filters = queries.LedgerFilter(
            month=None if month is None else parse_month(month, "month"),
            customer_id=None if customer is None else queries.parse_id(customer, "customer"),
            subscription_id=(
                None if subscription is None else queries.parse_id(subscription, "subscription")
            ),
            category=None if category is None else Category(category),
            account=account,
        )
    except (BadInput, queries.BadFilter) as problem:
        raise _bad(problem.field, problem.message) from None
    with _engine() as engine, engine.connect() as conn:
        chosen = choose_mode(conn, None if mode is None else mode == "live")
        if chosen.note is not None:
            click.echo(f"note: {chosen.note} (--mode live to insist)", err=True)
        rows = queries.stream(conn, replace(filters, livemode=chosen.livemode))
        if fmt == "csv":
            for line in exports.ledger_csv(rows):
                click.echo(line, nl=False)
        elif fmt == "json":
            click.echo('{"entries": [', nl=False)
            for n, row in enumerate(rows):
                prefix = "," if n else ""
                click.echo(prefix + "\n  " + json.dumps(exports.ledger_fields(row)), nl=False)
            click.echo("\n]}")
        else:
            for row in rows:
                click.echo(exports.ledger_table_line(row))


@click.command()
@click.option(
    "--customers",
    is_flag=True,
    help="Instead, replay each customer's events through the rules and rebuild its replay "
    "checkpoints (the ledger is not changed).",
)
def replay(customers: bool) -> None:
    """Rebuild the monthly balances from the whole ledger (--customers: replay checkpoints)."""
    if customers:
        _rebuild_checkpoints()
        return
    with _engine() as engine:
        with engine.begin() as conn:
            read = projector.replay(conn)
        click.echo(f"replayed {read} ledger entries into the monthly balances")
        with engine.begin() as conn:
            count = customer_months.replay(conn)
        click.echo(f"rebuilt the months of {count} customers from the ledger")
        with engine.begin() as conn:
            count = segment_rebuild.rebuild(conn)
        click.echo(f"replayed {count} customers' events into their segments")
        with engine.begin() as conn:
            read = forecast_cells.replay(conn)
        click.echo(f"summed {read} ledger entries into the forecast's cells")
        with engine.begin() as conn:
            count = kept_commitments.rebuild(conn)
        click.echo(f"folded {count} customers' subscription objects into committed MRR")


def _rebuild_checkpoints() -> None:
    every = _settings().checkpoint_every
    made, waiting, problems = 0, 0, []
    with _engine() as engine:
        with engine.connect() as conn:
            units = checkpoints.units(conn)
        for unit in units:
            try:
                with engine.begin() as conn:
                    refs = StoredReferences(conn)
                    count, in_line = replays.rebuild(conn, unit, refs, every=every)
            except (MissingReference, *DATA_ERRORS) as problem:
                reason = f"{type(problem).__name__}: {problem}"
                problems.append(f"{unit.customer_id}: not replayed ({reason})")
                continue
            made += count
            waiting += not in_line
    click.echo(f"rebuilt {made} replay checkpoints for {len(units)} customers")
    if waiting:
        click.echo(
            f"{waiting} customers' ledgers differ from what the rules want (events not "
            "processed yet?): their checkpoints stop before the first difference",
            err=True,
        )
    for line in problems:
        click.echo(line, err=True)
    if problems:
        raise SystemExit(1)


@click.group("fx")
def fx_cmd() -> None:
    """Exchange rates for --reporting-currency."""


@fx_cmd.command("load")
@click.argument("rates_csv", type=click.File("r", encoding="utf-8"))
def fx_load(rates_csv: TextIO) -> None:
    """Load RATES_CSV (date,currency,rate: one unit of currency in the base currency)."""
    try:
        rates = fx.parse_rates(rates_csv)
    except fx.BadRates as problem:
        raise click.BadParameter(str(problem), param_hint="'RATES_CSV'") from None
    with _engine() as engine, engine.begin() as conn:
        count = fx.store_rates(conn, rates)
    currencies = sorted({r.currency for r in rates})
    click.echo(f"loaded {count} rates ({', '.join(currencies) or 'none'})")
