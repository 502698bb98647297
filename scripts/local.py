"""`mrr up`: migrations, Redis, demo data, then gunicorn (web) and `mrr worker` side by side."""

from __future__ import annotations

import os
import secrets
import signal
import subprocess
import sys
import time

import click
from sqlalchemy import func, select

from ledger.settings import Settings, redact_url
from ledger.storage import inbox, migrate
from ledger.storage.db import make_engine
from ledger.storage.schema import inbox as inbox_table
from scripts.demo import demo_events
from workers import redis_server


def _describe_database(url: str) -> str:
    if url.startswith("sqlite"):
        return f"SQLite file {url.removeprefix('sqlite:///')} (set DATABASE_URL for PostgreSQL)"
    return f"PostgreSQL {redact_url(url)}"


def _load_demo_if_empty(settings: Settings) -> int:
    engine = make_engine(settings.database_url)
    with engine.connect() as conn:
        stored = conn.execute(select(func.count()).select_from(inbox_table)).scalar_one()
    if stored:
        return 0
    return len(inbox.store_events(engine, demo_events(), source="demo"))


def run_local(settings: Settings, *, host: str, port: int, demo: bool) -> int:
    migrate.upgrade(settings.database_url)
    redis = redis_server.resolve(settings.redis_url)
    env = dict(os.environ, DATABASE_URL=settings.database_url, REDIS_URL=redis.url)
    token = settings.api_token or secrets.token_urlsafe(24)
    env["MRR_API_TOKEN"] = token
    loaded = _load_demo_if_empty(settings) if demo else 0

    click.echo(f"MRR Ledger on http://{host}:{port}")
    click.echo(f"  webhook:  POST http://{host}:{port}/webhooks/stripe")
    click.echo(f"  health:   GET  http://{host}:{port}/readyz")
    click.echo(f"  database: {_describe_database(settings.database_url)}")
    click.echo(f"  redis:    {redis.description}")
    if settings.api_token:
        click.echo(f"  reports:  http://{host}:{port}/ and /api/mrr with MRR_API_TOKEN")
    else:
        click.echo(f"  reports:  http://{host}:{port}/ with the token {token} (made for this run;")
        click.echo("            set MRR_API_TOKEN to choose one)")
    if not settings.webhook_secrets:
        click.echo(
            "  warning:  STRIPE_WEBHOOK_SECRET is not set; the webhook answers 503 until it is"
        )
    if loaded:
        click.echo(f"  demo:     loaded {loaded} demo events into the empty inbox")
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
