"""Inbox, append-only ledger, customers, reference objects.

Revision ID: 0001
Revises:
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from ledger.storage.db import UTCDateTime

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

Id = sa.BigInteger().with_variant(sa.Integer(), "sqlite")

PG_APPEND_ONLY = """
CREATE OR REPLACE FUNCTION ledger_refuse_change() RETURNS trigger AS $$
BEGIN
  RAISE EXCEPTION 'ledger_entries is append-only: % refused', TG_OP
    USING ERRCODE = 'insufficient_privilege';
END
$$ LANGUAGE plpgsql;
CREATE TRIGGER ledger_entries_no_update_delete BEFORE UPDATE OR DELETE ON ledger_entries
  FOR EACH ROW EXECUTE FUNCTION ledger_refuse_change();
CREATE TRIGGER ledger_entries_no_truncate BEFORE TRUNCATE ON ledger_entries
  FOR EACH STATEMENT EXECUTE FUNCTION ledger_refuse_change();
"""

SQLITE_APPEND_ONLY = [
    """CREATE TRIGGER ledger_entries_no_update BEFORE UPDATE ON ledger_entries
       BEGIN SELECT RAISE(ABORT, 'ledger_entries is append-only: UPDATE refused'); END""",
    """CREATE TRIGGER ledger_entries_no_delete BEFORE DELETE ON ledger_entries
       BEGIN SELECT RAISE(ABORT, 'ledger_entries is append-only: DELETE refused'); END""",
]


def upgrade() -> None:
    op.create_table(
        "inbox",
        sa.Column("id", Id, primary_key=True, autoincrement=True),
        sa.Column("event_id", sa.String(255), nullable=False, unique=True),
        sa.Column("event_type", sa.String(255), nullable=False),
        sa.Column("created", sa.BigInteger, nullable=False),
        sa.Column("api_version", sa.String(64)),
        sa.Column("livemode", sa.Boolean, nullable=False),
        sa.Column("customer_id", sa.String(255)),
        sa.Column("source", sa.String(16), nullable=False),
        sa.Column("received_at", UTCDateTime(), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("attempts", sa.Integer, nullable=False),
        sa.Column("error", sa.Text),
        sa.Column("processed_at", UTCDateTime()),
        sa.Column("payload", sa.Text, nullable=False),
    )
    op.create_index("ix_inbox_status", "inbox", ["status", "id"])
    op.create_index("ix_inbox_customer", "inbox", ["customer_id", "created"])

    op.create_table(
        "ledger_entries",
        sa.Column("id", Id, primary_key=True, autoincrement=True),
        sa.Column("customer_id", sa.String(255), nullable=False),
        sa.Column("subscription_id", sa.String(255), nullable=False),
        sa.Column("category", sa.String(32), nullable=False),
        sa.Column("currency", sa.String(3), nullable=False),
        sa.Column("amount", sa.BigInteger, nullable=False),
        sa.Column("effective_at", UTCDateTime(), nullable=False),
        sa.Column("recorded_at", UTCDateTime(), nullable=False),
        sa.Column("source_event_id", sa.String(255), nullable=False),
        sa.Column("cause_event_id", sa.String(255), nullable=False),
        sa.Column("reversal_of", Id, sa.ForeignKey("ledger_entries.id"), unique=True),
        sa.Column("explanation", sa.Text, nullable=False),
    )
    op.create_index("ix_ledger_customer", "ledger_entries", ["customer_id", "id"])
    op.create_index("ix_ledger_effective", "ledger_entries", ["effective_at"])
    op.create_index("ix_ledger_source", "ledger_entries", ["source_event_id"])

    op.create_table(
        "customers",
        sa.Column("customer_id", sa.String(255), primary_key=True),
        sa.Column("first_seen_at", UTCDateTime(), nullable=False),
    )
    op.create_table(
        "reference_objects",
        sa.Column("kind", sa.String(32), primary_key=True),
        sa.Column("object_id", sa.String(255), primary_key=True),
        sa.Column("payload", sa.Text, nullable=False),
        sa.Column("version", sa.BigInteger, nullable=False),
        sa.Column("source", sa.String(255), nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
    )
    op.create_table(
        "customer_references",
        sa.Column("kind", sa.String(32), primary_key=True),
        sa.Column("object_id", sa.String(255), primary_key=True),
        sa.Column("customer_id", sa.String(255), primary_key=True),
    )

    if op.get_bind().dialect.name == "postgresql":
        op.execute(PG_APPEND_ONLY)
    else:
        for statement in SQLITE_APPEND_ONLY:
            op.execute(statement)


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP TRIGGER IF EXISTS ledger_entries_no_truncate ON ledger_entries")
        op.execute("DROP TRIGGER IF EXISTS ledger_entries_no_update_delete ON ledger_entries")
        op.execute("DROP FUNCTION IF EXISTS ledger_refuse_change()")
    else:
        op.execute("DROP TRIGGER IF EXISTS ledger_entries_no_update")
        op.execute("DROP TRIGGER IF EXISTS ledger_entries_no_delete")
    for table in (
        "customer_references",
        "reference_objects",
        "customers",
        "ledger_entries",
        "inbox",
    ):
        op.drop_table(table)
