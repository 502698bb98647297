"""What the workspace's pages share: reading URL arguments (bad ones are a 404 that says what
was not found), the ledger's currencies, the current month."""

from __future__ import annotations

from datetime import UTC, datetime

from flask import abort, request
from sqlalchemy import Connection, Engine

from ledger.reporting import projector
from ledger.reporting.fx import load_table
from ledger.reporting.modes import ModeChoice, choose_mode
from ledger.reporting.queries import MAX_ID_LENGTH, BadFilter, parse_category, parse_id
from ledger.reporting.reports import BadInput, parse_account, parse_currency, parse_month
from ledger.rules.entries import Category
from ledger.rules.months import Month
from ledger.rules.sources import parse_mode


def now() -> datetime:
    return datetime.now(UTC)


def this_month() -> Month:
    return Month.of(now())


def text_arg(name: str) -> str | None:
    value = request.args.get(name)
    if value is None or value.strip() == "":
        return None
    if "\x00" in value or len(value) > MAX_ID_LENGTH:
        abort(404, f"{name} is not a value these pages know")
    return value.strip()


def month_arg(name: str, default: Month | None = None) -> Month | None:
    value = text_arg(name)
    if value is None:
        return default
    try:
        return parse_month(value, name)
    except BadInput as problem:
        abort(404, f"no such month: {problem.message}")


def category_arg() -> Category | None:
    value = text_arg("category")
    if value is None:
        return None
    try:
        return parse_category(value)
    except BadFilter as problem:
        abort(404, f"no such category: {problem.message}")


def id_arg(name: str) -> str | None:
    value = text_arg(name)
    if value is None:
        return None
    try:
        return parse_id(value, name)
    except BadFilter as problem:
        abort(404, problem.message)


def currencies(engine: Engine) -> list[str]:
    """The currencies the ledger holds in the page's mode: the stored month totals', brought up
    to date first."""
    with engine.begin() as conn:
        projector.catch_up(conn)
    with engine.connect() as conn:
        return projector.stored_currencies(conn, choose_mode(conn, mode_arg()).livemode)


def mode_arg() -> bool | None:
    """`?mode=live|test` as a livemode flag; None when not asked (live, or test without live
    data: `page_mode`)."""
    value = text_arg("mode")
    if value is None:
        return None
    try:
        return parse_mode(value)
    except ValueError as problem:
        abort(404, str(problem))


def source_arg() -> str | None:
    """`?source=acct_…` (or `default`): one account; None for every account together."""
    value = text_arg("source")
    if value is None:
        return None
    try:
        return parse_account(value)
    except BadInput as problem:
        abort(404, problem.message)


def page_mode(conn: Connection) -> ModeChoice:
    return choose_mode(conn, mode_arg())


def currency_arg(known: list[str], name: str = "currency") -> str | None:
    """The asked currency if the ledger holds it; else the default (USD first, if held)."""
    value = text_arg(name)
    if value is None:
        if not known:
            return None
        return "usd" if "usd" in known else known[0]
    try:
        code = parse_currency(value, name)
    except BadInput as problem:
        abort(404, problem.message)
    if code not in known:
        abort(404, f"the ledger has no entries in {code.upper()}")
    return code


def reporting_currencies(conn: Connection, held: list[str]) -> list[str]:
    """Currencies a report can be converted into: none without rates; else those held and
    those with rates (the base currency needs none)."""
    rated = load_table(conn).currencies()
    return sorted(set(held) | set(rated)) if rated else []


def reporting_arg(choices: list[str]) -> str | None:
    value = text_arg("reporting")
    if value is None:
        return None
    try:
        code = parse_currency(value, "reporting")
    except BadInput as problem:
        abort(404, problem.message)
    if code not in choices:
        abort(404, f"no exchange rates for {code.upper()}: it cannot be a reporting currency")
    return code
