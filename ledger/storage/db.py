"""Engines for PostgreSQL and SQLite, set up for a serialized, append-only ledger."""

from __future__ import annotations

import hashlib
import sqlite3
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, DateTime, Engine, Table, TypeDecorator, create_engine, event
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Dialect, make_url

IDLE_TX_TIMEOUT_MS = 60_000


class UTCDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC datetimes, stored naive-UTC so SQLite and PostgreSQL agree."""

    impl = DateTime
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given for a UTC column")
        return value.astimezone(UTC).replace(tzinfo=None)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        return None if value is None else value.replace(tzinfo=UTC)


def sha256_hex(text: str | None) -> str | None:
    """Hex SHA-256 of the UTF-8 text, as PostgreSQL's encode(sha256(convert_to(t, 'UTF8')))."""
    return None if text is None else hashlib.sha256(text.encode("utf-8")).hexdigest()


def dialect_insert(conn: Connection, table: Table) -> Any:
    """INSERT with the dialect's ON CONFLICT clauses (PostgreSQL and SQLite share the form)."""
    return (postgresql if conn.dialect.name == "postgresql" else sqlite).insert(table)


def make_engine(url: str, **kwargs: Any) -> Engine:
    parsed = make_url(url)
    if parsed.get_backend_name() == "postgresql" and parsed.drivername == "postgresql":
        parsed = parsed.set(drivername="postgresql+psycopg")
    if parsed.get_backend_name() == "sqlite":
        if parsed.database and parsed.database != ":memory:":
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(parsed, connect_args={"timeout": 30}, **kwargs)
        _serialize_sqlite_writers(engine)
        return engine
    # No pre-ping: it costs a round trip per checkout (a sixth of a webhook's time). A
    # connection that died with the server fails its statement instead; the pool then drops
    # every connection, the webhook answers 503 and Stripe retries, a job is retried.
    # A transaction left idle (a client stuck or gone without closing its socket) releases
    # its customer and chain locks after a minute instead of holding up every writer.
    engine = create_engine(
        parsed,
        pool_recycle=1800,
        connect_args={"options": f"-c idle_in_transaction_session_timeout={IDLE_TX_TIMEOUT_MS}"},
        **kwargs,
    )
    return engine


def _serialize_sqlite_writers(engine: Engine) -> None:
    # pysqlite's own transaction handling defers BEGIN; we take the write lock up front
    # (BEGIN IMMEDIATE) so concurrent workers queue on the busy timeout instead of failing
    # mid-transaction with "database is locked".
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: sqlite3.Connection, _record: Any) -> None:
        dbapi_conn.isolation_level = None
        cursor = dbapi_conn.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA busy_timeout=30000")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.close()
        # The ledger's hash-chain trigger (migration 0003) calls this; SQLite has no sha256.
        dbapi_conn.create_function("mrr_sha256", 1, sha256_hex, deterministic=True)

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Any) -> None:
        conn.exec_driver_sql("BEGIN IMMEDIATE")
