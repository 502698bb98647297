"""The Flask app factory (gunicorn: `ingest.app:create_app()`)."""

from __future__ import annotations

import functools
import logging
import os
import re
import uuid

from flask import Flask, request

from ingest import pages, security
from ingest.api import reports
from ingest.health import health
from ingest.metrics import metrics
from ingest.services import Services
from ingest.webhook import webhook
from ledger import logs
from ledger.settings import Settings
from ledger.storage.db import make_engine
from workers.queue import WakeFlag, connect, make_queue
from workers.waker import Waker


def create_app(settings: Settings | None = None) -> Flask:
    settings = settings or Settings.from_env()
    app = Flask(__name__)
    app.config["MAX_CONTENT_LENGTH"] = settings.max_body_bytes
    connection = connect(settings)
    queue = make_queue(settings, connection)
    app.extensions["mrr"] = Services(
        settings=settings,
        engine=make_engine(settings.database_url),
        redis=connection,
        queue=queue,
        waker=Waker(functools.partial(WakeFlag, queue)),
    )
    security.configure(app, settings)
    app.register_blueprint(webhook)
    security.csrf.exempt(webhook)  # Stripe signs its requests; no browser session is involved
    app.register_blueprint(health)
    app.register_blueprint(reports)
    pages.register(app)
    app.register_blueprint(metrics)
    app.before_request(_name_request)
    app.teardown_request(_forget_request)
    if not logging.getLogger().handlers:
        logs.configure(os.environ)
    return app


_REQUEST_ID = re.compile(r"[A-Za-z0-9._-]{1,64}")


def _name_request() -> None:
    """The request id for logs: the proxy's X-Request-Id if it is a plain token, else a new one."""
    given = request.headers.get("X-Request-Id", "")
    logs.request_id.set(given if _REQUEST_ID.fullmatch(given) else uuid.uuid4().hex)


def _forget_request(_error: BaseException | None) -> None:
    logs.request_id.set(None)
