"""The forecast's kept inputs: the ledger summed by effective and recorded month
(`forecast_cells`) and each model's forecast from each closed backtest cut-off
(`forecast_backtests`).

Revision ID: 0016
Revises: 0011
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from ledger.storage.db import UTCDateTime

revision = "0016"
down_revision = "0011"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "forecast_cells",
        sa.Column("currency", sa.String(3), primary_key=True),
        sa.Column("effective_month", sa.String(7), primary_key=True),
        sa.Column("recorded_month", sa.String(7), primary_key=True),
        sa.Column("category", sa.String(32), primary_key=True),
        sa.Column("amount", sa.BigInteger, nullable=False),
    )
    op.create_table(
        "forecast_backtests",
        sa.Column("currency", sa.String(3), primary_key=True),
        sa.Column("version", sa.String(16), primary_key=True),
        sa.Column("since", sa.String(7), primary_key=True),
        sa.Column("cutoff", sa.String(7), primary_key=True),
        sa.Column("model", sa.String(16), primary_key=True),
        sa.Column("forecast", sa.Text),
        sa.Column("made_at", UTCDateTime(), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("forecast_backtests")
    op.drop_table("forecast_cells")
