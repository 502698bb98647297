"""Reconcile runs: when `mrr reconcile` (or the worker's schedule) compared the ledger with
Stripe's subscriptions, and what it found.

Revision ID: 0013
Revises: 0007
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from ledger.storage.db import UTCDateTime

revision = "0013"
down_revision = "0007"
branch_labels = None
depends_on = None

_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "reconcile_runs",
        sa.Column("id", _ID, primary_key=True, autoincrement=True),
        sa.Column("trigger", sa.String(16), nullable=False),
        sa.Column("started_at", UTCDateTime(), nullable=False),
        sa.Column("finished_at", UTCDateTime()),
        sa.Column("subscriptions", sa.Integer),
        sa.Column("differences", sa.Integer),
        sa.Column("fixed", sa.Integer),
        sa.Column("error", sa.Text),
        sa.Column("details", sa.Text),
    )
    op.create_index("ix_reconcile_runs_started_at", "reconcile_runs", ["started_at"])


def downgrade() -> None:
    op.drop_index("ix_reconcile_runs_started_at", table_name="reconcile_runs")
    op.drop_table("reconcile_runs")
