"""The replay's index: ledger rows in (customer, currency, month) order, covering what it reads.

`projector.replay` groups every ledger row by customer, currency and month, then runs a window
over each customer's months. Reading this index gives the rows already in that order, so the
rebuild streams without sorting the ledger (bench/projection.py). It covers category, amount
and effective_at so the read is index-only. The month expression is each dialect's own, exactly
as `projector._rebuild_sql` writes it.

Revision ID: 0005
Revises: 0004
"""

from __future__ import annotations

from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

NAME = "ix_ledger_customer_month"


def upgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute(
            f"CREATE INDEX {NAME} ON ledger_entries "
            "(customer_id, currency, date_trunc('month', effective_at)) "
            "INCLUDE (category, amount, effective_at)"
        )
    else:
        op.execute(
            f"CREATE INDEX {NAME} ON ledger_entries "
            "(customer_id, currency, substr(effective_at, 1, 7), category, amount)"
        )


def downgrade() -> None:
    op.execute(f"DROP INDEX {NAME}")
