"""Indexes for the workspace's drill-down filters (the Entries page, bench/pages.py).

A bridge cell is a month, a category and a currency: `ix_ledger_cell` finds its rows by
category, currency and effective time, and carries the amount so the cell's total is read from
the index alone. It also serves the Customers page's first paid month (`new` rows up to a
month end). A subscription filter uses `ix_ledger_subscription` in id order, as a customer
filter already uses `ix_ledger_customer` (0001); a month alone uses `ix_ledger_effective`.

Revision ID: 0008
Revises: 0006
"""

from __future__ import annotations

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


def downgrade() -> None:
    op.drop_index("ix_ledger_subscription", "ledger_entries")
    op.drop_index("ix_ledger_cell", "ledger_entries")
