"""Signing in and out of the workspace, and the guard every page sits behind.

Sessions are Flask's signed cookie holding the user's id; the user is read again on every
request, so disabling an account ends its sessions at once. Failed sign-ins are kept in the
`sign_in_failures` table: 5 per account or 20 per client address in 15 minutes, and the form
refuses further tries (429) until the window has passed.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from functools import wraps
from typing import Any, TypeVar
from urllib.parse import urlsplit

from flask import (
    Blueprint,
    Response,
    abort,
    g,
    redirect,
    render_template,
    request,
    session,
    url_for,
)
from werkzeug.wrappers import Response as BaseResponse

from ingest import passwords
from ingest.services import services
from ledger.storage import users

log = logging.getLogger(__name__)
auth = Blueprint("auth", __name__)

WINDOW = timedelta(minutes=15)
MAX_PER_ACCOUNT = 5
MAX_PER_ADDRESS = 20
_F = TypeVar("_F", bound=Callable[..., Any])


def current_user() -> users.User | None:
    if "user" not in g:
        user_id = session.get("user_id")
        found = None
        if isinstance(user_id, int):
            with services().engine.connect() as conn:
                found = users.by_id(conn, user_id)
        g.user = found if found is not None and found.active else None
    user: users.User | None = g.user
    return user


def require_user() -> BaseResponse | None:
    """A blueprint's before_request: pages need a signed-in, enabled user."""
    if current_user() is None:
        session.pop("user_id", None)
        return redirect(url_for("auth.sign_in", next=request.full_path.rstrip("?")))
    return None


def admin_only(view: _F) -> _F:
    @wraps(view)
    def checked(*args: Any, **kwargs: Any) -> Any:
        user = current_user()
        if user is None or not user.is_admin:
            abort(403, "only an admin can do this")
        return view(*args, **kwargs)

    return checked  # type: ignore[return-value]


def _safe_next(target: str | None) -> str:
    """Only a path on this site (no scheme, no host, no protocol-relative '//')."""
    if not target or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return url_for("overview.overview_page")
    parts = urlsplit(target)
    return url_for("overview.overview_page") if parts.scheme or parts.netloc else target


@auth.get("/sign-in")
def sign_in() -> str | BaseResponse:
    if current_user() is not None:
        return redirect(_safe_next(request.args.get("next")))
    return render_template("workspace/sign_in.html", next=request.args.get("next", ""), error=None)


@auth.post("/sign-in")
def sign_in_post() -> tuple[str, int] | BaseResponse:
    email = request.form.get("email", "").strip().lower()[: users.EMAIL_LIMIT]
    password = request.form.get("password", "")
    target = request.form.get("next", "")
    address = request.remote_addr or "unknown"
    now = datetime.now(UTC)
    engine = services().engine
    with engine.connect() as conn:
        per_account, per_address = users.recent_failures(conn, email, address, now - WINDOW)
    if per_account >= MAX_PER_ACCOUNT or per_address >= MAX_PER_ADDRESS:
        log.warning("sign-in refused: too many failures (account or address)")
        return _form_error("Too many failed sign-ins. Try again in 15 minutes.", target, 429)
    with engine.begin() as conn:
        user = users.by_email(conn, email) if email else None
        good = passwords.check(None if user is None else user.password_hash, password)
        if user is None or not good or not user.active:
            users.record_failure(conn, email, address, now)
            failed = True
        else:
            users.signed_in(conn, user.id, now)
            users.forget_failures(conn, email, now - WINDOW)
            failed = False
    if failed or user is None:
        return _form_error("Wrong email or password, or the account is disabled.", target, 401)
    session.clear()
    session.permanent = True
    session["user_id"] = user.id
    log.info("user %s signed in", user.id)
    return redirect(_safe_next(target))


def _form_error(message: str, target: str, status: int) -> tuple[str, int]:
    return render_template("workspace/sign_in.html", next=target, error=message), status


@auth.post("/sign-out")
def sign_out() -> Response | BaseResponse:
    session.clear()
    return redirect(url_for("auth.sign_in"))
