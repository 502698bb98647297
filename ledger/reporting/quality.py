"""Whether the numbers may be incomplete: inbox rows that failed, or wait too long."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import ColumnElement, Connection, and_, func, or_, select

from ledger.storage.inbox import InboxRow, row_from_mapping
from ledger.storage.schema import InboxStatus, inbox

STALE_AFTER = timedelta(minutes=5)


@dataclass(frozen=True, slots=True)
class Quality:
    failed: int
    stale_pending: int
    customers: list[str]  # the first few customers concerned, sorted
    more_customers: int  # how many more beyond those

    @property
    def complete(self) -> bool:
        return self.failed == 0 and self.stale_pending == 0


def _troubled(now: datetime) -> ColumnElement[bool]:
    stale = and_(inbox.c.status == InboxStatus.PENDING, inbox.c.received_at <= now - STALE_AFTER)
    return or_(inbox.c.status == InboxStatus.FAILED, stale)


def quality(conn: Connection, now: datetime, shown: int = 5) -> Quality:
    counts = conn.execute(
        select(inbox.c.status, func.count()).where(_troubled(now)).group_by(inbox.c.status)
    ).all()
    by_status: dict[InboxStatus, int] = {status: int(n) for status, n in counts}
    customers = (
        select(inbox.c.customer_id)
        .where(_troubled(now), inbox.c.customer_id.is_not(None))
        .distinct()
        .subquery()
    )
    total = int(conn.execute(select(func.count()).select_from(customers)).scalar_one())
    first = [
        str(c)
        for c in conn.execute(
            select(customers.c.customer_id).order_by(customers.c.customer_id).limit(shown)
        ).scalars()
    ]
    return Quality(
        failed=by_status.get(InboxStatus.FAILED, 0),
        stale_pending=by_status.get(InboxStatus.PENDING, 0),
        customers=first,
        more_customers=max(0, total - len(first)),
    )


def troubled_rows(conn: Connection, now: datetime, limit: int = 500) -> list[InboxRow]:
    """Failed rows and rows pending too long, oldest first."""
    query = select(inbox).where(_troubled(now)).order_by(inbox.c.id).limit(limit)
    return [row_from_mapping(m) for m in conn.execute(query).mappings()]
