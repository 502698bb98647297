"""The accountants' workspace: users, failed sign-ins (throttling), customer profiles.

Revision ID: 0006
Revises: 0005
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from ledger.storage.db import UTCDateTime

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

Id = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "users",
        sa.Column("id", Id, primary_key=True, autoincrement=True),
        sa.Column("email", sa.String(254), nullable=False, unique=True),
        sa.Column("password_hash", sa.String(255), nullable=False),
        sa.Column("role", sa.String(16), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("disabled_at", UTCDateTime()),
        sa.Column("last_sign_in_at", UTCDateTime()),
    )
    op.create_table(
        "sign_in_failures",
        sa.Column("id", Id, primary_key=True, autoincrement=True),
        sa.Column("email", sa.String(254), nullable=False),
        sa.Column("ip", sa.String(64), nullable=False),
        sa.Column("at", UTCDateTime(), nullable=False),
    )
    op.create_index("ix_sign_in_failures_email", "sign_in_failures", ["email", "at"])
    op.create_index("ix_sign_in_failures_ip", "sign_in_failures", ["ip", "at"])
    op.create_table(
        "customer_profiles",
        sa.Column("customer_id", sa.String(255), primary_key=True),
        sa.Column("name", sa.Text),
        sa.Column("email", sa.Text),
        sa.Column("version", sa.BigInteger, nullable=False),
        sa.Column("event_id", sa.String(255), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("customer_profiles")
    op.drop_table("sign_in_failures")
    op.drop_table("users")
