"""Committed MRR from the stored Stripe objects and the ledger (docs/mrr-rules.md §12).

Reads each subscription's stored `customer.subscription.*` and `subscription_schedule.*`
events in the order of §5.3 (streamed; failed rows are left out, as the rules leave them out)
and the ledger's active and delinquent MRR per subscription today; the arithmetic is
`ledger.rules.commitments`.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, Connection, Engine, case, func, or_, select

from ledger.reporting.balances import ACTIVE_WEIGHTS, DELINQUENT_WEIGHTS
from ledger.reporting.reports import BadInput, choose_currency
from ledger.rules.commitments import Base, Commitments, CommittedMrr, committed
from ledger.storage.schema import InboxStatus, inbox, ledger_entries

__all__ = ["MAX_MONTHS", "bases", "build_committed", "commitments"]

MAX_MONTHS = 60
STREAM_BATCH = 2_000


def build_committed(
    engine: Engine, today: datetime, months: int, currency: str | None = None
) -> CommittedMrr:
    if not 1 <= months <= MAX_MONTHS:
        raise BadInput("months", f"months must be within 1..{MAX_MONTHS}")
    with engine.connect() as conn:
        found = bases(conn)
        chosen = choose_currency(currency, sorted({b.currency for b in found}))
        return committed(commitments(conn), found, chosen, today, months)


def bases(conn: Connection) -> list[Base]:
    """Each subscription's active and delinquent MRR in the ledger, where either is non-zero."""
    e = ledger_entries.c

    def weighted(weights: dict[str, int]) -> ColumnElement[Any]:
        return func.sum(
            case(*((e.category == c, e.amount * w) for c, w in weights.items() if w), else_=0)
        )

    active, delinquent = weighted(ACTIVE_WEIGHTS), weighted(DELINQUENT_WEIGHTS)
    query = select(e.subscription_id, e.customer_id, e.currency, active, delinquent).group_by(
        e.subscription_id, e.customer_id, e.currency
    )
    return [
        Base(str(sub), str(customer), str(currency), int(a or 0), int(d or 0))
        for sub, customer, currency, a, d in conn.execute(query)
        if a or d
    ]


def commitments(conn: Connection) -> Commitments:
    """Every stored subscription and schedule object folded, oldest first."""
    i = inbox.c
    query = (
        select(i.event_id, i.event_type, i.payload)
        .where(
            or_(
                i.event_type.like("customer.subscription.%"),
                i.event_type.like("subscription\\_schedule.%", escape="\\"),
            ),
            i.status != InboxStatus.FAILED,
        )
        .order_by(i.created, i.event_id)
    )
    folded = Commitments()
    for event_id, event_type, payload in conn.execute(
        query, execution_options={"yield_per": STREAM_BATCH}
    ):
        try:
            obj = json.loads(payload)["data"]["object"]
        except (ValueError, KeyError, TypeError):
            folded.notes.append(f"{event_id}: not a readable Stripe event")
            continue
        if isinstance(obj, dict):
            folded.add(str(event_id), str(event_type), obj)
    return folded
