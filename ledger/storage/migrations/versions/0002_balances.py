"""Monthly balance totals, projector checkpoints, exchange rates.

Revision ID: 0002
Revises: 0001
"""

from __future__ import annotations

from datetime import UTC, datetime

import sqlalchemy as sa
from alembic import op

from ledger.storage.db import UTCDateTime

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

MONTH_TOTAL_COLUMNS = (
    "new",
    "reactivation",
    "expansion",
    "contraction",
    "churn",
    "delinquent",
    "recovered",
    "delinquent_churn",
    "delinquent_change",
    "customers_change",
    "customers_lost",
)


def upgrade() -> None:
    op.create_table(
        "mrr_month_totals",
        sa.Column("currency", sa.String(3), primary_key=True),
        sa.Column("month", sa.String(7), primary_key=True),
        *(sa.Column(name, sa.BigInteger, nullable=False) for name in MONTH_TOTAL_COLUMNS),
    )
    checkpoints = op.create_table(
        "projector_checkpoints",
        sa.Column("name", sa.String(64), primary_key=True),
        sa.Column("last_entry_id", sa.BigInteger, nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
    )
    op.bulk_insert(
        checkpoints,
        [{"name": "mrr_balances", "last_entry_id": 0, "updated_at": datetime.now(UTC)}],
    )
    op.create_table(
        "fx_rates",
        sa.Column("currency", sa.String(3), primary_key=True),
        sa.Column("rate_date", sa.Date, primary_key=True),
        sa.Column("rate", sa.String(64), nullable=False),
        sa.Column("loaded_at", UTCDateTime(), nullable=False),
    )


def downgrade() -> None:
    for table in ("fx_rates", "projector_checkpoints", "mrr_month_totals"):
        op.drop_table(table)
