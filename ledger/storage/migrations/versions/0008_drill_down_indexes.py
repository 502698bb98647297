"""Indexes for the workspace's drill-down filters (the Entries page, bench/pages.py).

A bridge cell is a month, a category and a currency: `ix_ledger_cell` finds its rows by
category, currency and effective time, and carries the amount so the cell's total is read from
the index alone. A subscription filter uses `ix_ledger_subscription` in id order, as a customer
filter already uses `ix_ledger_customer` (0001); a month alone uses `ix_ledger_effective`.

The Customers page's first paid month per customer reads `new` rows that are not reversals:
`ix_ledger_first_paid` holds only those (about one per customer), with the id to check that
nothing reverses them, so that query grows with the customers rather than with the ledger.

Revision ID: 0008
Revises: 0006
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index(
        "ix_ledger_cell", "ledger_entries", ["category", "currency", "effective_at", "amount"]
    )
    op.create_index("ix_ledger_subscription", "ledger_entries", ["subscription_id", "id"])
    first_paid = sa.text("category = 'new' AND reversal_of IS NULL")
    op.create_index(
        "ix_ledger_first_paid",
        "ledger_entries",
        ["customer_id", "currency", "effective_at", "id"],
        postgresql_where=first_paid,
        sqlite_where=first_paid,
    )


def downgrade() -> None:
    op.drop_index("ix_ledger_first_paid", "ledger_entries")
    op.drop_index("ix_ledger_subscription", "ledger_entries")
    op.drop_index("ix_ledger_cell", "ledger_entries")
