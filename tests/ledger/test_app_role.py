"""The restricted PostgreSQL role: the service works under it, the ledger cannot be changed."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest
from click.testing import CliRunner
from sqlalchemy import Engine, create_engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError

from ledger.processing import process_inbox_row
from ledger.reporting import projector
from ledger.storage import chain, commitments, inbox
from ledger.storage.db import make_engine
from scripts.cli import main
from tests.support.pipeline import subscription_event

NOW = 1_767_225_600


@pytest.fixture
def role(engine: Engine) -> Iterator[str]:
    """A role name of this test's own (roles are cluster-wide), dropped afterwards."""
    name = f"mrr_app_{uuid.uuid4().hex[:10]}"
    yield name
    if engine.dialect.name == "postgresql":
        with engine.begin() as conn:
            exists = conn.execute(text("SELECT 1 FROM pg_roles WHERE rolname = :r"), {"r": name})
            if exists.first() is not None:
                conn.execute(text(f'DROP OWNED BY "{name}"'))
                conn.execute(text(f'DROP ROLE "{name}"'))


def as_role(db_url: str, name: str) -> Engine:
    url = make_url(db_url).set(username=name, password=None)
    return make_engine(url.render_as_string(hide_password=False))


def test_the_service_runs_under_the_role_and_cannot_change_the_ledger(
    engine: Engine, db_url: str, role: str
) -> None:
    if engine.dialect.name != "postgresql":
        pytest.skip("roles are PostgreSQL's")
    runner = CliRunner()
    env = {"DATABASE_URL": db_url, "MRR_APP_PASSWORD": "s3cret-app-pw"}
    created = runner.invoke(
        main, ["db", "create-app-role", role, "--password-env", "MRR_APP_PASSWORD"], env=env
    )
    assert created.exit_code == 0, created.output
    assert "SELECT, INSERT (append only): ledger_entries" in created.output
    assert "s3cret-app-pw" not in created.output
    again = runner.invoke(main, ["db", "create-app-role", role], env=env)
    assert again.exit_code == 0, again.output

    app = as_role(db_url, role)
    try:
        with app.begin() as conn:
            body = subscription_event("evt_a", "customer.subscription.created", NOW)
            (stored,) = inbox.store_events(conn, [(inbox.dumps(body), body)])
        outcome = process_inbox_row(app, stored.inbox_id, max_attempts=4)
        assert (outcome.status, outcome.appended) == ("processed", 1)
        with app.connect() as conn:
            assert chain.verify(conn).verified == 1
        with app.begin() as conn:  # the projector needs no lock on the ledger, only its own rows
            assert projector.catch_up(conn) == 1
            assert projector.replay(conn) == 1
        with app.begin() as conn:  # committed MRR's kept folds: written, emptied and refilled
            assert commitments.rebuild(conn) == 1

        with engine.begin() as conn:  # the owner switches the append-only triggers off
            conn.execute(text("ALTER TABLE ledger_entries DISABLE TRIGGER USER"))
            conn.execute(text("ALTER TABLE ledger_chain DISABLE TRIGGER USER"))
        try:
            for statement in (
                "UPDATE ledger_entries SET amount = 1",
                "DELETE FROM ledger_entries",
                "TRUNCATE ledger_entries",
                "UPDATE ledger_chain SET row_hash = prev_hash",
                "DELETE FROM ledger_chain",
                "INSERT INTO ledger_chain VALUES (2, 2, 'x', 'y')",
                "ALTER TABLE ledger_entries DISABLE TRIGGER USER",
                "DROP TABLE ledger_entries",
            ):
                refused = r"permission denied|must be owner"
                with pytest.raises(DBAPIError, match=refused), app.begin() as conn:
                    conn.execute(text(statement))
        finally:
            with engine.begin() as conn:
                conn.execute(text("ALTER TABLE ledger_entries ENABLE TRIGGER USER"))
                conn.execute(text("ALTER TABLE ledger_chain ENABLE TRIGGER USER"))
        with app.connect() as conn:
            assert chain.verify(conn).ok
    finally:
        app.dispose()


def test_the_password_is_really_set(engine: Engine, db_url: str, role: str) -> None:
    if engine.dialect.name != "postgresql":
        pytest.skip("roles are PostgreSQL's")
    env = {"DATABASE_URL": db_url, "PW": "another-pw"}
    result = CliRunner().invoke(
        main, ["db", "create-app-role", role, "--password-env", "PW"], env=env
    )
    assert result.exit_code == 0, result.output
    admin = create_engine(make_url(db_url).set(drivername="postgresql+psycopg"))
    with admin.connect() as conn:
        stored = conn.execute(
            text("SELECT rolpassword FROM pg_authid WHERE rolname = :r"), {"r": role}
        ).scalar_one()
    admin.dispose()
    assert stored is not None and stored.startswith("SCRAM-SHA-256$")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["Robert'); DROP TABLE x;--"], "must be lowercase letters"),
        (["mrr_ok", "--password-env", "MRR_NOT_SET_ANYWHERE"], "MRR_NOT_SET_ANYWHERE is not set"),
    ],
)
def test_bad_arguments_name_the_problem(db_url: str, args: list[str], message: str) -> None:
    result = CliRunner().invoke(
        main, ["db", "create-app-role", *args], env={"DATABASE_URL": db_url}
    )
    assert result.exit_code == 2 and message in result.output


def test_sqlite_has_no_roles(engine: Engine, db_url: str) -> None:
    if engine.dialect.name != "sqlite":
        pytest.skip("SQLite only")
    result = CliRunner().invoke(
        main, ["db", "create-app-role", "mrr_app"], env={"DATABASE_URL": db_url}
    )
    assert result.exit_code == 2 and "needs PostgreSQL" in result.output
