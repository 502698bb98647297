"""Backfill checkpoints: how far a backfill got, so `--resume` continues from there.

Revision ID: 0004
Revises: 0003
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from ledger.storage.db import UTCDateTime

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "backfill_checkpoints",
        sa.Column("scope", sa.String(255), primary_key=True),
        sa.Column("cursor", sa.String(255)),
        sa.Column("customers_done", sa.BigInteger, nullable=False),
        sa.Column("started_at", UTCDateTime(), nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
        sa.Column("completed_at", UTCDateTime()),
    )


def downgrade() -> None:
    op.drop_table("backfill_checkpoints")
