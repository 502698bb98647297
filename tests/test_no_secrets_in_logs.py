"""No secret or API key in logs, error messages, answers or CLI output, whatever goes wrong."""

from __future__ import annotations

import http.client
import json
import logging
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
import responses
from click.testing import CliRunner
from sqlalchemy import select
from sqlalchemy.engine import make_url

from ingest.app import create_app
from ledger.processing import StoredReferences, process_inbox_row
from ledger.settings import Settings
from ledger.storage import inbox
from ledger.storage.db import make_engine
from ledger.storage.schema import inbox as inbox_table
from scripts.cli import main
from tests.conftest import REDIS_URL
from tests.support.databases import Templates
from tests.support.pipeline import subscription_event
from tests.support.stripe_sign import signed
from tests.support.web import gunicorn
from workers.stripe_client import connect

NOW = 1_767_225_600
TAG = uuid.uuid4().hex[:12]
WEBHOOK_SECRET = f"whsec_leak{TAG}"
API_KEY = f"sk_test_leak{TAG}"
API_TOKEN = f"token-leak{TAG}"
DB_PASSWORD = f"dbpw-leak{TAG}"
REDIS_PASSWORD = f"redispw-leak{TAG}"
OLD_WEBHOOK_SECRET = f"whsec_old{TAG}"
SECRETS = (WEBHOOK_SECRET, OLD_WEBHOOK_SECRET, API_KEY, API_TOKEN, DB_PASSWORD, REDIS_PASSWORD)
ROOT = Path(__file__).resolve().parent.parent


def with_password(url: str) -> str:
    return make_url(url).set(password=DB_PASSWORD).render_as_string(hide_password=False)


@pytest.fixture
def pg_with_password(templates: Templates) -> Iterator[str]:
    """A PostgreSQL database whose URL carries a password (trust auth ignores it)."""
    with templates.pg_copy() as url:
        yield with_password(url)


@pytest.fixture
def secret_settings(pg_with_password: str) -> Settings:
    return Settings(
        database_url=pg_with_password,
        redis_url=REDIS_URL,
        webhook_secrets=(OLD_WEBHOOK_SECRET, WEBHOOK_SECRET),
        stripe_api_key=API_KEY,
        stripe_api_base="https://stripe.invalid",
        api_token=API_TOKEN,
        queue_name=f"test-{uuid.uuid4().hex[:10]}",
    )


def env_of(settings: Settings) -> dict[str, str]:
    return {
        "DATABASE_URL": settings.database_url,
        "REDIS_URL": settings.redis_url or "",
        "STRIPE_WEBHOOK_SECRET": ",".join(settings.webhook_secrets),
        "STRIPE_API_KEY": settings.stripe_api_key or "",
        "STRIPE_API_BASE": settings.stripe_api_base or "",
        "MRR_API_TOKEN": settings.api_token or "",
        "MRR_QUEUE": settings.queue_name,
    }


def assert_no_secret(text: str) -> None:
    leaked = [secret for secret in SECRETS if secret in text]
    assert not leaked, f"leaked {leaked} in: ...{text[-2000:]}"


def test_the_webhook_and_worker_never_log_a_secret(
    secret_settings: Settings, caplog: pytest.LogCaptureFixture, capfd: pytest.CaptureFixture[str]
) -> None:
    caplog.set_level(logging.DEBUG)
    said: list[str] = []
    db_down = with_password("postgresql+psycopg://mrr@127.0.0.1:1/mrr")
    redis_down = f"redis://:{REDIS_PASSWORD}@127.0.0.1:1/0"
    apps = {
        "up": create_app(secret_settings),
        "db_down": create_app(replace(secret_settings, database_url=db_down)),
        "redis_down": create_app(replace(secret_settings, redis_url=redis_down)),
    }
    for n, (name, app) in enumerate(apps.items()):
        client = app.test_client()
        body = subscription_event(f"evt_{n}", "customer.subscription.created", NOW)
        for secret in (WEBHOOK_SECRET, "whsec_wrong"):
            payload, headers = signed(body, secret)
            said.append(
                client.post("/webhooks/stripe", data=payload, headers=headers).get_data(
                    as_text=True
                )
            )
        said.append(
            client.post(
                "/webhooks/stripe", data=b"{", headers={"Stripe-Signature": "t=1,v1=x"}
            ).get_data(as_text=True)
        )
        said.append(client.get("/readyz").get_data(as_text=True))
        assert app.extensions["mrr"].waker.flush()
        said.append(name)

    # The worker: a transient database failure, and the Stripe API refusing the key.
    engine = make_engine(secret_settings.database_url)
    with engine.connect() as conn:
        stored = conn.execute(select(inbox_table.c.id)).scalars().all()
    down = make_engine(db_down)
    with pytest.raises(Exception) as raised:
        process_inbox_row(down, stored[0], max_attempts=4)
    said.append(str(raised.value))
    with responses.RequestsMock() as stripe_api:
        stripe_api.get(
            "https://stripe.invalid/v1/prices/price_x",
            status=401,
            json={
                "error": {"message": "Invalid API Key provided", "type": "invalid_request_error"}
            },
        )
        fetch = connect(secret_settings).reference
        with engine.begin() as conn, pytest.raises(Exception) as refused:
            StoredReferences(conn, fetch).get("price", "price_x")
        said.append(f"{type(refused.value).__name__}: {refused.value}")
    with engine.connect() as conn:
        said.extend(row.error or "" for row in inbox.list_rows(conn))
    engine.dispose()
    down.dispose()

    out, err = capfd.readouterr()
    assert "webhook rejected (bad_signature)" in caplog.text
    assert "database unavailable" in caplog.text and "could not wake" in caplog.text
    assert_no_secret("\n".join([caplog.text, out, err, *said]))


def run_cli(args: list[str], env: dict[str, str]) -> str:
    done = subprocess.run(
        [sys.executable, "-m", "scripts.cli", "-v", *args],
        env={**os.environ, **env, "PYTHONPATH": str(ROOT)},
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    return f"$ mrr {' '.join(args)} -> {done.returncode}\n{done.stdout}{done.stderr}"


def test_the_cli_never_prints_a_secret(secret_settings: Settings) -> None:
    env = env_of(secret_settings)
    engine = make_engine(secret_settings.database_url)
    with engine.begin() as conn:  # something pending, so `requeue` has to reach Redis
        body = subscription_event("evt_1", "customer.subscription.created", NOW)
        inbox.store_events(conn, [(inbox.dumps(body), body)])
    down = {**env, "DATABASE_URL": with_password("postgresql://mrr@127.0.0.1:1/mrr")}
    redis_down = {**env, "REDIS_URL": f"redis://:{REDIS_PASSWORD}@127.0.0.1:1/0"}
    malformed = {**env, "DATABASE_URL": f"postgresql://mrr:{DB_PASSWORD}@127.0.0.1:port/mrr"}
    outputs = [
        run_cli(["db", "upgrade"], env),
        run_cli(["inbox"], env),
        run_cli(["verify"], env),
        run_cli(["requeue"], env),
        run_cli(["inbox"], down),
        run_cli(["verify"], down),
        run_cli(["db", "upgrade"], down),
        run_cli(["inbox"], malformed),
        run_cli(["requeue", "--older-than", "0"], redis_down),
    ]
    assert "rows verified" in outputs[2] and "queued 0" in outputs[3]
    assert "ConnectionError" in outputs[-1]
    assert all(" -> 0" in text for text in outputs[:4]), outputs[:4]
    assert all(" -> 0" not in text for text in outputs[4:])
    runner = CliRunner()
    role = f"mrr_leak_{uuid.uuid4().hex[:8]}"
    created = runner.invoke(
        main,
        ["db", "create-app-role", role, "--password-env", "APP_PW"],
        env={**env, "APP_PW": DB_PASSWORD},
    )
    with engine.begin() as conn:
        conn.exec_driver_sql(f'DROP OWNED BY "{role}"')
        conn.exec_driver_sql(f'DROP ROLE "{role}"')
    engine.dispose()
    assert created.exit_code == 0, created.output
    assert_no_secret("\n".join([*outputs, created.output]))


EMAIL = f"jane.leak{TAG}@example.com"
PERSONAL = (EMAIL, f"Jane Leak{TAG}", f"{TAG} Privet Drive")


def post(port: int, payload: str, headers: dict[str, str]) -> int:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    conn.request("POST", "/webhooks/stripe", body=payload.encode(), headers=headers)
    return conn.getresponse().status


def with_personal_data(body: dict[str, Any]) -> dict[str, Any]:
    """A customer's e-mail, name and address in the event; the e-mail also where the rules fail."""
    subscription = body["data"]["object"]
    subscription["customer_email"] = EMAIL
    subscription["metadata"] = {"name": PERSONAL[1], "address": PERSONAL[2]}
    subscription["items"]["data"][0]["price"]["unit_amount_decimal"] = EMAIL
    return body


def test_json_logs_of_the_web_and_the_worker_parse_and_carry_no_secret_or_email(
    secret_settings: Settings, tmp_path: Path
) -> None:
    env = {**os.environ, **env_of(secret_settings), "PYTHONPATH": str(ROOT)}
    env |= {"MRR_LOG_FORMAT": "json", "MRR_MAX_ATTEMPTS": "1"}
    log = tmp_path / "processes.log"
    good = subscription_event("evt_ok", "customer.subscription.created", NOW, customer="cus_ok")
    bad = with_personal_data(
        subscription_event("evt_bad", "customer.subscription.created", NOW, customer="cus_bad")
    )
    with gunicorn(env, log) as port:
        for body in (good, bad):
            assert post(port, *signed(body, WEBHOOK_SECRET)) == 200
        assert post(port, *signed(bad, "whsec_wrong")) == 400
        assert post(port, json.dumps(bad), {"Stripe-Signature": "t=1,v1=x"}) == 400
    worker = subprocess.run(
        [sys.executable, "-m", "scripts.cli", "-v", "worker", "--burst"],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert worker.returncode == 0, worker.stderr[-2000:]
    engine = make_engine(secret_settings.database_url)
    with engine.connect() as conn:
        failed = inbox.list_rows(conn, status="failed")
    engine.dispose()
    assert [row.event_id for row in failed] == ["evt_bad"]

    ours = [line for line in log.read_text().splitlines() if line.startswith("{")]
    ours += worker.stderr.splitlines()
    records = [json.loads(line) for line in ours]  # every line of ours is one JSON object
    rejected = [r for r in records if r["message"].startswith("webhook rejected (bad_signature)")]
    assert rejected and all(r["request_id"] and r["logger"] == "ingest.webhook" for r in rejected)
    marked = [r for r in records if "marked failed" in r["message"]]
    assert [r["inbox_id"] for r in marked] == [failed[0].id], ours
    assert "<email>" in marked[0]["message"]
    text = "\n".join(ours)
    assert_no_secret(text)
    leaked = [value for value in PERSONAL if value in text]
    assert not leaked, f"personal data {leaked} in: {text[-2000:]}"
