"""PostgreSQL only: an INSERT ... ON CONFLICT DO NOTHING RETURNING through libpq's prepared-
statement call (`psycopg.pq`, one blocking call that releases the GIL), in autocommit on the
calling thread's own connection from the pool, with the values as text.

For the webhook's one-row insert: SQLAlchemy's execution layer and the pool's checkouts took
as much CPU as the rest of a webhook, and psycopg's cursor a third of what remained
(bench/ingest.py). Errors come out as SQLAlchemy's; a connection the server dropped leaves the
pool, and the next call takes a new one with the statement prepared again.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import psycopg
from psycopg import pq
from sqlalchemy import Engine, Insert, Select
from sqlalchemy.engine import Dialect
from sqlalchemy.exc import DBAPIError
from sqlalchemy.pool import PoolProxiedConnection


@dataclass(frozen=True, slots=True)
class _Compiled:
    insert: bytes
    lookup: bytes
    insert_params: tuple[str, ...]
    lookup_params: tuple[str, ...]
    processors: dict[str, Any]


class PreparedInsert:
    """`insert`, an INSERT ... ON CONFLICT DO NOTHING RETURNING with a bind parameter per
    column, and `lookup`, a SELECT of the row that was in its way, with bind parameters named
    as the insert's."""

    def __init__(self, name: str, insert: Insert, lookup: Select[Any]) -> None:
        self._name = name.encode()
        self._insert = insert
        self._lookup = lookup
        self._compiled: dict[Dialect, _Compiled] = {}

    def run(
        self, engine: Engine, values: Mapping[str, Any], threads: threading.local
    ) -> tuple[bool, list[str | None]]:
        """Insert `values` on this thread's connection (kept in `threads`): (True, the row the
        insert returned), or (False, the row the lookup found), each column as text."""
        sql = self._compile(engine.dialect)
        error = engine.dialect.loaded_dbapi.Error
        fairy: PoolProxiedConnection | None = getattr(threads, "connection", None)
        try:
            if fairy is None or not fairy.is_valid:
                fairy = threads.connection = engine.raw_connection()
                fairy.driver_connection.autocommit = True  # type: ignore[union-attr]
            pgconn: pq.abc.PGconn = fairy.driver_connection.pgconn  # type: ignore[union-attr]
            # Marked on the connection, not the thread: a connection another thread left in the
            # pool has its statement already.
            if fairy.info.get(self._name) is not pgconn:
                _answer(pgconn, pgconn.prepare(self._name, sql.insert))
                fairy.info[self._name] = pgconn
            params = [
                _text(
                    values[name]
                    if (process := sql.processors[name]) is None
                    else process(values[name])
                )
                for name in sql.insert_params
            ]
            # None is SQL NULL to libpq, whatever psycopg's stub says.
            inserted = _answer(pgconn, pgconn.exec_prepared(self._name, params))  # type: ignore[arg-type]
            if inserted.ntuples:
                return True, _first_row(inserted)
            lookup = [_text(values[name]) for name in sql.lookup_params]
            found = _answer(pgconn, pgconn.exec_params(sql.lookup, lookup))  # type: ignore[arg-type]
            return False, _first_row(found)
        except error as problem:
            driver = getattr(fairy, "driver_connection", None)
            dropped = engine.dialect.is_disconnect(problem, driver, None) or (
                driver is not None and driver.pgconn.status == pq.ConnStatus.BAD
            )
            if fairy is not None and fairy.is_valid and dropped:
                fairy.invalidate(problem)
            raise DBAPIError.instance(
                sql.insert.decode(), None, problem, error, hide_parameters=True
            ) from problem

    def _compile(self, dialect: Dialect) -> _Compiled:
        """Both statements with `$n` parameters, their parameter names in `$n` order, and the
        insert's bind processors (as SQLAlchemy would apply them)."""
        found = self._compiled.get(dialect)
        if found is None:
            numbered = type(dialect)(paramstyle="numeric_dollar")  # type: ignore[call-arg]
            insert = self._insert.compile(dialect=numbered)
            lookup = self._lookup.compile(dialect=numbered)
            found = self._compiled[dialect] = _Compiled(
                insert=str(insert).encode(),
                lookup=str(lookup).encode(),
                insert_params=tuple(insert.positiontup or ()),
                lookup_params=tuple(lookup.positiontup or ()),
                processors={
                    name: bind.type.bind_processor(dialect) for name, bind in insert.binds.items()
                },
            )
        return found


def _first_row(result: pq.abc.PGresult) -> list[str | None]:
    if not result.ntuples:
        raise LookupError("the row in the insert's way was not found")
    return [
        None if (value := result.get_value(0, column)) is None else bytes(value).decode()
        for column in range(result.nfields)
    ]


def _text(value: object) -> bytes | None:
    """A parameter in PostgreSQL's text format (the statement's casts give the types)."""
    if value is None:
        return None
    if isinstance(value, bool):
        return b"t" if value else b"f"
    if isinstance(value, str):
        return value.encode()
    if isinstance(value, int):
        return str(value).encode()
    if isinstance(value, datetime):
        return value.isoformat(sep=" ").encode()
    raise TypeError(f"no text form for {type(value).__name__}")


def _answer(pgconn: pq.abc.PGconn, result: pq.abc.PGresult) -> pq.abc.PGresult:
    """The result, or psycopg's exception for it."""
    if result.status in (pq.ExecStatus.TUPLES_OK, pq.ExecStatus.COMMAND_OK):
        return result
    if pgconn.status == pq.ConnStatus.BAD:
        reason = result.error_message.decode(errors="replace")
        raise psycopg.OperationalError(f"the connection to the database was lost: {reason}")
    raise psycopg.errors.error_from_result(result, encoding="utf-8")
