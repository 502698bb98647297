"""Kept forecasts: the forecast made at the start of each month, per currency and month ahead.

Revision ID: 0014
Revises: 0013
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from ledger.storage.db import UTCDateTime

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "mrr_forecasts",
        sa.Column("currency", sa.String(3), primary_key=True),
        sa.Column("made_month", sa.String(7), primary_key=True),
        sa.Column("month", sa.String(7), primary_key=True),
        sa.Column("model", sa.String(16), nullable=False),
        sa.Column("closing_mrr", sa.BigInteger, nullable=False),
        sa.Column("low_mrr", sa.BigInteger),
        sa.Column("high_mrr", sa.BigInteger),
        sa.Column("detail", sa.Text, nullable=False),
        sa.Column("made_at", UTCDateTime(), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("mrr_forecasts")
