"""`mrr up`: migrations, Redis, demo data, then gunicorn (web) and `mrr worker` side by side."""

from __future__ import annotations

import os
import secrets
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import replace

import click
from sqlalchemy import func, select

from ledger.settings import Settings, redact_url
from ledger.storage import migrate
from ledger.storage.db import make_engine
from ledger.storage.schema import inbox as inbox_table
from ledger.storage.users import BadUser
from scripts.demo import Loaded, describe, load_demo
from scripts.users_cli import add_account
from workers import redis_server

DEMO_EMAIL = "demo@example.com"


def _describe_database(url: str) -> str:
    if url.startswith("sqlite"):
        return f"SQLite file {url.removeprefix('sqlite:///')} (set DATABASE_URL for PostgreSQL)"
    return f"PostgreSQL {redact_url(url)}"


def load_demo_if_empty(settings: Settings) -> Loaded | None:
    engine = make_engine(settings.database_url)
    try:
        with engine.connect() as conn:
            stored = conn.execute(select(func.count()).select_from(inbox_table)).scalar_one()
    finally:
        engine.dispose()
    if stored:
        return None
    click.echo("Loading the demo into the empty ledger (once; `mrr up --no-demo` skips it)...")
    return load_demo(settings)


def demo_sign_in(settings: Settings) -> list[str]:
    """The demo's sign-in, made with the demo: an admin account, its password shown only now
    (the database keeps a hash). An account already there with that email is left alone."""
    try:
        user, password = add_account(settings.database_url, DEMO_EMAIL, "admin")
    except BadUser as problem:
        return [f"sign in:  {problem}; `mrr users add EMAIL` makes another"]
    return [f"sign in:  {user.email} with the password {password} (an admin; shown only now)"]


def run_local(settings: Settings, *, host: str, port: int, demo: bool) -> int:
    migrate.upgrade(settings.database_url)
    redis = redis_server.resolve(settings.redis_url)
    env = dict(os.environ, DATABASE_URL=settings.database_url, REDIS_URL=redis.url)
    # Web and worker count into one fresh directory that GET /metrics adds up.
    metrics_dir = tempfile.TemporaryDirectory(prefix="mrr-metrics-")
    env["PROMETHEUS_MULTIPROC_DIR"] = metrics_dir.name
    token = settings.api_token or secrets.token_urlsafe(24)
    env["MRR_API_TOKEN"] = token
    loaded = load_demo_if_empty(replace(settings, redis_url=redis.url)) if demo else None

    click.echo(f"MRR Ledger on http://{host}:{port}")
    click.echo(f"  webhook:  POST http://{host}:{port}/webhooks/stripe")
    click.echo(f"  health:   GET  http://{host}:{port}/readyz")
    click.echo(f"  metrics:  GET  http://{host}:{port}/metrics (Prometheus; the API token)")
    click.echo(f"  database: {_describe_database(settings.database_url)}")
    click.echo(f"  redis:    {redis.description}")
    click.echo(f"  pages:    http://{host}:{port}/ (sign in; accounts: `mrr users add EMAIL`)")
    if settings.api_token:
        click.echo(f"  api:      http://{host}:{port}/api/mrr with MRR_API_TOKEN")
    else:
        click.echo(f"  api:      http://{host}:{port}/api/mrr with the token {token} (made for")
        click.echo("            this run; set MRR_API_TOKEN to choose one)")
    if not settings.webhook_secrets:
        click.echo(
            "  warning:  STRIPE_WEBHOOK_SECRET is not set; the webhook answers 503 until it is"
        )
    if loaded is not None:
        for line in [*describe(loaded), *demo_sign_in(settings)]:
            click.echo(f"  {line}")
    click.echo("Ctrl-C stops both processes.")

    bindir = os.path.dirname(sys.executable)
    web = subprocess.Popen(
        [
            os.path.join(bindir, "gunicorn"),
            "--bind",
            f"{host}:{port}",
            "--workers",
            "2",
            "--access-logfile",
            "-",
            "ingest.app:create_app()",
        ],
        env=env,
    )
    worker = subprocess.Popen([os.path.join(bindir, "mrr"), "worker", "--requeue-now"], env=env)
    try:
        return _supervise([web, worker])
    finally:
        metrics_dir.cleanup()
        if redis.embedded:
            redis_server.stop_embedded(redis.url)


def _stop_on_sigterm(_signum: int, _frame: object) -> None:
    raise KeyboardInterrupt


def _supervise(children: list[subprocess.Popen[bytes]]) -> int:
    # A process manager stops us with SIGTERM: shut the children (and Redis) down as Ctrl-C does.
    signal.signal(signal.SIGTERM, _stop_on_sigterm)
    try:
        while all(child.poll() is None for child in children):
            time.sleep(0.5)
    except KeyboardInterrupt:
        pass
    for child in children:
        if child.poll() is None:
            child.send_signal(signal.SIGTERM)
    for child in children:
        try:
            child.wait(timeout=10)
        except subprocess.TimeoutExpired:
            child.kill()
    return max((child.returncode or 0) for child in children)
