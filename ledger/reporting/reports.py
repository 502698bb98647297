"""Monthly balance reports: what the CLI and the HTTP API ask for, validated, then computed.

Three sources, one result: the stored totals (brought up to date first: the usual case),
or the ledger itself, streamed, when the report is "as known at" a past time or converted
into a reporting currency.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import UTC, date, datetime

from sqlalchemy import Connection, Engine, false, true

from ledger.reporting import fx, projector
from ledger.reporting.balances import MonthBalance, MonthTotals, Posting, Projection, balances
from ledger.reporting.modes import ModeChoice, choose_mode
from ledger.rules.months import BadMonth, Month, month_index
from ledger.rules.sources import parse_mode
from ledger.storage.schema import ledger_entries

MAX_MONTHS = 1200
_CURRENCY = re.compile(r"[a-z]{3}")
_ACCOUNT = re.compile(r"acct_[A-Za-z0-9]{1,250}")


class BadInput(ValueError):
    """A request the report cannot answer; `field` is the parameter, the message the problem."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field
        self.message = message


@dataclass(frozen=True, slots=True)
class ReportQuery:
    first: Month
    last: Month
    currency: str | None = None
    reporting_currency: str | None = None
    as_of: datetime | None = None
    livemode: bool | None = None  # None: live, or test if there is no live data (modes.py)
    account: str | None = None  # None: every account together


@dataclass(frozen=True, slots=True)
class CurrencyReport:
    currency: str
    months: list[MonthBalance]


@dataclass(frozen=True, slots=True)
class Report:
    query: ReportQuery
    main: CurrencyReport
    unconverted: list[CurrencyReport] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    mode: ModeChoice = field(default_factory=lambda: ModeChoice(True))


# --- validating what was asked -----------------------------------------------------------


def parse_month(text: str, name: str) -> Month:
    try:
        return Month.parse(text)
    except BadMonth as problem:
        raise BadInput(name, str(problem)) from None


def parse_currency(text: str, name: str) -> str:
    code = text.strip().lower()
    if not _CURRENCY.fullmatch(code):
        raise BadInput(name, f"{text!r} is not a 3-letter currency code")
    return code


def parse_as_of(text: str, name: str = "as_of") -> datetime:
    """An ISO 8601 date or timestamp; without an offset it is UTC."""
    try:
        moment = datetime.fromisoformat(text.strip())
    except ValueError:
        raise BadInput(name, f"{text!r} is not an ISO 8601 timestamp") from None
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def report_query(
    first: str,
    last: str,
    *,
    currency: str | None = None,
    reporting_currency: str | None = None,
    as_of: str | None = None,
    mode: str | None = None,
    account: str | None = None,
) -> ReportQuery:
    start, end = parse_month(first, "from"), parse_month(last, "to")
    if start > end:
        raise BadInput("from", f"from {start} is after to {end}")
    if end.index - start.index >= MAX_MONTHS:
        raise BadInput("to", f"at most {MAX_MONTHS} months in one report")
    return ReportQuery(
        first=start,
        last=end,
        currency=None if currency is None else parse_currency(currency, "currency"),
        reporting_currency=(
            None
            if reporting_currency is None
            else parse_currency(reporting_currency, "reporting_currency")
        ),
        as_of=None if as_of is None else parse_as_of(as_of),
        livemode=None if mode is None else parse_mode_arg(mode),
        account=None if account is None else parse_account(account),
    )


def parse_mode_arg(text: str, name: str = "mode") -> bool:
    try:
        return parse_mode(text)
    except ValueError as problem:
        raise BadInput(name, str(problem)) from None


def parse_account(text: str, name: str = "source") -> str:
    """A Stripe account id (`acct_…`), or "" (written `default`) for the endpoint's own."""
    cleaned = text.strip()
    if cleaned == "default":
        return ""
    if not _ACCOUNT.fullmatch(cleaned):
        raise BadInput(name, f"{text!r} is not a Stripe account id (acct_…) or 'default'")
    return cleaned


# --- computing -------------------------------------------------------------------------------


def build_report(engine: Engine, query: ReportQuery) -> Report:
    with engine.begin() as conn:
        projector.catch_up(conn)
        mode = choose_mode(conn, query.livemode)
    if query.as_of is None and query.reporting_currency is None and query.account is None:
        return _from_stored_totals(engine, query, mode)
    with engine.connect() as conn:
        totals, missing = _from_ledger(conn, query, mode.livemode)
    currencies = sorted({t.currency for t in totals})
    if query.reporting_currency is not None:
        chosen = query.reporting_currency
    else:
        chosen = choose_currency(query.currency, currencies)
    main = CurrencyReport(chosen, balances(totals, chosen, query.first, query.last))
    others = [
        CurrencyReport(c, balances(totals, c, query.first, query.last))
        for c in currencies
        if c != chosen
    ]
    warnings = [
        f"no {c}->{chosen} rate on or before {day.isoformat()}: {c} entries without a rate "
        f"are reported in {c}, not converted"
        for c, day in sorted(missing.items())
    ]
    return Report(query, main, others if query.reporting_currency else [], warnings, mode)


def _from_stored_totals(engine: Engine, query: ReportQuery, mode: ModeChoice) -> Report:
    with engine.connect() as conn:
        chosen = choose_currency(query.currency, projector.stored_currencies(conn, mode.livemode))
        totals = projector.stored_totals(conn, chosen, query.last, mode.livemode)
    main = CurrencyReport(chosen, balances(totals, chosen, query.first, query.last))
    return Report(query, main, mode=mode)


def _from_ledger(
    conn: Connection, query: ReportQuery, livemode: bool
) -> tuple[list[MonthTotals], dict[str, date]]:
    """Totals straight from the ledger (streamed) of one mode (and account, if asked); with a
    reporting currency, also the first day each currency lacked a rate."""
    e = ledger_entries.c
    select_rows = projector.with_source(projector.entry_columns()).where(
        e.effective_at < query.last.next().start(),
        projector.SOURCE_LIVEMODE.is_(true() if livemode else false()),
    )
    if query.account is not None:
        select_rows = select_rows.where(projector.SOURCE_ACCOUNT.in_([query.account]))
    if query.as_of is not None:
        select_rows = select_rows.where(e.recorded_at <= query.as_of)
    if query.currency is not None:
        select_rows = select_rows.where(e.currency == query.currency)
    converter = (
        None
        if query.reporting_currency is None
        else fx.Converter(fx.load_table(conn), query.reporting_currency)
    )
    projection = Projection()
    missing: dict[str, date] = {}
    ordered = select_rows.add_columns(projector.SOURCE_ACCOUNT).order_by(e.effective_at, e.id)
    streamed = conn.execute(ordered, execution_options={"yield_per": projector.STREAM_BATCH})
    for customer_id, currency, category, amount, at, account in streamed:
        bucket, reported = currency, amount
        if converter is not None:
            converted = converter.convert(amount, currency, at)
            if converted is None:
                missing.setdefault(currency, at.astimezone(UTC).date())
            else:
                bucket, reported = converter.reporting, converted
        # A customer id means one customer only within its account.
        who = customer_id if query.account is not None else f"{customer_id}\0{account}"
        projection.add(Posting(who, currency, category, amount, month_index(at), bucket, reported))
    return projection.totals(), missing


def choose_currency(asked: str | None, currencies: list[str]) -> str:
    if asked is not None:
        return asked
    if len(currencies) == 1:
        return currencies[0]
    if not currencies:
        raise BadInput("currency", "the ledger has no entries yet: choose a currency")
    raise BadInput(
        "currency",
        f"the ledger holds several currencies ({', '.join(currencies)}): choose one",
    )
