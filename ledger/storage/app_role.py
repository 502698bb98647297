"""A PostgreSQL login role for the running service: it can append to the ledger, never change it.

The migration owner keeps DDL and ownership; the service connects as this role. Ledger tables
get SELECT and INSERT only, so UPDATE, DELETE and TRUNCATE are refused by permissions even if
the owner disables the append-only triggers. Run again after every migration: it resets the
grants to exactly these, table by table.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from psycopg import sql
from sqlalchemy import Connection, Engine, text
from sqlalchemy.exc import DBAPIError

__all__ = [
    "APPEND_ONLY_TABLES",
    "READ_ONLY_TABLES",
    "REBUILT_TABLES",
    "AppRoleError",
    "Grants",
    "create_app_role",
]

APPEND_ONLY_TABLES = ("ledger_entries",)
# The chain is written by a SECURITY DEFINER trigger; alembic_version is read by /readyz.
READ_ONLY_TABLES = ("ledger_chain", "alembic_version")
# Rebuilt from the ledger and the inbox: projections (`mrr replay` empties them first) and
# caches (replay checkpoints are removed as events make them stale).
REBUILT_TABLES = (
    "mrr_month_totals",
    "replay_checkpoints",
    "customer_months",
    "segment_month_totals",
    "cohort_month_changes",
    "forecast_cells",
    "committed_customers",
    "committed_prices",
    "committed_price_uses",
)
ROLE_NAME = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")


class AppRoleError(ValueError):
    """The role cannot be set up as asked (never carries the password)."""


@dataclass(frozen=True, slots=True)
class Grants:
    role: str
    append_only: tuple[str, ...]
    read_only: tuple[str, ...]
    working: tuple[str, ...]
    rebuilt: tuple[str, ...]


def check_role_name(name: str) -> str:
    if not ROLE_NAME.match(name):
        raise AppRoleError(
            f"role name {name!r} must be lowercase letters, digits and _, "
            "not starting with a digit, at most 63 characters"
        )
    return name


def _run(conn: Connection, statement: sql.Composable) -> None:
    raw = conn.connection.driver_connection
    conn.exec_driver_sql(statement.as_string(raw))


def _tables(conn: Connection) -> list[str]:
    query = text(
        "SELECT table_name FROM information_schema.tables "
        "WHERE table_schema = current_schema() AND table_type = 'BASE TABLE' ORDER BY table_name"
    )
    return [str(name) for name in conn.execute(query).scalars()]


def _refuse_powerful_roles(conn: Connection, role: str) -> bool:
    """True if the role exists; refuses superusers and the owner of the ledger."""
    found = conn.execute(
        text("SELECT rolsuper, rolbypassrls FROM pg_roles WHERE rolname = :r"), {"r": role}
    ).first()
    owner = conn.execute(
        text(
            "SELECT tableowner FROM pg_tables WHERE tablename = 'ledger_entries' "
            "AND schemaname = current_schema()"
        )
    ).scalar_one_or_none()
    if owner is None:
        raise AppRoleError("no ledger_entries table here: run `mrr db upgrade` first")
    if role == owner:
        raise AppRoleError(f"{role} owns the ledger tables; the service needs a role of its own")
    if found is not None and (found.rolsuper or found.rolbypassrls):
        raise AppRoleError(f"{role} is a superuser or bypasses row security; choose another name")
    return found is not None


def create_app_role(engine: Engine, role: str, password: str | None = None) -> Grants:
    if engine.dialect.name != "postgresql":
        raise AppRoleError("an application role needs PostgreSQL (SQLite has no roles)")
    check_role_name(role)
    who = sql.Identifier(role)
    with engine.begin() as conn:
        exists = _refuse_powerful_roles(conn, role)
        attributes = sql.SQL("LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS")
        verb = sql.SQL("ALTER ROLE" if exists else "CREATE ROLE")
        _run(conn, sql.SQL("{} {} {}").format(verb, who, attributes))
        if password is not None:
            try:
                _run(conn, sql.SQL("ALTER ROLE {} PASSWORD {}").format(who, sql.Literal(password)))
            except DBAPIError as problem:
                # The statement text holds the password: report only the server's reason.
                reason = getattr(getattr(problem.orig, "diag", None), "message_primary", None)
                raise AppRoleError(f"could not set the password: {reason}") from None
        database = conn.execute(text("SELECT current_database()")).scalar_one()
        _run(
            conn,
            sql.SQL("GRANT CONNECT ON DATABASE {} TO {}").format(sql.Identifier(database), who),
        )
        _run(
            conn,
            sql.SQL("GRANT USAGE ON SCHEMA {} TO {}").format(
                sql.Identifier(conn.execute(text("SELECT current_schema()")).scalar_one()), who
            ),
        )
        tables = _tables(conn)
        grants = Grants(
            role=role,
            append_only=tuple(t for t in tables if t in APPEND_ONLY_TABLES),
            read_only=tuple(t for t in tables if t in READ_ONLY_TABLES),
            rebuilt=tuple(t for t in tables if t in REBUILT_TABLES),
            working=tuple(
                t for t in tables if t not in APPEND_ONLY_TABLES + READ_ONLY_TABLES + REBUILT_TABLES
            ),
        )
        for privileges, chosen in (
            ("SELECT, INSERT", grants.append_only),
            ("SELECT", grants.read_only),
            ("SELECT, INSERT, UPDATE", grants.working),
            ("SELECT, INSERT, UPDATE, DELETE", grants.rebuilt),
        ):
            for table in chosen:
                name = sql.Identifier(table)
                _run(conn, sql.SQL("REVOKE ALL ON {} FROM {}").format(name, who))
                _run(conn, sql.SQL("GRANT {} ON {} TO {}").format(sql.SQL(privileges), name, who))
        _run(
            conn,
            sql.SQL("GRANT USAGE ON ALL SEQUENCES IN SCHEMA {} TO {}").format(
                sql.Identifier(conn.execute(text("SELECT current_schema()")).scalar_one()), who
            ),
        )
    return grants
