"""Reconcile's database side: the ledger per subscription, the inbox's clues, the runs.

Every figure is read from what is in effect: a reversal carries the negated amount of the
entry it reverses, so summing every row of a subscription nets both away.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, false, func, select, true

from ledger.backfill.reconcile import SOURCE, Clues, Difference, InLedger
from ledger.reporting import projector
from ledger.rules.entries import Category, active_effect, delinquent_effect
from ledger.rules.events import MalformedEvent, parse_event
from ledger.rules.payloads import PayloadError, subscription_of
from ledger.storage import inbox
from ledger.storage.schema import InboxStatus, ledger_entries, reconcile_runs
from ledger.storage.schema import inbox as inbox_table

__all__ = [
    "Run",
    "Source",
    "account_named",
    "clues",
    "fail_run",
    "finish_run",
    "last_finished",
    "last_started_at",
    "ledger_subscriptions",
    "record_source",
    "start_run",
    "store_events",
]

_CHUNK = 250  # customers per statement: SQLite caps the parameters of one


@dataclass(frozen=True, slots=True)
class Source:
    """What a reconcile compares: the ledger's entries of this account and mode only."""

    account: str
    livemode: bool


def account_named(conn: Connection, account: str) -> bool:
    """Whether some stored event is of this account id (so the ledger knows it by its id)."""
    if not account:
        return False
    query = select(inbox_table.c.id).where(inbox_table.c.account == account).limit(1)
    return conn.execute(query).first() is not None


def ledger_subscriptions(conn: Connection, source: Source) -> dict[str, InLedger]:
    """Every subscription the ledger has entries for in the source, with its MRR in effect."""
    e = ledger_entries.c
    query = (
        projector.with_source(
            select(e.subscription_id, e.customer_id, e.currency, e.category, func.sum(e.amount))
        )
        .where(
            projector.SOURCE_LIVEMODE.is_(true() if source.livemode else false()),
            projector.SOURCE_ACCOUNT.in_([source.account]),
        )
        .group_by(e.subscription_id, e.customer_id, e.currency, e.category)
    )
    sums: dict[tuple[str, str, str], list[int]] = defaultdict(lambda: [0, 0])
    for sub_id, customer_id, currency, category, total in conn.execute(query):
        kind, amount = Category(category), int(total)
        figures = sums[(str(sub_id), str(customer_id), str(currency))]
        figures[0] += active_effect(kind, amount)
        figures[1] += delinquent_effect(kind, amount)
    found: dict[str, InLedger] = {}
    for (sub_id, customer_id, currency), (active, delinquent) in sorted(sums.items()):
        # A subscription keeps its currency; should rows disagree, the one with MRR wins.
        if sub_id not in found or active or delinquent:
            found[sub_id] = InLedger(sub_id, customer_id, currency, active, delinquent)
    return found


def _subscription_of(payload: str) -> str | None:
    try:
        return subscription_of(parse_event(payload).object)
    except (MalformedEvent, PayloadError, ValueError):
        return None


def clues(conn: Connection, wanted: Collection[tuple[str, str]]) -> dict[str, Clues]:
    """What the inbox holds for each (customer, subscription): its events by status and its
    newest. Reads the rows of those customers only. A failed row whose payload names no
    subscription (unreadable) counts against every subscription of its customer."""
    by_customer: dict[str, set[str]] = defaultdict(set)
    for customer_id, sub_id in wanted:
        by_customer[customer_id].add(sub_id)
    events: dict[str, int] = defaultdict(int)
    failed: dict[str, list[tuple[int, str]]] = defaultdict(list)
    pending: dict[str, int] = defaultdict(int)
    newest: dict[str, tuple[int, str]] = {}
    t = inbox_table.c
    customers = sorted(by_customer)
    for start in range(0, len(customers), _CHUNK):
        query = select(
            t.id, t.customer_id, t.event_id, t.created, t.status, t.error, t.payload
        ).where(t.customer_id.in_(customers[start : start + _CHUNK]))
        for row in conn.execute(query).mappings():
            owner = _subscription_of(row["payload"])
            mine = by_customer[row["customer_id"]]
            if owner is None:
                subs = mine if row["status"] == InboxStatus.FAILED else set()
            else:
                subs = {owner} & mine
            for sub_id in subs:
                events[sub_id] += 1
                if row["status"] == InboxStatus.FAILED:
                    failed[sub_id].append((int(row["id"]), str(row["error"] or "no reason")))
                elif row["status"] == InboxStatus.PENDING:
                    pending[sub_id] += 1
                stamp = (int(row["created"]), str(row["event_id"]))
                newest[sub_id] = max(newest.get(sub_id, stamp), stamp)
    return {
        sub_id: Clues(
            events[sub_id], tuple(sorted(failed[sub_id])), pending[sub_id], newest.get(sub_id)
        )
        for _, sub_id in wanted
    }


def store_events(
    conn: Connection, bodies: Sequence[dict[str, Any]], account: str = ""
) -> list[int]:
    """Store reconciliation events as Stripe's own are stored, in the reconcile's account;
    the ids of the inbox rows now pending (new ones, and earlier ones not processed yet)."""
    stored = inbox.store_events(
        conn, [(inbox.dumps(b), b) for b in bodies], source=SOURCE, account=account
    )
    return sorted({s.inbox_id for s in stored if s.status == InboxStatus.PENDING})


# --- runs -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Run:
    id: int
    trigger: str
    started_at: datetime
    finished_at: datetime | None
    subscriptions: int | None
    differences: int | None
    fixed: int | None
    error: str | None
    details: list[dict[str, str]]  # Difference.fields() of each

    def problems(self) -> list[str]:
        """What a person should look at, in words; empty when the ledger agreed with Stripe."""
        if self.error is not None:
            return [f"the last reconcile failed: {self.error}"]
        if not self.differences:
            return []
        shown = [
            f"{d['subscription_id']} ({d['customer_id']}): ledger {d['ledger_standing']}, "
            f"Stripe {d['stripe_standing']}; {d['cause']}"
            for d in self.details[:10]
        ]
        more = [f"and {len(self.details) - 10} more"] if len(self.details) > 10 else []
        return [f"the last reconcile found {self.differences} differences", *shown, *more]

    def fields(self) -> dict[str, Any]:
        """As JSON: times in ISO 8601."""
        return {
            "id": self.id,
            "trigger": self.trigger,
            "started_at": self.started_at.isoformat(),
            "finished_at": self.finished_at.isoformat() if self.finished_at else None,
            "subscriptions": self.subscriptions,
            "differences": self.differences,
            "fixed": self.fixed,
            "error": self.error,
            "details": self.details,
        }


def start_run(conn: Connection, trigger: str, now: datetime) -> int:
    inserted = conn.execute(
        reconcile_runs.insert()
        .values(trigger=trigger, started_at=now)
        .returning(reconcile_runs.c.id)
    )
    return int(inserted.scalar_one())


def record_source(conn: Connection, run_id: int, source: Source) -> None:
    """The source the run compares, once the key's account is known."""
    conn.execute(
        reconcile_runs.update()
        .where(reconcile_runs.c.id == run_id)
        .values(account=source.account, livemode=source.livemode)
    )


def finish_run(
    conn: Connection,
    run_id: int,
    now: datetime,
    *,
    subscriptions: int,
    differences: Sequence[Difference],
    fixed: int,
) -> None:
    conn.execute(
        reconcile_runs.update()
        .where(reconcile_runs.c.id == run_id)
        .values(
            finished_at=now,
            subscriptions=subscriptions,
            differences=len(differences),
            fixed=fixed,
            details=json.dumps([d.fields() for d in differences]),
        )
    )


def fail_run(conn: Connection, run_id: int, now: datetime, error: str) -> None:
    conn.execute(
        reconcile_runs.update()
        .where(reconcile_runs.c.id == run_id)
        .values(finished_at=now, error=error[:2000])
    )


def last_finished(conn: Connection, *, succeeded: bool = False) -> Run | None:
    """The newest run that finished, with its differences or its error (`succeeded`: the
    newest that finished without an error)."""
    query = select(reconcile_runs).where(reconcile_runs.c.finished_at.is_not(None))
    if succeeded:
        query = query.where(reconcile_runs.c.error.is_(None))
    row = (
        conn.execute(
            query.order_by(reconcile_runs.c.started_at.desc(), reconcile_runs.c.id.desc()).limit(1)
        )
        .mappings()
        .first()
    )
    if row is None:
        return None
    return Run(
        id=int(row["id"]),
        trigger=str(row["trigger"]),
        started_at=row["started_at"],
        finished_at=row["finished_at"],
        subscriptions=row["subscriptions"],
        differences=row["differences"],
        fixed=row["fixed"],
        error=row["error"],
        details=json.loads(row["details"]) if row["details"] else [],
    )


def last_started_at(conn: Connection) -> datetime | None:
    """When the newest run started, finished or not (what the schedule counts from)."""
    return conn.execute(select(func.max(reconcile_runs.c.started_at))).scalar()
