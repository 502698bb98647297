"""The read-only accountant API for machines: /api/mrr (by segment too), /api/mrr/committed,
/api/mrr/forecast, /api/cohorts, /api/customers/months, /api/customers/top, /api/ledger,
/api/ledger/ID.

Every data route needs `Authorization: Bearer $MRR_API_TOKEN` (compared in constant time);
with no token configured they are all refused (503). People use the workspace (ingest/pages),
which signs them in with their own accounts and never asks for this token.
"""

from __future__ import annotations

import hmac
import json
import re
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from functools import wraps
from typing import Any, TypeVar

from flask import Blueprint, Response, jsonify, request, stream_with_context

from ingest.openapi import document
from ingest.services import services
from ledger.reporting import (
    customer_months,
    exports,
    forecast_exports,
    queries,
    segment_exports,
)
from ledger.reporting.accounts import build_breakdown
from ledger.reporting.cohorts import build_cohorts
from ledger.reporting.committed import build_committed
from ledger.reporting.forecast import build_backtest, build_forecast
from ledger.reporting.modes import choose_mode
from ledger.reporting.reports import (
    BadInput,
    Report,
    ReportQuery,
    build_report,
    parse_account,
    parse_currency,
    parse_mode_arg,
    parse_month,
    report_query,
)
from ledger.reporting.segments import build_segments, segment_query

reports = Blueprint("reports", __name__, template_folder="templates")

_B64TOKEN = re.compile(r"[A-Za-z0-9\-._~+/]+=*")
_ENTRY_ID = re.compile(r"[1-9][0-9]{0,17}")
_F = TypeVar("_F", bound=Callable[..., Any])
MAX_PAGE = 1000


class ApiError(Exception):
    def __init__(self, status: int, code: str, reason: str, field: str | None = None) -> None:
        super().__init__(reason)
        self.status, self.code, self.reason, self.field = status, code, reason, field

    def body(self) -> dict[str, str]:
        found = {"error": self.code, "reason": self.reason}
        return found if self.field is None else found | {"field": self.field}


@reports.errorhandler(ApiError)
def _api_error(problem: ApiError) -> tuple[Response, int]:
    response = jsonify(problem.body())
    if problem.status == 401:
        response.headers["WWW-Authenticate"] = 'Bearer realm="mrr"'
    return response, problem.status


def check_token(presented: str | None) -> None:
    """Raise unless `presented` is the configured token (constant-time comparison)."""
    expected = services().settings.api_token
    if not expected:
        raise ApiError(503, "not_configured", "no MRR_API_TOKEN is configured: the API is off")
    if presented is None or presented == "":
        raise ApiError(401, "missing_token", "send Authorization: Bearer <MRR_API_TOKEN>")
    if not _B64TOKEN.fullmatch(presented):
        raise ApiError(400, "malformed_token", "the bearer token has characters a token cannot")
    if not hmac.compare_digest(presented.encode("ascii"), expected.encode("utf-8")):
        raise ApiError(401, "bad_token", "the bearer token is not the configured one")


def _bearer() -> str | None:
    header = request.headers.get("Authorization")
    if header is None:
        return None
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token:
        raise ApiError(400, "malformed_token", "the Authorization header is not 'Bearer <token>'")
    return token.strip()


def authorized(view: _F) -> _F:
    @wraps(view)
    def checked(*args: Any, **kwargs: Any) -> Any:
        check_token(_bearer())
        return view(*args, **kwargs)

    return checked  # type: ignore[return-value]


def _bad(field: str, message: str) -> ApiError:
    return ApiError(400, "bad_request", message, field)


def _text_arg(name: str) -> str | None:
    value = request.args.get(name)
    if value is not None and ("\x00" in value or len(value) > 1000):
        raise _bad(name, f"{name} is not a value this API accepts")
    return value


def _format(allowed: tuple[str, ...]) -> str:
    chosen = _text_arg("format") or "json"
    if chosen not in allowed:
        raise _bad("format", f"format must be one of {', '.join(allowed)}")
    return chosen


def _csv(lines: Iterator[str], filename: str) -> Response:
    return Response(
        stream_with_context(lines),
        mimetype="text/csv",
        headers={"Content-Disposition": f'attachment; filename="{filename}"'},
    )


def _query_from(args: dict[str, str | None]) -> ReportQuery:
    first, last = args.get("from"), args.get("to")
    if not first:
        raise _bad("from", "from (YYYY-MM) is required")
    if not last:
        raise _bad("to", "to (YYYY-MM) is required")
    try:
        return report_query(
            first,
            last,
            currency=args.get("currency") or None,
            reporting_currency=args.get("reporting_currency") or None,
            as_of=args.get("as_of") or None,
            mode=args.get("mode") or None,
            account=args.get("source") or None,
        )
    except BadInput as problem:
        raise _bad(problem.field, problem.message) from None


def _report_from(args: dict[str, str | None]) -> Report:
    query = _query_from(args)
    try:
        return build_report(services().engine, query)
    except BadInput as problem:
        raise _bad(problem.field, problem.message) from None


def _breakdown(args: dict[str, str | None], fmt: str) -> Response:
    query = _query_from(args)
    try:
        found = build_breakdown(services().engine, query)
    except BadInput as problem:
        raise _bad(problem.field, problem.message) from None
    if fmt == "csv":
        return _csv(exports.breakdown_csv(found), "mrr-by-account.csv")
    return jsonify(exports.breakdown_json(found))


@reports.get("/api/openapi.json")
def openapi() -> Response:
    return jsonify(document())


@reports.get("/api/mrr")
@authorized
def mrr() -> Response:
    fmt = _format(("json", "csv"))
    names = ("from", "to", "currency", "reporting_currency", "as_of", "mode", "source")
    by, where = _text_arg("by"), request.args.getlist("where")
    if by == "account" and not where:
        return _breakdown({name: _text_arg(name) for name in names}, fmt)
    if by is not None or where:
        return _segments({name: _text_arg(name) for name in names}, by, where, fmt)
    found = _report_from({name: _text_arg(name) for name in names})
    if fmt == "csv":
        return _csv(exports.report_csv(found), "mrr.csv")
    return jsonify(exports.report_json(found))


def _months_arg() -> int:
    text = _text_arg("months") or "12"
    if not text.isdigit() or len(text) > 3:
        raise _bad("months", "months is a whole number of months")
    return int(text)


def _currency_arg(name: str = "currency") -> str | None:
    text = _text_arg(name)
    try:
        return None if not text else parse_currency(text, name)
    except BadInput as problem:
        raise _bad(problem.field, problem.message) from None


_Built = TypeVar("_Built")


def _ahead(
    build: Callable[..., _Built],
    as_csv: Callable[[_Built], str],
    as_json: Callable[[_Built], dict[str, Any]],
    filename: str,
) -> Response:
    """Committed MRR or the forecast: the same parameters, the same answers."""
    fmt = _format(("json", "csv"))
    months, currency = _months_arg(), _currency_arg()
    reporting = _currency_arg("reporting_currency")
    try:
        found = build(
            services().engine,
            datetime.now(UTC),
            months,
            currency,
            reporting_currency=reporting,
        )
    except BadInput as problem:
        raise _bad(problem.field, problem.message) from None
    if fmt == "csv":
        return _csv(iter([as_csv(found)]), filename)
    return jsonify(as_json(found))


@reports.get("/api/mrr/committed")
@authorized
def committed() -> Response:
    e = forecast_exports
    return _ahead(build_committed, e.committed_csv, e.committed_json, "committed-mrr.csv")


@reports.get("/api/mrr/forecast")
@authorized
def forecast() -> Response:
    e = forecast_exports
    return _ahead(build_forecast, e.forecast_csv, e.forecast_json, "mrr-forecast.csv")


@reports.get("/api/mrr/forecast/backtest")
@authorized
def forecast_backtest() -> Response:
    currency = _currency_arg()
    try:
        found = build_backtest(services().engine, datetime.now(UTC), currency)
    except BadInput as problem:
        raise _bad(problem.field, problem.message) from None
    return jsonify(forecast_exports.backtest_json(found))


def _months_query(args: dict[str, str | None]) -> ReportQuery:
    """Months, currency, mode and source: what the segments, cohorts and customers are asked."""
    names = ("from", "to", "currency", "mode", "source")
    return _query_from({name: args.get(name) for name in names})


def _segments(args: dict[str, str | None], by: str | None, where: list[str], fmt: str) -> Response:
    if args.get("as_of") or args.get("reporting_currency"):
        raise _bad("by", "segments are reported from the stored figures: not with as_of or "
                   "reporting_currency")  # fmt: skip
    if len(where) > 100 or any("\x00" in w or len(w) > 1000 for w in where):
        raise _bad("where", "where is not a value this API accepts")
    try:
        query = segment_query(_months_query(args), by, where)
        found = build_segments(services().engine, query)
    except BadInput as problem:
        raise _bad(problem.field, problem.message) from None
    if fmt == "csv":
        return _csv(segment_exports.segment_csv(found), "mrr-by-segment.csv")
    return jsonify(segment_exports.segment_json(found))


@reports.get("/api/cohorts")
@authorized
def cohorts() -> Response:
    fmt = _format(("json", "csv"))
    first, last = _text_arg("from"), _text_arg("to")
    mode, source = _text_arg("mode"), _text_arg("source")
    query = _months_query({"from": first, "to": last, "mode": mode, "source": source})
    try:
        found = build_cohorts(
            services().engine,
            str(query.first),
            str(query.last),
            currency=_text_arg("currency") or None,
            metric=_text_arg("metric") or "customers",
            by=_text_arg("by") or None,
            mode=mode or None,
            source=source or None,
        )
    except BadInput as problem:
        raise _bad(problem.field, problem.message) from None
    if fmt == "csv":
        return _csv(segment_exports.cohort_csv(found), "cohorts.csv")
    return jsonify(segment_exports.cohort_json(found))


def _chosen(query: ReportQuery) -> tuple[str, bool]:
    """The report's currency and mode, as the plain report chooses them."""
    try:
        found = build_report(services().engine, query)
    except BadInput as problem:
        raise _bad(problem.field, problem.message) from None
    return found.main.currency, found.mode.livemode


@reports.get("/api/customers/months")
@authorized
def customer_months_view() -> Response:
    fmt = _format(("json", "csv"))
    names = ("from", "to", "currency", "mode", "source")
    query = _months_query({name: _text_arg(name) for name in names})
    currency, livemode = _chosen(query)
    engine = services().engine
    with engine.begin() as conn:
        customer_months.catch_up(conn)

    def rows() -> Iterator[customer_months.CustomerMonth]:
        with engine.connect() as conn:
            yield from customer_months.monthly(
                conn, query.first, query.last, currency, livemode=livemode, account=query.account
            )

    if fmt == "csv":
        return _csv(segment_exports.customer_months_csv(rows()), "mrr-per-customer.csv")

    def document() -> Iterator[str]:
        yield '{"currency": ' + json.dumps(currency) + ', "rows": ['
        for n, row in enumerate(rows()):
            yield ("," if n else "") + json.dumps(segment_exports.customer_month_fields(row))
        yield "]}"

    return Response(stream_with_context(document()), mimetype="application/json")


@reports.get("/api/customers/top")
@authorized
def top_customers() -> Response:
    month = _text_arg("month")
    if not month:
        raise _bad("month", "month (YYYY-MM) is required")
    asked = {name: _text_arg(name) for name in ("currency", "mode", "source")}
    asked.update({"from": month, "to": month})
    query = _months_query(asked)
    currency, livemode = _chosen(query)
    raw = _text_arg("limit") or "10"
    if not raw.isdigit() or not 1 <= int(raw) <= MAX_PAGE:
        raise _bad("limit", f"limit must be a whole number from 1 to {MAX_PAGE}")
    engine = services().engine
    with engine.begin() as conn:
        customer_months.catch_up(conn)
    with engine.connect() as conn:
        found = customer_months.top(
            conn, query.last, currency, int(raw), livemode=livemode, account=query.account
        )
    return jsonify(segment_exports.top_json(found))


def _ledger_filter() -> queries.LedgerFilter:
    month, category = _text_arg("month"), _text_arg("category")
    customer, subscription = _text_arg("customer"), _text_arg("subscription")
    mode, source = _text_arg("mode"), _text_arg("source")
    try:
        asked = None if mode is None else parse_mode_arg(mode)
        with services().engine.connect() as conn:
            livemode = choose_mode(conn, asked).livemode
        return queries.LedgerFilter(
            livemode=livemode,
            account=None if source is None else parse_account(source),
            month=None if month is None else parse_month(month, "month"),
            customer_id=None if customer is None else queries.parse_id(customer, "customer"),
            subscription_id=(
                None if subscription is None else queries.parse_id(subscription, "subscription")
            ),
            category=None if category is None else queries.parse_category(category),
        )
    except (BadInput, queries.BadFilter) as problem:
        raise _bad(problem.field, problem.message) from None


def _limit() -> int:
    raw = _text_arg("limit")
    if raw is None:
        return 100
    if not raw.isdigit() or not 1 <= int(raw) <= MAX_PAGE:
        raise _bad("limit", f"limit must be a whole number from 1 to {MAX_PAGE}")
    return int(raw)


@reports.get("/api/ledger")
@authorized
def ledger() -> Response:
    fmt = _format(("json", "csv"))
    filters = _ledger_filter()
    engine = services().engine
    if fmt == "csv":

        def lines() -> Iterator[str]:
            with engine.connect() as conn:
                yield from exports.ledger_csv(queries.stream(conn, filters))

        return _csv(lines(), "ledger.csv")
    limit, cursor = _limit(), _text_arg("cursor")
    try:
        after = 0 if cursor is None else queries.decode_cursor(cursor)
    except queries.BadFilter as problem:
        raise _bad(problem.field, problem.message) from None
    with engine.connect() as conn:
        rows, next_cursor = queries.page(conn, filters, after_id=after, limit=limit)
    return jsonify(entries=[exports.ledger_fields(row) for row in rows], next_cursor=next_cursor)


@reports.get("/api/ledger/<entry_id>")
@authorized
def ledger_entry(entry_id: str) -> Response:
    if not _ENTRY_ID.fullmatch(entry_id):
        raise _bad("entry_id", "an entry id is a positive whole number")
    with services().engine.connect() as conn:
        row = queries.get(conn, int(entry_id))
        reversal = (
            None if row is None or row.reversed_by is None else queries.get(conn, row.reversed_by)
        )
    if row is None:
        raise ApiError(404, "not_found", f"no ledger entry {entry_id}")
    return jsonify(
        entry=exports.ledger_fields(row),
        explanation=row.explanation,
        reversal=None if reversal is None else exports.ledger_fields(reversal),
    )


@reports.after_request
def _no_store(response: Response) -> Response:
    response.headers.setdefault("Cache-Control", "no-store")
    return response


__all__ = ["check_token", "reports"]
