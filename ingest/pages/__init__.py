"""The accountants' workspace: server-rendered pages behind a sign-in, one blueprint each."""

from __future__ import annotations

from typing import Any

from flask import Flask, Response, jsonify, render_template, request
from werkzeug.exceptions import HTTPException
from werkzeug.wrappers import Response as BaseResponse

from ingest import formatting
from ingest.auth import auth, current_user, require_user
from ingest.pages.bridge import bridge
from ingest.pages.customers import customers
from ingest.pages.entries import entries
from ingest.pages.forecast import forecast
from ingest.pages.overview import overview
from ingest.pages.quality import banner, quality
from ingest.pages.rules import rules
from ingest.pages.segments import segments

PAGES = (overview, bridge, entries, customers, segments, forecast, quality, rules)
_GUARDED = frozenset(blueprint.name for blueprint in PAGES)


def register(app: Flask) -> None:
    app.register_blueprint(auth)
    for blueprint in PAGES:
        app.register_blueprint(blueprint)
    app.before_request(_guard)
    app.jinja_env.filters.update(formatting.FILTERS)
    app.context_processor(_context)
    for status in (400, 403, 404, 405):
        app.register_error_handler(status, _problem)


def _guard() -> BaseResponse | None:
    """Every page of the workspace needs a signed-in user; the API and webhook have their own."""
    return require_user() if request.blueprint in _GUARDED else None


def _context() -> dict[str, Any]:
    user = current_user()
    return {"user": user, "quality": banner() if user is not None else None}


def _problem(error: HTTPException) -> tuple[str | Response, int]:
    status = error.code or 500
    if request.path.startswith("/api/") or request.path.startswith("/webhooks/"):
        return jsonify(error=error.name.lower().replace(" ", "_"), reason=error.description), status
    return render_template(
        "workspace/problem.html", title=error.name, message=error.description
    ), status
