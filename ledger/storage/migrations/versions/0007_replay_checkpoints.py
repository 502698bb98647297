"""Replay checkpoints, and an index of each customer's events still pending.

`replay_checkpoints` holds a customer's replay state after a number of its events (see
ledger/storage/replay_checkpoints.py). It is a cache: dropping its rows changes no number.
The partial index finds a customer's pending events without reading its whole history.

Revision ID: 0007
Revises: 0008
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from ledger.storage.db import UTCDateTime

revision = "0007"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "replay_checkpoints",
        sa.Column("customer_id", sa.String(255), primary_key=True),
        sa.Column("events", sa.BigInteger, primary_key=True),
        sa.Column("created", sa.BigInteger, nullable=False),
        sa.Column("event_id", sa.String(255), nullable=False),
        sa.Column("state", sa.Text, nullable=False),
        sa.Column("saved_at", UTCDateTime(), nullable=False),
    )
    op.create_index(
        "ix_inbox_customer_pending",
        "inbox",
        ["customer_id"],
        postgresql_where=sa.text("status = 'pending'"),
        sqlite_where=sa.text("status = 'pending'"),
    )


def downgrade() -> None:
    op.drop_index("ix_inbox_customer_pending", table_name="inbox")
    op.drop_table("replay_checkpoints")
