"""Segments and MRR per customer per month: derived tables, rebuilt by `mrr replay`.

`customer_months`: one row per customer, currency and month in which its figures moved, for
the whole customer (`dimension` and `segment` 'all', kept by the projector from the ledger) and
for each plan, product and billing interval it was in (kept by the processing from the rules'
replay): the month's movement sums, the month-end active and delinquent MRR, the customer's
count change and loss at that month end, the month of its first `new` MRR, and `next_month`,
the next row's month (none for the last), so the rows in force at a month end are found by
range. `segment_month_totals`: per dimension, segment, currency and month, the same sums as
`mrr_month_totals`. `cohort_month_changes`: per dimension, segment, currency, cohort (first paid
month) and month, how the cohort's retained and delinquent customers and active MRR change at
that month end (a row adds its figures at its month and takes them away at its next month),
and the customers who joined it. The keys leave room for a source (Stripe account and mode)
column.

Also the customer attributes segments group by: country (from the address), metadata, created.

Revision ID: 0011
Revises: 0014
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None

MOVEMENTS = (
    "new",
    "reactivation",
    "expansion",
    "contraction",
    "churn",
    "delinquent",
    "recovered",
    "delinquent_churn",
    "delinquent_change",
)


def upgrade() -> None:
    # Keyed by customer first: the processing and the projector read and replace one
    # customer's rows at a time.
    op.create_table(
        "customer_months",
        sa.Column("customer_id", sa.String(255), primary_key=True),
        sa.Column("dimension", sa.String(16), primary_key=True),
        sa.Column("segment", sa.String(255), primary_key=True),
        sa.Column("currency", sa.String(3), primary_key=True),
        sa.Column("month", sa.String(7), primary_key=True),
        sa.Column("next_month", sa.String(7)),
        *(sa.Column(name, sa.BigInteger, nullable=False) for name in MOVEMENTS),
        sa.Column("active_mrr", sa.BigInteger, nullable=False),
        sa.Column("delinquent_mrr", sa.BigInteger, nullable=False),
        sa.Column("customers_change", sa.SmallInteger, nullable=False),
        sa.Column("customers_lost", sa.SmallInteger, nullable=False),
        sa.Column("first_paid", sa.String(7)),
    )
    # The rows in force at a month end: month <= m < next_month (or no next month). Led by
    # next_month, so a month end reads the customers' last rows (next_month IS NULL) and those
    # followed by a row after it, not every row of the dimension.
    op.create_index(
        "ix_customer_months_in_force",
        "customer_months",
        ["dimension", "segment", "next_month", "month", "currency"],
    )
    op.create_table(
        "segment_month_totals",
        sa.Column("dimension", sa.String(16), primary_key=True),
        sa.Column("segment", sa.String(255), primary_key=True),
        sa.Column("currency", sa.String(3), primary_key=True),
        sa.Column("month", sa.String(7), primary_key=True),
        *(
            sa.Column(name, sa.BigInteger, nullable=False, server_default="0")
            for name in (*MOVEMENTS, "customers_change", "customers_lost")
        ),
    )
    op.create_table(
        "cohort_month_changes",
        sa.Column("dimension", sa.String(16), primary_key=True),
        sa.Column("segment", sa.String(255), primary_key=True),
        sa.Column("currency", sa.String(3), primary_key=True),
        sa.Column("cohort", sa.String(7), primary_key=True),
        sa.Column("month", sa.String(7), primary_key=True),
        *(
            sa.Column(name, sa.BigInteger, nullable=False, server_default="0")
            for name in ("joined", "retained", "delinquent", "mrr")
        ),
    )
    with op.batch_alter_table("customer_profiles") as batch:
        batch.add_column(sa.Column("country", sa.String(64)))
        batch.add_column(sa.Column("metadata", sa.Text))
        batch.add_column(sa.Column("created", sa.BigInteger))


def downgrade() -> None:
    with op.batch_alter_table("customer_profiles") as batch:
        batch.drop_column("created")
        batch.drop_column("metadata")
        batch.drop_column("country")
    op.drop_table("cohort_month_changes")
    op.drop_table("segment_month_totals")
    op.drop_index("ix_customer_months_in_force", "customer_months")
    op.drop_table("customer_months")
