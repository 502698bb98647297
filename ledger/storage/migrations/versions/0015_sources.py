"""Sources: every inbox row names its Stripe account (`inbox.account`, next to `livemode`);
the monthly totals and replay checkpoints are keyed by source; reconcile runs record theirs.

A ledger entry's source is its source event's inbox row's: no ledger row is rewritten, and the
hash chain stays as it was. `inbox.account` is filled from each stored payload's `account`
("" when it names none: the endpoint's own account). The monthly totals are emptied and their
checkpoint reset, so the projector rebuilds them, by mode, on its next run; replay checkpoints
are a cache, emptied. The migration prints, per currency, the net ledger amount before (every
entry, as reports summed it until now), after (live entries only) and the difference: what test
mode took out of the live figures (on stderr: stdout may be a tool's JSON).

Revision ID: 0015
Revises: 0016
"""

from __future__ import annotations

import json
import sys
from collections import defaultdict
from typing import Any

import sqlalchemy as sa
from alembic import op

from ledger.storage.db import UTCDateTime

revision = "0015"
down_revision = "0016"
branch_labels = None
depends_on = None

_BATCH = 2_000
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
_COLUMNS = (
    *_MOVEMENTS,
    "customers_change",
    "customers_lost",
    *(f"{name}_entries" for name in _MOVEMENTS),
)
_inbox = sa.table(
    "inbox",
    sa.column("id", sa.BigInteger),
    sa.column("event_id", sa.String),
    sa.column("payload", sa.Text),
    sa.column("account", sa.String),
    sa.column("livemode", sa.Boolean),
)
_entries = sa.table(
    "ledger_entries",
    sa.column("currency", sa.String),
    sa.column("amount", sa.BigInteger),
    sa.column("source_event_id", sa.String),
)
# The projections emptied here, rebuilt by their next catch-up from checkpoint 0.
_REBUILT = ("mrr_balances", "forecast_cells")
_checkpoints = sa.table(
    "projector_checkpoints", sa.column("name", sa.String), sa.column("last_entry_id", sa.BigInteger)
)


def upgrade() -> None:
    before = _net_by_currency(live_only=False)
    op.add_column("inbox", sa.Column("account", sa.String(255), nullable=False, server_default=""))
    _accounts_from_payloads()
    with op.batch_alter_table("reconcile_runs") as batch:
        batch.add_column(sa.Column("account", sa.String(255)))
        batch.add_column(sa.Column("livemode", sa.Boolean))
    op.drop_table("mrr_month_totals")
    _month_totals(keyed_by_mode=True)
    op.execute(_checkpoints.update().where(_checkpoints.c.name.in_(_REBUILT)).values(
        last_entry_id=0
    ))  # fmt: skip
    op.drop_table("replay_checkpoints")
    _replay_checkpoints(with_source=True)
    op.drop_table("forecast_cells")
    _forecast_cells(keyed_by_mode=True)
    _print_difference(before, _net_by_currency(live_only=True))


def _accounts_from_payloads() -> None:
    """Each stored event's `account`, read from its payload (only rows that may name one)."""
    conn = op.get_bind()
    after = 0
    while True:
        rows = conn.execute(
            sa.select(_inbox.c.id, _inbox.c.payload)
            .where(_inbox.c.id > after, _inbox.c.payload.like('%"account"%'))
            .order_by(_inbox.c.id)
            .limit(_BATCH)
        ).all()
        if not rows:
            return
        named: list[dict[str, object]] = []
        for inbox_id, payload in rows:
            try:
                body = json.loads(payload)
            except ValueError:
                continue
            account = body.get("account") if isinstance(body, dict) else None
            if isinstance(account, str) and account and len(account) <= 255:
                named.append({"row_id": inbox_id, "named": account})
        if named:
            conn.execute(
                _inbox.update()
                .where(_inbox.c.id == sa.bindparam("row_id"))
                .values(account=sa.bindparam("named")),
                named,
            )
        after = rows[-1][0]


def _net_by_currency(*, live_only: bool) -> dict[str, int]:
    """The net amount of the ledger per currency: of every entry, or of live-mode ones."""
    query = sa.select(_entries.c.currency, sa.func.sum(_entries.c.amount)).group_by(
        _entries.c.currency
    )
    if live_only:
        query = query.join_from(
            _entries, _inbox, _inbox.c.event_id == _entries.c.source_event_id
        ).where(_inbox.c.livemode == sa.true())
    return {str(c): int(total or 0) for c, total in op.get_bind().execute(query)}


def _print_difference(before: dict[str, int], after: dict[str, int]) -> None:
    differences: dict[str, int] = defaultdict(int)
    for currency in sorted(before.keys() | after.keys()):
        differences[currency] = before.get(currency, 0) - after.get(currency, 0)
    if not any(differences.values()):
        print("0015 sources: no test-mode entries; live figures unchanged", file=sys.stderr)
        return
    for currency, taken in differences.items():
        print(
            f"0015 sources: {currency}: net ledger amount {before.get(currency, 0)} before, "
            f"{after.get(currency, 0)} live only; test mode took out {taken} (minor units)",
            file=sys.stderr,
        )


def _month_totals(*, keyed_by_mode: bool) -> None:
    op.create_table(
        "mrr_month_totals",
        *([sa.Column("livemode", sa.Boolean, primary_key=True)] if keyed_by_mode else []),
        sa.Column("currency", sa.String(3), primary_key=True),
        sa.Column("month", sa.String(7), primary_key=True),
        *(sa.Column(name, sa.BigInteger, nullable=False, server_default="0") for name in _COLUMNS),
    )


def _replay_checkpoints(*, with_source: bool) -> None:
    source: list[sa.Column[Any]] = [
        sa.Column("account", sa.String(255), primary_key=True),
        sa.Column("livemode", sa.Boolean, primary_key=True),
    ]
    op.create_table(
        "replay_checkpoints",
        sa.Column("customer_id", sa.String(255), primary_key=True),
        *(source if with_source else []),
        sa.Column("events", sa.BigInteger, primary_key=True),
        sa.Column("created", sa.BigInteger, nullable=False),
        sa.Column("event_id", sa.String(255), nullable=False),
        sa.Column("state", sa.Text, nullable=False),
        sa.Column("saved_at", UTCDateTime(), nullable=False),
    )


def _forecast_cells(*, keyed_by_mode: bool) -> None:
    op.create_table(
        "forecast_cells",
        *([sa.Column("livemode", sa.Boolean, primary_key=True)] if keyed_by_mode else []),
        sa.Column("currency", sa.String(3), primary_key=True),
        sa.Column("effective_month", sa.String(7), primary_key=True),
        sa.Column("recorded_month", sa.String(7), primary_key=True),
        sa.Column("category", sa.String(32), primary_key=True),
        sa.Column("amount", sa.BigInteger, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("forecast_cells")
    _forecast_cells(keyed_by_mode=False)
    op.drop_table("replay_checkpoints")
    _replay_checkpoints(with_source=False)
    op.drop_table("mrr_month_totals")
    _month_totals(keyed_by_mode=False)
    op.execute(_checkpoints.update().where(_checkpoints.c.name.in_(_REBUILT)).values(
        last_entry_id=0
    ))  # fmt: skip
    with op.batch_alter_table("reconcile_runs") as batch:
        batch.drop_column("livemode")
        batch.drop_column("account")
    with op.batch_alter_table("inbox") as batch:
        batch.drop_column("account")
