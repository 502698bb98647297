"""Fresh, migrated databases per test: PostgreSQL from a template database, SQLite from a file."""

from __future__ import annotations

import json
import os
import shutil
import uuid
from collections.abc import Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, column, create_engine, insert, table, text
from sqlalchemy.engine import make_url

from ledger.storage import inbox, migrate
from ledger.storage.schema import inbox as inbox_table

PG_ADMIN_URL = os.environ.get("TEST_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")


def _admin_execute(*statements: str) -> None:
    engine = create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as conn:
            for statement in statements:
                conn.execute(text(statement))
    finally:
        engine.dispose()


def pg_url(database: str) -> str:
    return make_url(PG_ADMIN_URL).set(database=database).render_as_string(hide_password=False)


class Templates:
    """One migrated template of each database per test session.

    With `background`, PostgreSQL copies are made one ahead and dropped afterwards, off the
    tests' path, each on a thread of its own: on a busy server a CREATE DATABASE takes about
    0.4 s and a DROP DATABASE 0.5 s (it forces a checkpoint), for each of some 270 tests.
    """

    def __init__(self, workdir: Path, *, background: bool = False) -> None:
        self.workdir = workdir
        self.sqlite_template = workdir / "template.sqlite3"
        self.pg_template = f"mrr_tpl_{uuid.uuid4().hex[:12]}"
        self._pg_ready = False
        # Each on its own thread: a drop, waiting for its checkpoint, holds up no create.
        self._creator = ThreadPoolExecutor(max_workers=1) if background else None
        self._dropper = ThreadPoolExecutor(max_workers=1) if background else None
        self._ahead: Future[str] | None = None
        self._drops: list[Future[None]] = []

    def sqlite_copy(self) -> str:
        if not self.sqlite_template.exists():
            migrate.upgrade(f"sqlite:///{self.sqlite_template}")
        target = self.workdir / f"db_{uuid.uuid4().hex[:12]}.sqlite3"
        shutil.copy(self.sqlite_template, target)
        return f"sqlite:///{target}"

    def _create(self) -> str:
        name = f"mrr_t_{uuid.uuid4().hex[:12]}"
        _admin_execute(f'CREATE DATABASE "{name}" TEMPLATE "{self.pg_template}"')
        return name

    @staticmethod
    def _drop(name: str) -> None:
        _admin_execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    @contextmanager
    def pg_copy(self) -> Iterator[str]:
        if not self._pg_ready:
            _admin_execute(f'CREATE DATABASE "{self.pg_template}"')
            migrate.upgrade(pg_url(self.pg_template))
            self._pg_ready = True
        name = self._ahead.result() if self._ahead is not None else self._create()
        if self._creator is not None:
            self._ahead = self._creator.submit(self._create)
        try:
            yield pg_url(name)
        finally:
            if self._dropper is not None:
                self._drops.append(self._dropper.submit(self._drop, name))
            else:
                self._drop(name)

    def close(self) -> None:
        if self._creator is not None and self._dropper is not None:
            if self._ahead is not None:
                self._drops.append(self._dropper.submit(self._drop, self._ahead.result()))
            self._creator.shutdown(wait=True)
            self._dropper.shutdown(wait=True)
            for dropped in self._drops:
                dropped.result()
        if self._pg_ready:
            _admin_execute(f'DROP DATABASE IF EXISTS "{self.pg_template}" WITH (FORCE)')


def store_before_sources(conn: Connection, bodies: Sequence[dict[str, Any]]) -> None:
    """Store events as the inbox held them before migration 0015 (no `account` column)."""
    rows = []
    for body in bodies:
        row = inbox._row_values(json.dumps(body), body)
        row.pop("account")
        rows.append(row)
    old = table("inbox", *(column(name, inbox_table.c[name].type) for name in rows[0]))
    conn.execute(insert(old), rows)


@contextmanager
def database_at(backend: str, revision: str, workdir: Path) -> Iterator[str]:
    """A new database of `backend` ("sqlite" or "postgresql") migrated up to `revision` only:
    what a deployment held before a migration under test; dropped afterwards."""
    if backend == "sqlite":
        url = f"sqlite:///{workdir}/old.sqlite3"
        migrate.upgrade(url, revision)
        yield url
        return
    name = f"mrr_t_{uuid.uuid4().hex[:12]}"
    _admin_execute(f'CREATE DATABASE "{name}"')
    try:
        migrate.upgrade(pg_url(name), revision)
        yield pg_url(name)
    finally:
        _admin_execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
