"""The accountants' workspace: server-rendered pages behind a sign-in, one blueprint each."""

from __future__ import annotations

from typing import Any

from flask import Flask, Response, jsonify, render_template, request
from werkzeug.exceptions import HTTPException
from werkzeug.wrappers import Response as BaseResponse

from ingest import formatting
from ingest.auth import auth, current_user, require_user
from ingest.pages.bridge import bridge
from ingest.pages.common import page_mode
from ingest.pages.customers import customers
from ingest.pages.entries import entries
from ingest.pages.forecast import forecast
from ingest.pages.overview import overview
from ingest.pages.quality import banner, quality
from ingest.pages.rules import rules
from ingest.pages.segments import segments
from ingest.services import services
from ledger.reporting.modes import choose_mode

PAGES = (overview, bridge, entries, customers, segments, forecast, quality, rules)
_GUARDED = frozenset(blueprint.name for blueprint in PAGES)


def register(app: Flask) -> None:
    app.register_blueprint(auth)
    for blueprint in PAGES:
        app.register_blueprint(blueprint)
    app.before_request(_guard)
    app.jinja_env.filters.update(formatting.FILTERS)
    app.context_processor(_context)
    app.url_defaults(_carry_source)
    for status in (400, 403, 404, 405):
        app.register_error_handler(status, _problem)


def _guard() -> BaseResponse | None:
    """Every page of the workspace needs a signed-in user; the API and webhook have their own."""
    return require_user() if request.blueprint in _GUARDED else None


def _context() -> dict[str, Any]:
    user = current_user()
    shown = _sources() if user is not None and request.blueprint in _GUARDED else None
    return {"user": user, "quality": banner() if user is not None else None, "sources": shown}


def _sources() -> dict[str, Any]:
    """The header's mode and account selector: what is shown, and whether test data is shown
    because there is no live data."""
    with services().engine.connect() as conn:
        try:
            mode = page_mode(conn)
        except HTTPException:  # a bad ?mode= is the page's 404; its header shows the default
            mode = choose_mode(conn, None)
    return {"mode": mode, "source": request.args.get("source", "")}


_CARRIED = ("mode", "source")


def _carry_source(endpoint: str, values: dict[str, Any]) -> None:
    """Links within the workspace keep the page's mode and account."""
    if endpoint.split(".")[0] not in _GUARDED:
        return
    for name in _CARRIED:
        chosen = request.args.get(name)
        if chosen and name not in values:
            values[name] = chosen


def _problem(error: HTTPException) -> tuple[str | Response, int]:
    status = error.code or 500
    if request.path.startswith("/api/") or request.path.startswith("/webhooks/"):
        return jsonify(error=error.name.lower().replace(" ", "_"), reason=error.description), status
    return render_template(
        "workspace/problem.html", title=error.name, message=error.description
    ), status
