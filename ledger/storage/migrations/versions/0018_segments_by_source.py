"""Segments, cohorts and customer months keyed by source (account and mode): `customer_months`
(a customer id means something only in one source), `segment_month_totals` and
`cohort_month_changes`. Live and test figures are never summed together, a customer id in two
sources keeps two sets of rows, and a report of one account reads only its rows.

The three tables are derived, so they are made again empty with the new keys, as `mrr replay`
clears them: the whole-customer rows (dimension 'all') are rebuilt from the ledger by their
projection's next catch-up (its checkpoint is reset); the segment rows come from replaying each
customer's events through the rules, which only `mrr replay` does (the processing is not
reachable from a migration). The migration says so on stderr when there were segment rows.

Revision ID: 0018
Revises: 0017
"""

from __future__ import annotations

import sys
from typing import Any

import sqlalchemy as sa
from alembic import op

revision = "0018"
down_revision = "0017"
branch_labels = None
depends_on = None

_MOVEMENTS = (
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
_INDEX = "ix_customer_months_in_force"
_CHECKPOINT = "customer_months"
_checkpoints = sa.table(
    "projector_checkpoints", sa.column("name", sa.String), sa.column("last_entry_id", sa.BigInteger)
)


def upgrade() -> None:
    had_segments = _has_segment_rows()
    _drop()
    _create(by_source=True)
    _reset_checkpoint()
    if had_segments:
        print(
            "0018 segments by source: segment and cohort rows emptied; run `mrr replay` to "
            "rebuild them per source (customer totals rebuild on their own)",
            file=sys.stderr,
        )


def downgrade() -> None:
    _drop()
    _create(by_source=False)
    _reset_checkpoint()


def _has_segment_rows() -> bool:
    months = sa.table("customer_months", sa.column("dimension", sa.String))
    query = sa.select(months.c.dimension).where(months.c.dimension != "all").limit(1)
    return op.get_bind().execute(query).first() is not None


def _reset_checkpoint() -> None:
    op.execute(_checkpoints.update().where(_checkpoints.c.name == _CHECKPOINT).values(
        last_entry_id=0
    ))  # fmt: skip


def _drop() -> None:
    op.drop_index(_INDEX, "customer_months")
    op.drop_table("customer_months")
    op.drop_table("segment_month_totals")
    op.drop_table("cohort_month_changes")


def _create(*, by_source: bool) -> None:
    mode: list[sa.Column[Any]] = [
        sa.Column("livemode", sa.Boolean, primary_key=True),
        sa.Column("account", sa.String(255), primary_key=True),
    ]
    source: list[sa.Column[Any]] = [
        sa.Column("account", sa.String(255), primary_key=True),
        sa.Column("livemode", sa.Boolean, primary_key=True),
    ]
    op.create_table(
        "customer_months",
        sa.Column("customer_id", sa.String(255), primary_key=True),
        *(source if by_source else []),
        sa.Column("dimension", sa.String(16), primary_key=True),
        sa.Column("segment", sa.String(255), primary_key=True),
        sa.Column("currency", sa.String(3), primary_key=True),
        sa.Column("month", sa.String(7), primary_key=True),
        sa.Column("next_month", sa.String(7)),
        *(sa.Column(name, sa.BigInteger, nullable=False) for name in _MOVEMENTS),
        sa.Column("active_mrr", sa.BigInteger, nullable=False),
        sa.Column("delinquent_mrr", sa.BigInteger, nullable=False),
        sa.Column("customers_change", sa.SmallInteger, nullable=False),
        sa.Column("customers_lost", sa.SmallInteger, nullable=False),
        sa.Column("first_paid", sa.String(7)),
    )
    op.create_index(
        _INDEX,
        "customer_months",
        [
            *(["livemode"] if by_source else []),
            "dimension",
            "segment",
            "next_month",
            "month",
            "currency",
        ],
    )
    op.create_table(
        "segment_month_totals",
        *(mode if by_source else []),
        sa.Column("dimension", sa.String(16), primary_key=True),
        sa.Column("segment", sa.String(255), primary_key=True),
        sa.Column("currency", sa.String(3), primary_key=True),
        sa.Column("month", sa.String(7), primary_key=True),
        *(
            sa.Column(name, sa.BigInteger, nullable=False, server_default="0")
            for name in (*_MOVEMENTS, "customers_change", "customers_lost")
        ),
    )
    op.create_table(
        "cohort_month_changes",
        *(mode if by_source else []),
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
