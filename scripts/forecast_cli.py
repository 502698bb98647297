"""`mrr committed` and `mrr forecast`: committed MRR and the forecast with its backtest."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import click

from ledger.reporting import forecast_exports as exports
from ledger.reporting.committed import build_committed
from ledger.reporting.forecast import build_backtest, build_forecast
from ledger.reporting.reports import BadInput, parse_currency
from scripts.report_cli import FORMATS, _bad, _engine

REPORTING_CURRENCY = click.option(
    "--reporting-currency",
    help="Convert into this currency at one rate per currency (mrr fx load; docs/forecast.md).",
)


def _now() -> datetime:
    return datetime.now(UTC)


def _currencies(currency: str | None, reporting: str | None) -> tuple[str | None, str | None]:
    return (
        None if currency is None else parse_currency(currency, "currency"),
        None if reporting is None else parse_currency(reporting, "reporting_currency"),
    )


@click.command("committed")
@click.option("--months", default=12, show_default=True, help="Months ahead, this one first.")
@click.option("--currency", help="Currency (needed when the ledger has several).")
@REPORTING_CURRENCY
@click.option("--format", "fmt", type=FORMATS, default="table", show_default=True)
def committed_cmd(
    months: int, currency: str | None, reporting_currency: str | None, fmt: str
) -> None:
    """MRR already committed for the coming months, from what Stripe has scheduled."""
    try:
        chosen, reporting = _currencies(currency, reporting_currency)
        with _engine() as engine:
            found = build_committed(engine, _now(), months, chosen, reporting_currency=reporting)
    except BadInput as problem:
        raise _bad(problem.field, problem.message) from None
    if fmt == "json":
        click.echo(json.dumps(exports.committed_json(found), indent=2))
    elif fmt == "csv":
        click.echo(exports.committed_csv(found), nl=False)
    else:
        click.echo(exports.committed_table(found), nl=False)


@click.command("forecast")
@click.option("--months", default=12, show_default=True, help="Months ahead, this one first.")
@click.option("--currency", help="Currency (needed when the ledger has several).")
@click.option(
    "--backtest",
    is_flag=True,
    help="Instead, forecast from each past month as if it were the last and print the errors.",
)
@REPORTING_CURRENCY
@click.option("--format", "fmt", type=FORMATS, default="table", show_default=True)
def forecast_cmd(
    months: int, currency: str | None, backtest: bool, reporting_currency: str | None, fmt: str
) -> None:
    """Closing MRR for the coming months, with an 80% interval (docs/forecast.md)."""
    try:
        chosen, reporting = _currencies(currency, reporting_currency)
        with _engine() as engine:
            if backtest:
                tested = build_backtest(engine, _now(), chosen)
                if fmt == "json":
                    click.echo(json.dumps(exports.backtest_json(tested), indent=2))
                else:
                    click.echo(exports.backtest_table(tested), nl=False)
                return
            found = build_forecast(engine, _now(), months, chosen, reporting_currency=reporting)
    except BadInput as problem:
        raise _bad(problem.field, problem.message) from None
    if fmt == "json":
        click.echo(json.dumps(exports.forecast_json(found), indent=2))
    elif fmt == "csv":
        click.echo(exports.forecast_csv(found), nl=False)
    else:
        click.echo(exports.forecast_table(found), nl=False)
