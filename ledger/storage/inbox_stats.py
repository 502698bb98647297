"""What operators ask of the inbox: counts, the oldest pending row, recent failures, outcomes."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Connection, func, select

from ledger.storage.inbox import status_counts
from ledger.storage.schema import InboxStatus, inbox

FINAL_STATUSES = tuple(s for s in InboxStatus if s is not InboxStatus.PENDING)


@dataclass(frozen=True, slots=True)
class Backlog:
    counts: dict[InboxStatus, int]
    oldest_pending_at: datetime | None
    last_received_at: datetime | None


def backlog(conn: Connection) -> Backlog:
    """Cheap enough for every scrape: each query reads an index (status, id) or the key."""
    oldest = select(inbox.c.received_at).where(inbox.c.status == InboxStatus.PENDING)
    newest = select(inbox.c.received_at).order_by(inbox.c.id.desc()).limit(1)
    return Backlog(
        counts=status_counts(conn),
        oldest_pending_at=conn.execute(oldest.order_by(inbox.c.id).limit(1)).scalar(),
        last_received_at=conn.execute(newest).scalar(),
    )


def last_processed_at(conn: Connection) -> datetime | None:
    query = select(func.max(inbox.c.processed_at)).where(inbox.c.status != InboxStatus.PENDING)
    return conn.execute(query).scalar()


def failure_reasons(conn: Connection, since: datetime) -> dict[str, int]:
    """Rows failed since `since`, grouped by their error, most frequent first."""
    query = (
        select(inbox.c.error, func.count())
        .where(inbox.c.status == InboxStatus.FAILED, inbox.c.processed_at >= since)
        .group_by(inbox.c.error)
        .order_by(func.count().desc(), inbox.c.error)
    )
    return {str(error or "(no reason)"): int(n) for error, n in conn.execute(query).all()}


def outcomes_by_type(conn: Connection, inbox_ids: Sequence[int]) -> dict[tuple[str, str], int]:
    """(event type, final status) -> rows, over these rows; rows still pending are left out."""
    if not inbox_ids:
        return {}
    query = (
        select(inbox.c.event_type, inbox.c.status, func.count())
        .where(inbox.c.id.in_(list(inbox_ids)), inbox.c.status.in_(FINAL_STATUSES))
        .group_by(inbox.c.event_type, inbox.c.status)
    )
    return {(str(kind), str(status)): int(n) for kind, status, n in conn.execute(query).all()}
