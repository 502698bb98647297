"""GET /healthz (the process is up) and GET /readyz (database, migrations and Redis)."""

from __future__ import annotations

import redis
from flask import Blueprint, Response, jsonify
from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError

from ingest.services import services
from ledger.storage.migrate import is_up_to_date

health = Blueprint("health", __name__)


@health.get("/healthz")
def healthz() -> Response:
    return jsonify(status="ok")


@health.get("/readyz")
def readyz() -> tuple[Response, int]:
    found = services()
    checks: dict[str, str] = {}
    try:
        with found.engine.connect() as conn:
            conn.execute(text("SELECT 1"))
        checks["database"] = "ok"
        migrated = is_up_to_date(found.engine, found.settings.database_url)
        checks["migrations"] = "ok" if migrated else "not applied: run `mrr db upgrade`"
    except SQLAlchemyError as problem:
        checks["database"] = f"unreachable ({type(problem).__name__})"
        checks["migrations"] = "unknown"
    try:
        found.redis.ping()
        checks["redis"] = "ok"
    except (redis.exceptions.RedisError, OSError) as problem:
        checks["redis"] = f"unreachable ({type(problem).__name__})"
    ready = all(value == "ok" for value in checks.values())
    return jsonify(ready=ready, checks=checks), 200 if ready else 503
