"""GET /healthz (the process is up), GET /readyz (database, migrations and Redis) and
GET /healthz/data (the last reconcile: does the ledger agree with Stripe?)."""

from __future__ import annotations

import redis
from flask import Blueprint, Response, jsonify
from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError

from ingest.api import ApiError, _api_error, authorized
from ingest.services import services
from ledger.backfill.reconcile_store import last_finished
from ledger.storage.migrate import is_up_to_date

health = Blueprint("health", __name__)
health.register_error_handler(ApiError, _api_error)


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


@health.get("/healthz/data")
@authorized
def data() -> tuple[Response, int]:
    """The last reconcile's differences (subscription and customer ids: behind the API token).

    503 when it found any, or failed; not a readiness check: the service itself is fine.
    """
    try:
        with services().engine.connect() as conn:
            run = last_finished(conn)
    except SQLAlchemyError as problem:
        reason = f"database unreachable ({type(problem).__name__})"
        return jsonify(ok=False, problems=[reason], reconcile=None), 503
    found = run.problems() if run is not None else []
    body = {"ok": not found, "problems": found, "reconcile": run.fields() if run else None}
    return jsonify(body), 200 if not found else 503
