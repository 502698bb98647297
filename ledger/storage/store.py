"""The append-only ledger: what is in effect, appending, reversing, per-customer locking.

Every operation takes a set of customers; one customer is a set of one.
"""

from __future__ import annotations

import json
from collections import Counter, defaultdict
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection, and_, exists, insert, select
from sqlalchemy.orm import aliased

from ledger.rules.entries import Category, DesiredEntry, EntryKey, entry_key
from ledger.rules.sources import Unit
from ledger.storage.db import dialect_insert
from ledger.storage.schema import (
    customer_references,
    customers,
    inbox,
    ledger_entries,
    reference_objects,
)

_REVERSAL = aliased(ledger_entries)
_CHUNK = 250  # event ids per statement: SQLite caps the parameters of one


@dataclass(frozen=True, slots=True)
class StoredEntry:
    id: int
    customer_id: str
    subscription_id: str
    category: Category
    currency: str
    amount: int
    effective_at: datetime
    recorded_at: datetime
    source_event_id: str
    cause_event_id: str
    reversal_of: int | None
    explanation: dict[str, Any]

    def key(self) -> EntryKey:
        return entry_key(self)


@dataclass(frozen=True, slots=True)
class DesiredLedger:
    """The entries a customer's ledger should have in effect, and the event that says so.

    `sources`: compare only the entries in effect whose source is one of these events (a
    replay from a checkpoint, before which the ledger is in line); None: all the customer's.
    """

    unit: Unit
    entries: Sequence[DesiredEntry]
    cause_event_id: str
    sources: Collection[str] | None = None


@dataclass(frozen=True, slots=True)
class Applied:
    appended: int
    reversed: int


def entry_from_row(m: Any) -> StoredEntry:
    return StoredEntry(
        id=int(m["id"]),
        customer_id=m["customer_id"],
        subscription_id=m["subscription_id"],
        category=Category(m["category"]),
        currency=m["currency"],
        amount=int(m["amount"]),
        effective_at=m["effective_at"],
        recorded_at=m["recorded_at"],
        source_event_id=m["source_event_id"],
        cause_event_id=m["cause_event_id"],
        reversal_of=None if m["reversal_of"] is None else int(m["reversal_of"]),
        explanation=json.loads(m["explanation"]),
    )


def lock_customers(conn: Connection, customer_ids: Collection[str]) -> None:
    """Serialize all ledger writes for these customers until the transaction ends.

    PostgreSQL: a row lock on each customer's row, taken in customer id order so that two
    transactions never wait on each other in a cycle. SQLite: the whole database is already
    write-locked by BEGIN IMMEDIATE (see ledger.storage.db), so the rows are only created.
    """
    ordered = sorted(set(customer_ids))
    if not ordered:
        return
    now = datetime.now(UTC)
    conn.execute(
        dialect_insert(conn, customers).on_conflict_do_nothing(index_elements=["customer_id"]),
        [{"customer_id": c, "first_seen_at": now} for c in ordered],
    )
    if conn.dialect.name == "postgresql":
        conn.execute(
            select(customers.c.customer_id)
            .where(customers.c.customer_id.in_(ordered))
            .order_by(customers.c.customer_id)
            .with_for_update()
        ).all()


def in_effect(conn: Connection, customer_ids: Collection[str] | None = None) -> list[StoredEntry]:
    """Entries that count (neither a reversal nor reversed), in id order: of these customers,
    or of every customer if None."""
    if customer_ids is not None and not customer_ids:
        return []
    reversal = aliased(ledger_entries)
    query = (
        select(ledger_entries)
        .where(
            ledger_entries.c.reversal_of.is_(None),
            ~exists().where(reversal.c.reversal_of == ledger_entries.c.id),
        )
        .order_by(ledger_entries.c.id)
    )
    if customer_ids is not None:
        query = query.where(ledger_entries.c.customer_id.in_(list(customer_ids)))
    return [entry_from_row(m) for m in conn.execute(query).mappings()]


def in_effect_of(conn: Connection, units: Collection[Unit]) -> dict[Unit, list[StoredEntry]]:
    """The entries in effect of each customer in its source (its source event's inbox row's),
    in id order."""
    if not units:
        return {}
    wanted = set(units)
    reversal = aliased(ledger_entries)
    found: dict[Unit, list[StoredEntry]] = defaultdict(list)
    ids = sorted({u.customer_id for u in wanted})
    for start in range(0, len(ids), _CHUNK):
        query = (
            select(ledger_entries, inbox.c.account, inbox.c.livemode)
            .outerjoin(inbox, inbox.c.event_id == ledger_entries.c.source_event_id)
            .where(
                ledger_entries.c.customer_id.in_(ids[start : start + _CHUNK]),
                ledger_entries.c.reversal_of.is_(None),
                ~exists().where(reversal.c.reversal_of == ledger_entries.c.id),
            )
            .order_by(ledger_entries.c.id)
        )
        for mapping in conn.execute(query).mappings():
            # An entry without its source event stored is the default source's.
            unit = Unit(mapping["customer_id"], mapping["account"] or "", bool(mapping["livemode"]))
            if unit in wanted:
                found[unit].append(entry_from_row(mapping))
    return dict(found)


def _in_effect_from(conn: Connection, sources: Mapping[Unit, Collection[str]]) -> list[StoredEntry]:
    """Each unit's entries in effect whose source event is one of `sources[unit]`, in
    id order, read through the source index: as many as those events have, whatever the size
    of the customer's ledger (event ids are unique across sources)."""
    owner = {event_id: c for c, ids in sources.items() for event_id in ids}
    ordered = sorted(owner)
    found: list[StoredEntry] = []
    for start in range(0, len(ordered), _CHUNK):
        # Reversals are left out below, not here: asked for `reversal_of IS NULL`, SQLite
        # reads that column's index (nearly every row) instead of the sources'.
        query = select(ledger_entries).where(
            ledger_entries.c.source_event_id.in_(ordered[start : start + _CHUNK]),
            ~exists().where(_REVERSAL.c.reversal_of == ledger_entries.c.id),
        )
        for mapping in conn.execute(query).mappings():
            entry = entry_from_row(mapping)
            if (
                entry.reversal_of is None
                and owner[entry.source_event_id].customer_id == entry.customer_id
            ):
                found.append(entry)
    return sorted(found, key=lambda e: e.id)


def get_entry(conn: Connection, entry_id: int) -> StoredEntry | None:
    found = (
        conn.execute(select(ledger_entries).where(ledger_entries.c.id == entry_id))
        .mappings()
        .first()
    )
    return None if found is None else entry_from_row(found)


def reversed_by(conn: Connection, entry_id: int) -> StoredEntry | None:
    found = (
        conn.execute(select(ledger_entries).where(ledger_entries.c.reversal_of == entry_id))
        .mappings()
        .first()
    )
    return None if found is None else entry_from_row(found)


def apply(conn: Connection, ledgers: Sequence[DesiredLedger]) -> Applied:
    """Make each customer's ledger in effect equal its desired entries, by reversals and
    appends only: one read of what is in effect, one executemany for every new row (psycopg
    pipelines it; a multi-row VALUES compiles far slower). Callers hold `lock_customers`."""
    current: dict[Unit, list[StoredEntry]] = defaultdict(list)
    current.update(in_effect_of(conn, [d.unit for d in ledgers if d.sources is None]))
    owner = {d.unit: d.sources for d in ledgers if d.sources}
    by_id = {(u.customer_id, event_id): u for u, ids in owner.items() for event_id in ids}
    for entry in _in_effect_from(conn, owner):
        current[by_id[(entry.customer_id, entry.source_event_id)]].append(entry)
    now = datetime.now(UTC)
    rows: list[dict[str, Any]] = []
    for ledger in ledgers:
        rows += _diff_rows(current[ledger.unit], ledger.entries, ledger.cause_event_id, now)
    if rows:
        conn.execute(insert(ledger_entries), rows)
    reversals = sum(1 for row in rows if row["reversal_of"] is not None)
    return Applied(appended=len(rows) - reversals, reversed=reversals)


def _diff_rows(
    current: Sequence[StoredEntry],
    desired: Sequence[DesiredEntry],
    cause_event_id: str,
    now: datetime,
) -> list[dict[str, Any]]:
    """The rows that turn `current` (in effect) into `desired`: reversals of the surplus,
    then what is missing, compared as multisets of entry keys."""
    wanted = Counter(entry.key() for entry in desired)
    have = Counter(entry.key() for entry in current)
    rows: list[dict[str, Any]] = []
    surplus = have - wanted
    for entry in current:
        if surplus[entry.key()] > 0:
            surplus[entry.key()] -= 1
            rows.append(_reversal_row(entry, cause_event_id, now))
    missing = wanted - have
    for want in desired:
        if missing[want.key()] > 0:
            missing[want.key()] -= 1
            rows.append(_new_row(want, cause_event_id, now))
    return rows


def _new_row(entry: DesiredEntry, cause_event_id: str, now: datetime) -> dict[str, Any]:
    return {
        "customer_id": entry.customer_id,
        "subscription_id": entry.subscription_id,
        "category": entry.category.value,
        "currency": entry.currency,
        "amount": entry.amount,
        "effective_at": entry.effective_at,
        "recorded_at": now,
        "source_event_id": entry.source_event_id,
        "cause_event_id": cause_event_id,
        "reversal_of": None,
        "explanation": json.dumps(dict(entry.explanation), sort_keys=True, default=str),
    }


def _reversal_row(entry: StoredEntry, cause_event_id: str, now: datetime) -> dict[str, Any]:
    why = {
        "reverses": entry.id,
        "reason": f"event {cause_event_id} changed what the rules derive "
        f"from {entry.source_event_id}",
    }
    return {
        "customer_id": entry.customer_id,
        "subscription_id": entry.subscription_id,
        "category": entry.category.value,
        "currency": entry.currency,
        "amount": -entry.amount,
        "effective_at": entry.effective_at,
        "recorded_at": now,
        "source_event_id": entry.source_event_id,
        "cause_event_id": cause_event_id,
        "reversal_of": entry.id,
        "explanation": json.dumps(why, sort_keys=True),
    }


# --- reference objects (coupons, discounts, prices with tiers) ---------------------------


def get_reference(conn: Connection, kind: str, object_id: str) -> dict[str, Any] | None:
    payload = conn.execute(
        select(reference_objects.c.payload).where(
            and_(reference_objects.c.kind == kind, reference_objects.c.object_id == object_id)
        )
    ).scalar_one_or_none()
    return None if payload is None else dict(json.loads(payload))


def put_reference(
    conn: Connection, kind: str, object_id: str, obj: dict[str, Any], version: int, source: str
) -> bool:
    """Keep the newest version of a reference object; True if this one was stored."""
    table = reference_objects
    values = {
        "kind": kind,
        "object_id": object_id,
        "payload": json.dumps(obj, sort_keys=True),
        "version": version,
        "source": source,
        "updated_at": datetime.now(UTC),
    }
    statement = dialect_insert(conn, table).values(**values)
    statement = statement.on_conflict_do_update(
        index_elements=["kind", "object_id"],
        set_={k: statement.excluded[k] for k in ("payload", "version", "source", "updated_at")},
        where=table.c.version <= statement.excluded.version,
    )
    return conn.execute(statement.returning(table.c.version)).first() is not None


def record_dependencies(
    conn: Connection, customer_id: str, refs: Iterable[tuple[str, str]]
) -> None:
    rows = [{"kind": k, "object_id": o, "customer_id": customer_id} for k, o in refs]
    if rows:
        conn.execute(dialect_insert(conn, customer_references).on_conflict_do_nothing(), rows)


def dependents(conn: Connection, kind: str, object_id: str) -> list[str]:
    query = select(customer_references.c.customer_id).where(
        customer_references.c.kind == kind, customer_references.c.object_id == object_id
    )
    return sorted(str(c) for c in conn.execute(query).scalars())
