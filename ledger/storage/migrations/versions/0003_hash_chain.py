"""Tamper evidence: a hash chain over ledger_entries, appended by a trigger inside the database.

Every inserted ledger row gets one `ledger_chain` link (seq, entry_id, prev_hash, row_hash);
the hashed text is defined in ledger/storage/chain.py, which `mrr verify` recomputes. Writers of the
chain are serialized (PostgreSQL: a transaction-level advisory lock taken in the trigger;
SQLite: BEGIN IMMEDIATE already locks the database), and the primary key on `seq` plus the
unique `prev_hash` make a fork fail in the database rather than be stored.

Revision ID: 0003
Revises: 0002
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

Id = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
GENESIS = "0" * 64
# Arbitrary, fixed: the advisory lock key of "the one ledger chain" in this database.
CHAIN_LOCK_KEY = 7_236_837_420_180_517_733


def _fields(row: str, dialect: str) -> str:
    """SQL for the canonical text after prev_hash (ledger/storage/chain.py documents the format)."""

    def field(text_sql: str) -> str:
        if dialect == "postgresql":
            return f"length({text_sql})::text || ':' || {text_sql}"
        return f"length({text_sql}) || ':' || {text_sql}"

    def number(column: str) -> str:
        if dialect == "postgresql":
            return f"coalesce({row}.{column}::text, '')"
        return f"coalesce(CAST({row}.{column} AS TEXT), '')"

    def moment(column: str) -> str:
        if dialect == "postgresql":
            return f'to_char({row}.{column}, \'YYYY-MM-DD"T"HH24:MI:SS.US"Z"\')'
        # SQLAlchemy stores SQLite datetimes as 'YYYY-MM-DD HH:MM:SS.ffffff' (UTC, see ledger.db).
        return f"replace({row}.{column}, ' ', 'T') || 'Z'"

    parts = [
        number("id"),
        f"{row}.customer_id",
        f"{row}.subscription_id",
        f"{row}.category",
        f"{row}.currency",
        number("amount"),
        moment("effective_at"),
        moment("recorded_at"),
        f"{row}.source_event_id",
        f"{row}.cause_event_id",
        number("reversal_of"),
        f"{row}.explanation",
    ]
    return " || '|' || ".join(field(part) for part in parts)


PG_CHAIN = f"""
CREATE FUNCTION ledger_chain_append() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, public AS $$
DECLARE
  last_seq bigint;
  last_hash text;
BEGIN
  -- Held until commit: the next writer reads this link only once it is committed, so the
  -- chain cannot fork (under REPEATABLE READ a stale read fails on the seq primary key).
  PERFORM pg_advisory_xact_lock({CHAIN_LOCK_KEY});
  SELECT seq, row_hash INTO last_seq, last_hash FROM ledger_chain ORDER BY seq DESC LIMIT 1;
  IF NOT FOUND THEN
    last_seq := 0;
    last_hash := '{GENESIS}';
  END IF;
  INSERT INTO ledger_chain (seq, entry_id, prev_hash, row_hash)
  VALUES (
    last_seq + 1, NEW.id, last_hash,
    encode(sha256(convert_to(last_hash || '|' || {_fields("NEW", "postgresql")}, 'UTF8')), 'hex')
  );
  RETURN NULL;
END
$$;
CREATE TRIGGER ledger_entries_chain AFTER INSERT ON ledger_entries
  FOR EACH ROW EXECUTE FUNCTION ledger_chain_append();

CREATE FUNCTION ledger_chain_refuse_change() RETURNS trigger AS $$
BEGIN
  RAISE EXCEPTION 'ledger_chain is append-only: % refused', TG_OP
    USING ERRCODE = 'insufficient_privilege';
END
$$ LANGUAGE plpgsql;
CREATE TRIGGER ledger_chain_no_update_delete BEFORE UPDATE OR DELETE ON ledger_chain
  FOR EACH ROW EXECUTE FUNCTION ledger_chain_refuse_change();
CREATE TRIGGER ledger_chain_no_truncate BEFORE TRUNCATE ON ledger_chain
  FOR EACH STATEMENT EXECUTE FUNCTION ledger_chain_refuse_change();
"""

# SQLite has no sha256: ledger.db registers mrr_sha256 on every connection it opens, so a
# connection without it cannot append to the ledger at all.
SQLITE_LAST = f"""
  (SELECT coalesce((SELECT max(seq) FROM ledger_chain), 0) AS seq,
          coalesce((SELECT row_hash FROM ledger_chain ORDER BY seq DESC LIMIT 1), '{GENESIS}')
            AS hash) AS last
"""


def _sqlite_append(row: str) -> str:
    return f"""INSERT INTO ledger_chain (seq, entry_id, prev_hash, row_hash)
  SELECT last.seq + 1, {row}.id, last.hash,
         mrr_sha256(last.hash || '|' || {_fields(row, "sqlite")})
  FROM {SQLITE_LAST}"""


SQLITE_CHAIN = [
    f"""CREATE TRIGGER ledger_entries_chain AFTER INSERT ON ledger_entries
       BEGIN {_sqlite_append("NEW")}; END""",
    """CREATE TRIGGER ledger_chain_no_update BEFORE UPDATE ON ledger_chain
       BEGIN SELECT RAISE(ABORT, 'ledger_chain is append-only: UPDATE refused'); END""",
    """CREATE TRIGGER ledger_chain_no_delete BEFORE DELETE ON ledger_chain
       BEGIN SELECT RAISE(ABORT, 'ledger_chain is append-only: DELETE refused'); END""",
]


def _chain_existing_rows(dialect: str) -> None:
    """Link rows written before this migration, in id order, with the trigger's own SQL."""
    bind = op.get_bind()
    ids = [
        int(i) for i in bind.execute(sa.text("SELECT id FROM ledger_entries ORDER BY id")).scalars()
    ]
    if not ids:
        return
    if dialect == "postgresql":
        statement = sa.text(
            f"""INSERT INTO ledger_chain (seq, entry_id, prev_hash, row_hash)
            SELECT last.seq + 1, e.id, last.hash,
                   encode(sha256(convert_to(last.hash || '|' || {_fields("e", dialect)},
                                            'UTF8')), 'hex')
            FROM ledger_entries e,
                 (SELECT coalesce((SELECT max(seq) FROM ledger_chain), 0) AS seq,
                         coalesce((SELECT row_hash FROM ledger_chain ORDER BY seq DESC LIMIT 1),
                                  '{GENESIS}') AS hash) AS last
            WHERE e.id = :id"""
        )
    else:
        statement = sa.text(
            _sqlite_append("e").replace("FROM ", "FROM ledger_entries e, ", 1) + " WHERE e.id = :id"
        )
    for entry_id in ids:
        bind.execute(statement, {"id": entry_id})


def upgrade() -> None:
    op.create_table(
        "ledger_chain",
        sa.Column("seq", Id, primary_key=True, autoincrement=False),
        sa.Column("entry_id", Id, nullable=False, unique=True),
        sa.Column("prev_hash", sa.String(64), nullable=False, unique=True),
        sa.Column("row_hash", sa.String(64), nullable=False),
    )
    dialect = op.get_bind().dialect.name
    _chain_existing_rows(dialect)
    if dialect == "postgresql":
        op.execute(PG_CHAIN)
    else:
        for statement in SQLITE_CHAIN:
            op.execute(statement)


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP TRIGGER IF EXISTS ledger_entries_chain ON ledger_entries")
        op.execute("DROP TRIGGER IF EXISTS ledger_chain_no_truncate ON ledger_chain")
        op.execute("DROP TRIGGER IF EXISTS ledger_chain_no_update_delete ON ledger_chain")
        op.execute("DROP FUNCTION IF EXISTS ledger_chain_append()")
        op.execute("DROP FUNCTION IF EXISTS ledger_chain_refuse_change()")
    else:
        for name in ("ledger_entries_chain", "ledger_chain_no_update", "ledger_chain_no_delete"):
            op.execute(f"DROP TRIGGER IF EXISTS {name}")
    op.drop_table("ledger_chain")
