"""The Flask app factory (gunicorn: `ingest.app:create_app()`)."""

from __future__ import annotations

import functools
import logging

from flask import Flask

from ingest import pages, security
from ingest.api import reports
from ingest.health import health
from ingest.services import Services
from ingest.webhook import webhook
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
    if not logging.getLogger().handlers:
        logging.basicConfig(
            level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s"
        )
    return app
