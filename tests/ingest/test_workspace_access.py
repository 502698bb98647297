"""Workspace access: sign-in, sessions, CSRF, throttling, security headers, the users CLI."""

from __future__ import annotations

import os
from dataclasses import replace
from pathlib import Path

import pytest
from click.testing import CliRunner
from flask.testing import FlaskClient
from sqlalchemy import Engine

from ingest.app import create_app
from ingest.security import secret_key
from ledger.settings import Settings
from ledger.storage import users
from scripts.cli import main
from tests.support.workspace import PASSWORD, add_user, csrf_token, sign_in

PAGES = ("/", "/bridge", "/entries", "/entries/1", "/customers", "/data-quality", "/rules")


@pytest.fixture
def client(settings: Settings) -> FlaskClient:
    return create_app(settings).test_client()


def test_every_page_without_a_session_redirects_to_sign_in(client: FlaskClient) -> None:
    for path in PAGES:
        response = client.get(path)
        assert response.status_code == 302, path
        assert response.headers["Location"].startswith("/sign-in?next="), path


def test_sign_in_then_sign_out(client: FlaskClient, engine: Engine) -> None:
    add_user(engine, "Ann@Example.com")
    assert sign_in(client, "ann@example.com", "wrong").status_code == 401
    assert client.get("/").status_code == 302
    signed = sign_in(client, "ann@example.com")
    assert signed.status_code == 302
    page = client.get("/")
    assert page.status_code == 200 and b"ann@example.com" in page.data
    token = csrf_token(client, "/")
    assert client.post("/sign-out", data={"csrf_token": token}).status_code == 302
    assert client.get("/").status_code == 302


def test_sign_in_goes_back_only_to_a_page_of_this_site(client: FlaskClient, engine: Engine) -> None:
    add_user(engine, "ann@example.com")
    for target, expected in (
        ("/customers?q=x", "/customers?q=x"),
        ("//evil.example/x", "/overview"),
        ("https://evil.example/", "/overview"),
    ):
        token = csrf_token(client)
        data = {"email": "ann@example.com", "password": PASSWORD, "next": target}
        response = client.post("/sign-in", data=data | {"csrf_token": token})
        assert response.headers["Location"] == expected
        client.post("/sign-out", data={"csrf_token": csrf_token(client, "/")})


def test_a_post_without_the_csrf_token_is_refused(client: FlaskClient, engine: Engine) -> None:
    add_user(engine, "ann@example.com")
    refused = client.post("/sign-in", data={"email": "ann@example.com", "password": PASSWORD})
    assert refused.status_code == 400 and b"CSRF" in refused.data
    assert sign_in(client, "ann@example.com").status_code == 302
    assert client.post("/sign-out").status_code == 400
    assert client.get("/").status_code == 200  # still signed in


def test_sign_in_is_throttled_per_account(client: FlaskClient, engine: Engine) -> None:
    add_user(engine, "ann@example.com")
    for _ in range(5):
        assert sign_in(client, "ann@example.com", "guess").status_code == 401
    throttled = sign_in(client, "ann@example.com")
    assert throttled.status_code == 429 and b"Too many" in throttled.data
    add_user(engine, "bob@example.com")
    assert sign_in(client, "bob@example.com").status_code == 302


def test_a_disabled_account_loses_its_session(client: FlaskClient, engine: Engine) -> None:
    add_user(engine, "ann@example.com")
    sign_in(client, "ann@example.com")
    assert client.get("/").status_code == 200
    with engine.begin() as conn:
        users.disable(conn, "ann@example.com")
    assert client.get("/").status_code == 302
    assert sign_in(client, "ann@example.com").status_code == 401


def test_security_headers_and_cookie_flags(settings: Settings, engine: Engine) -> None:
    add_user(engine, "ann@example.com")
    client = create_app(settings).test_client()
    signed = sign_in(client, "ann@example.com")
    cookie = signed.headers["Set-Cookie"]
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie and "Secure" not in cookie
    for path in ("/", "/sign-in", "/api/openapi.json", "/static/app.css"):
        response = client.get(path)
        csp = response.headers["Content-Security-Policy"]
        assert "script-src 'self'" in csp and "style-src 'self'" in csp, path
        assert "unsafe-inline" not in csp and "frame-ancestors 'none'" in csp
        assert response.headers["X-Content-Type-Options"] == "nosniff"
        assert response.headers["X-Frame-Options"] == "DENY"
        assert response.headers["Referrer-Policy"] == "same-origin"
    secure = create_app(replace(settings, cookie_secure=True)).test_client()
    assert "Secure" in sign_in(secure, "ann@example.com").headers["Set-Cookie"]


def test_no_page_shows_the_api_token(settings: Settings, engine: Engine) -> None:
    add_user(engine, "ann@example.com")
    client = create_app(settings).test_client()
    sign_in(client, "ann@example.com")
    assert settings.api_token
    for path in PAGES:
        assert settings.api_token.encode() not in client.get(path).data, path


def test_without_mrr_secret_key_a_local_key_is_kept_in_var(tmp_path: Path) -> None:
    settings = Settings.from_env({})
    key_file = tmp_path / "var" / "secret_key"
    first = secret_key(settings, key_file)
    assert len(first) == 64 and os.stat(key_file).st_mode & 0o777 == 0o600
    assert secret_key(settings, key_file) == first
    assert secret_key(Settings.from_env({"MRR_SECRET_KEY": "set"}), key_file) == "set"


def test_users_cli_adds_lists_and_disables(db_url: str, engine: Engine) -> None:
    runner = CliRunner()
    env = {"DATABASE_URL": db_url}
    added = runner.invoke(main, ["users", "add", "Ann@Example.com", "--role", "admin"], env=env)
    assert added.exit_code == 0, added.output
    password = added.stdout.split("password: ")[1].strip()
    with engine.connect() as conn:
        ann = users.by_email(conn, "ann@example.com")
    assert ann is not None and ann.role == "admin" and password not in ann.password_hash
    assert ann.password_hash.startswith("scrypt:")
    again = runner.invoke(main, ["users", "add", "ann@example.com"], env=env)
    assert again.exit_code == 2 and "already has an account" in again.output
    bad = runner.invoke(main, ["users", "add", "not-an-email"], env=env)
    assert bad.exit_code == 2 and "not an email address" in bad.output
    listed = runner.invoke(main, ["users", "list"], env=env)
    assert "ann@example.com\tadmin\tactive" in listed.stdout
    assert runner.invoke(main, ["users", "disable", "ann@example.com"], env=env).exit_code == 0
    assert "\tdisabled " in runner.invoke(main, ["users", "list"], env=env).stdout
    missing = runner.invoke(main, ["users", "disable", "nobody@example.com"], env=env)
    assert missing.exit_code == 2 and "no account" in missing.output
