"""For the replay: ledger rows in (customer, currency, month) order, and a bigint sum.

`projector.replay` groups every ledger row by customer, currency and month, then runs a window
over each customer's months. Reading this index gives the rows already in that order, so the
rebuild streams without sorting the ledger (bench/projection.py). It covers category, amount
and effective_at so the read is index-only. The month expression is each dialect's own, exactly
as `projector._rebuild_sql` writes it.

PostgreSQL's sum(bigint) adds in 128 bits and returns numeric, and numeric arithmetic was a
fifth of the replay's time. `ledger_bigint_sum` adds bigints into a bigint; an overflow is an
error (int8pl checks), never a wrong total. SQLite's sum of integers is already an integer.

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
SUM = "ledger_bigint_sum"


def upgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute(
            f"CREATE INDEX {NAME} ON ledger_entries "
            "(customer_id, currency, date_trunc('month', effective_at)) "
            "INCLUDE (category, amount, effective_at)"
        )
        op.execute(f"CREATE AGGREGATE {SUM}(bigint) (SFUNC = int8pl, STYPE = bigint)")
    else:
        op.execute(
            f"CREATE INDEX {NAME} ON ledger_entries "
            "(customer_id, currency, substr(effective_at, 1, 7), category, amount)"
        )


def downgrade() -> None:
    op.execute(f"DROP INDEX {NAME}")
    if op.get_bind().dialect.name == "postgresql":
        op.execute(f"DROP AGGREGATE {SUM}(bigint)")
