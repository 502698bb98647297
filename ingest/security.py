"""What every response carries and every form needs: the signed session cookie, CSRF
protection (Flask-WTF), and security headers (CSP allowing only this app's scripts and styles).
"""

from __future__ import annotations

import logging
import os
import secrets
from pathlib import Path

from flask import Flask, Response, render_template, request
from flask_wtf.csrf import CSRFError, CSRFProtect

from ledger.settings import Settings

log = logging.getLogger(__name__)

LOCAL_KEY_FILE = Path("var") / "secret_key"
CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; "
    "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
)
HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "X-Frame-Options": "DENY",
    "Cross-Origin-Opener-Policy": "same-origin",
}
csrf = CSRFProtect()


def secret_key(settings: Settings, key_file: Path = LOCAL_KEY_FILE) -> str:
    """MRR_SECRET_KEY, or for local runs a random key kept in var/secret_key (created once)."""
    if settings.secret_key:
        return settings.secret_key
    try:
        return key_file.read_text().strip()
    except FileNotFoundError:
        pass
    key_file.parent.mkdir(parents=True, exist_ok=True)
    key = secrets.token_hex(32)
    try:
        fd = os.open(key_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return key_file.read_text().strip()
    with os.fdopen(fd, "w") as out:
        out.write(key)
    log.warning("MRR_SECRET_KEY is not set: sessions are signed with a key kept in %s", key_file)
    return key


def configure(app: Flask, settings: Settings) -> None:
    app.secret_key = secret_key(settings)
    app.config.update(
        SESSION_COOKIE_NAME="mrr_session",
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Lax",
        SESSION_COOKIE_SECURE=settings.cookie_secure,
        PERMANENT_SESSION_LIFETIME=12 * 3600,
        # A token lives as long as the session it belongs to.
        WTF_CSRF_TIME_LIMIT=None,
    )
    csrf.init_app(app)
    app.after_request(_headers)
    app.register_error_handler(CSRFError, _csrf_refused)


def _headers(response: Response) -> Response:
    for name, value in HEADERS.items():
        response.headers.setdefault(name, value)
    if request.endpoint != "static":
        response.headers.setdefault("Cache-Control", "no-store")
    return response


def _csrf_refused(problem: CSRFError) -> tuple[str, int]:
    return render_template(
        "workspace/problem.html", title="Form refused", message=problem.description
    ), 400
