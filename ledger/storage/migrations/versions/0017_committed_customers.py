"""Committed MRR kept per customer: each customer's stored subscription and schedule objects
folded (`committed_customers`), the prices seen on snapshots with where they were seen
(`committed_prices`), and the price ids each fold resolved (`committed_price_uses`); filled
from the stored events by the code the worker keeps them with.

Revision ID: 0017
Revises: 0016
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from ledger.storage import commitments

revision = "0017"
down_revision = "0015"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "committed_customers",
        sa.Column("customer_id", sa.String(255), primary_key=True),
        sa.Column("scheduled", sa.Boolean, nullable=False),
        sa.Column("body", sa.Text, nullable=False),
        sa.Column("folded_created", sa.BigInteger, nullable=False),
        sa.Column("folded_event", sa.String(255), nullable=False),
        sa.Column("folded_count", sa.Integer, nullable=False),
        sa.Column("state", sa.Text),
    )
    op.create_index(
        "ix_committed_customers_scheduled", "committed_customers", ["scheduled", "customer_id"]
    )
    op.create_table(
        "committed_prices",
        sa.Column("price_id", sa.String(255), primary_key=True),
        sa.Column("created", sa.BigInteger, primary_key=True),
        sa.Column("event_id", sa.String(255), primary_key=True),
        sa.Column("customer_id", sa.String(255), nullable=False),
        sa.Column("price", sa.Text, nullable=False),
    )
    op.create_index(
        "ix_committed_prices_customer", "committed_prices", ["customer_id", "created", "event_id"]
    )
    op.create_table(
        "committed_price_uses",
        sa.Column("price_id", sa.String(255), primary_key=True),
        sa.Column("customer_id", sa.String(255), primary_key=True),
    )
    op.create_index("ix_committed_price_uses_customer", "committed_price_uses", ["customer_id"])
    commitments.rebuild(op.get_bind())


def downgrade() -> None:
    op.drop_table("committed_price_uses")
    op.drop_table("committed_prices")
    op.drop_table("committed_customers")
