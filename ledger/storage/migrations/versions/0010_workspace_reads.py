"""The workspace's reads: customer profiles kept by the workers, entry counts in the totals.

Workers now keep a customer's name and email while processing its `customer.*` event (before,
pages read them from the inbox behind a checkpoint). This fills `customer_profiles` from the
events stored until now, keeping the newest per customer by `created` (as the workers do), and
drops the pages' checkpoint.

`mrr_month_totals` gains the number of entries behind each movement sum (`new_entries`, ...),
so the Entries page counts a month, category and currency without reading the ledger. The
stored totals are emptied and the projector's checkpoint set back to the start: the next report
(or `mrr replay`) rebuilds them, counts included.

Revision ID: 0010
Revises: 0014
"""

from __future__ import annotations

import json
from typing import Any

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0014"
branch_labels = None
depends_on = None

_BATCH = 1_000
_TYPES = ("customer.created", "customer.updated", "customer.deleted")

inbox = sa.table(
    "inbox",
    sa.column("id", sa.BigInteger),
    sa.column("event_id", sa.String),
    sa.column("event_type", sa.String),
    sa.column("created", sa.BigInteger),
    sa.column("payload", sa.Text),
)
profiles = sa.table(
    "customer_profiles",
    sa.column("customer_id", sa.String),
    sa.column("name", sa.Text),
    sa.column("email", sa.Text),
    sa.column("version", sa.BigInteger),
    sa.column("event_id", sa.String),
)
checkpoints = sa.table(
    "projector_checkpoints", sa.column("name", sa.String), sa.column("last_entry_id", sa.BigInteger)
)
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
_COUNTS = tuple(f"{name}_entries" for name in _MOVEMENTS)


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def _profile(event_id: str, created: int, payload: str) -> dict[str, Any] | None:
    try:
        obj = json.loads(payload)["data"]["object"]
    except (ValueError, KeyError, TypeError):
        return None
    if not isinstance(obj, dict) or obj.get("object") != "customer":
        return None
    if not isinstance(obj.get("id"), str) or not obj["id"]:
        return None
    return {
        "customer_id": obj["id"],
        "name": _text(obj.get("name")),
        "email": _text(obj.get("email")),
        "version": int(created),
        "event_id": event_id,
    }


def _newest_from_events(conn: sa.Connection) -> dict[str, dict[str, Any]]:
    newest: dict[str, dict[str, Any]] = {}
    after = 0
    while True:
        rows = conn.execute(
            sa.select(inbox.c.id, inbox.c.event_id, inbox.c.created, inbox.c.payload)
            .where(inbox.c.id > after, inbox.c.event_type.in_(_TYPES))
            .order_by(inbox.c.id)
            .limit(_BATCH)
        ).all()
        if not rows:
            return newest
        for _, event_id, created, payload in rows:
            found = _profile(event_id, created, payload)
            held = None if found is None else newest.get(found["customer_id"])
            if found is not None and (held is None or held["version"] <= found["version"]):
                newest[found["customer_id"]] = found
        after = rows[-1][0]


def upgrade() -> None:
    _profiles_from_events()
    for name in _COUNTS:
        op.add_column(
            "mrr_month_totals",
            sa.Column(name, sa.BigInteger, nullable=False, server_default="0"),
        )
    op.execute("DELETE FROM mrr_month_totals")
    op.execute(
        checkpoints.update().where(checkpoints.c.name == "mrr_balances").values(last_entry_id=0)
    )


def _profiles_from_events() -> None:
    conn = op.get_bind()
    newest = _newest_from_events(conn)
    stored = dict(conn.execute(sa.select(profiles.c.customer_id, profiles.c.version)).all())
    changed = [p for cid, p in newest.items() if cid not in stored or stored[cid] <= p["version"]]
    for start in range(0, len(changed), _BATCH):
        part = changed[start : start + _BATCH]
        conn.execute(
            profiles.delete().where(profiles.c.customer_id.in_([p["customer_id"] for p in part]))
        )
        conn.execute(profiles.insert(), part)
    conn.execute(checkpoints.delete().where(checkpoints.c.name == "customer_profiles"))


def downgrade() -> None:
    with op.batch_alter_table("mrr_month_totals") as batch:
        for name in reversed(_COUNTS):
            batch.drop_column(name)
