"""Committed MRR kept per customer (`committed_customers`), so a request reads one row per
customer instead of folding every stored subscription object (docs/mrr-rules.md §12).

A customer's row is its stored `customer.subscription.*` and `subscription_schedule.*`
objects (all but failed rows, in the order of §5.3) folded by `ledger.rules.commitments`,
written by the worker in the transaction that processes or fails one of them (`refold`).
The fold's one tie to other customers is the prices seen on their snapshots, which resolve
price ids in schedule phases and pending updates: those are kept with where in the order
they were seen (`committed_prices`), so one customer's fold resolves them exactly as the fold
of every object does; and where what is known of a price changes, the folds that resolved it
(`committed_price_uses`) are redone. `rebuild` refills all three from the stored events.
"""

from __future__ import annotations

import json
from collections.abc import Collection, Iterable, Iterator, Sequence
from dataclasses import asdict, dataclass
from decimal import Decimal
from typing import Any

from sqlalchemy import ColumnElement, Connection, and_, delete, func, or_, select

from ledger.rules.commitments import (
    Commitment,
    Commitments,
    Folded,
    Planned,
    prices_on,
)
from ledger.rules.payloads import Price, Tier
from ledger.storage.schema import (
    InboxStatus,
    committed_customers,
    committed_price_uses,
    committed_prices,
    inbox,
)

__all__ = [
    "PREFIXES",
    "Stored",
    "concerns",
    "fold_all",
    "kept",
    "rebuild",
    "refold",
    "stored_objects",
]

PREFIXES = ("customer.subscription.", "subscription_schedule.")
NO_CUSTOMER = ""  # the key of objects stored without a customer
_BATCH = 2_000

Position = tuple[int, str]  # (created, event id): the order of §5.3


@dataclass(frozen=True, slots=True)
class Stored:
    """One stored subscription or schedule event: its object (None: not an object, left out),
    or not `readable` as a Stripe event at all."""

    created: int
    event_id: str
    event_type: str
    customer_id: str
    obj: dict[str, Any] | None
    readable: bool = True


def concerns(event_type: str) -> bool:
    """Whether an event of this type is folded into committed MRR."""
    return event_type.startswith(PREFIXES)


# --- reading stored events ------------------------------------------------------------------


def _is_folded() -> ColumnElement[bool]:
    i = inbox.c
    return and_(
        or_(
            i.event_type.like("customer.subscription.%"),
            i.event_type.like("subscription\\_schedule.%", escape="\\"),
        ),
        i.status != InboxStatus.FAILED,
    )


def _read(
    created: int, event_id: str, event_type: str, customer: str | None, payload: str
) -> Stored:
    place = (int(created), str(event_id), str(event_type), customer or NO_CUSTOMER)
    try:
        obj = json.loads(payload)["data"]["object"]
    except (ValueError, KeyError, TypeError):
        return Stored(*place, None, readable=False)
    return Stored(*place, obj if isinstance(obj, dict) else None)


def stored_objects(conn: Connection, customer_id: str | None = None) -> Iterator[Stored]:
    """Every folded event in the order of §5.3, or one customer's ("" for none); streamed."""
    i = inbox.c
    query = select(i.created, i.event_id, i.event_type, i.customer_id, i.payload).where(
        _is_folded()
    )
    if customer_id is not None:
        query = query.where(
            i.customer_id.is_(None) if customer_id == NO_CUSTOMER else i.customer_id == customer_id
        )
    query = query.order_by(i.created, i.event_id)
    for row in conn.execute(query, execution_options={"yield_per": _BATCH}):
        yield _read(*row)


def fold_all(conn: Connection) -> Commitments:
    """Every stored object folded at once: the reference `refold` must agree with."""
    folded = Commitments()
    for found in stored_objects(conn):
        _add(folded, found)
    return folded


def _add(folded: Commitments, found: Stored) -> None:
    if not found.readable:
        folded.note(found.event_id, f"{found.event_id}: not a readable Stripe event")
    elif found.obj is not None:
        folded.add(found.event_id, found.event_type, found.obj, found.created)


# --- prices seen ----------------------------------------------------------------------------


def _price_text(price: Price) -> str:
    return json.dumps(asdict(price), sort_keys=True, default=str)


def _price(text: str) -> Price:
    raw = json.loads(text)
    amount = raw["unit_amount"]
    tiers = raw["tiers"]
    return Price(
        **{
            **raw,
            "unit_amount": None if amount is None else Decimal(amount),
            "tiers": None if tiers is None else tuple(_tier(t) for t in tiers),
        }
    )


def _tier(raw: dict[str, Any]) -> Tier:
    unit, flat = raw["unit_amount"], raw["flat_amount"]
    return Tier(
        up_to=raw["up_to"],
        unit_amount=None if unit is None else Decimal(unit),
        flat_amount=None if flat is None else Decimal(flat),
    )


def _sightings(events: Iterable[Stored]) -> dict[tuple[str, int, str], tuple[str, str]]:
    """(price id, created, event id) -> (customer, price) of each price seen on a snapshot;
    of an item repeated on one snapshot, the last (as the fold keeps it)."""
    found: dict[tuple[str, int, str], tuple[str, str]] = {}
    for e in events:
        for price in prices_on(e.event_type, e.obj) if e.obj is not None else ():
            found[(price.id, e.created, e.event_id)] = (e.customer_id, _price_text(price))
    return found


class _StoredHistory:
    """`PriceHistory` over `committed_prices`: the newest sighting at or before a place."""

    def __init__(self, conn: Connection) -> None:
        self._conn = conn
        self._known: dict[tuple[str, int, str], Price | None] = {}

    def at(self, price_id: str, created: int, event_id: str) -> Price | None:
        key = (price_id, created, event_id)
        if key not in self._known:
            text = _before(self._conn, price_id, (created, event_id), inclusive=True)
            self._known[key] = None if text is None else _price(text)
        return self._known[key]


def _before(conn: Connection, price_id: str, at: Position, *, inclusive: bool) -> str | None:
    p = committed_prices.c
    created, event_id = at
    same = p.event_id <= event_id if inclusive else p.event_id < event_id
    row = conn.execute(
        select(p.price)
        .where(p.price_id == price_id, or_(p.created < created, and_(p.created == created, same)))
        .order_by(p.created.desc(), p.event_id.desc())
        .limit(1)
    ).first()
    return None if row is None else str(row[0])


def _replace_sightings(conn: Connection, customer_id: str, events: Sequence[Stored]) -> set[str]:
    """The customer's sightings as its events say; the price ids whose history changed."""
    p = committed_prices.c
    wanted = _sightings(events)
    have = {
        (str(price_id), int(created), str(event_id)): (customer_id, str(text))
        for price_id, created, event_id, text in conn.execute(
            select(p.price_id, p.created, p.event_id, p.price).where(p.customer_id == customer_id)
        )
    }
    gone = [key for key, value in have.items() if wanted.get(key) != value]
    new = [key for key, value in wanted.items() if have.get(key) != value]
    for price_id, created, event_id in gone:
        conn.execute(
            delete(committed_prices).where(
                p.price_id == price_id, p.created == created, p.event_id == event_id
            )
        )
    _insert_sightings(conn, {key: wanted[key] for key in new})
    changed: set[str] = set()
    for key, text in [*((k, have[k][1]) for k in gone), *((k, wanted[k][1]) for k in new)]:
        price_id, created, event_id = key
        # Unchanged for every later event only if the price seen just before was the same.
        if (
            price_id not in changed
            and _before(conn, price_id, (created, event_id), inclusive=False) != text
        ):
            changed.add(price_id)
    return changed


def _insert_sightings(conn: Connection, rows: dict[tuple[str, int, str], tuple[str, str]]) -> None:
    values = [
        {"price_id": k[0], "created": k[1], "event_id": k[2], "customer_id": c, "price": text}
        for k, (c, text) in rows.items()
    ]
    for start in range(0, len(values), _BATCH):
        conn.execute(committed_prices.insert(), values[start : start + _BATCH])


# --- the kept folds -------------------------------------------------------------------------


def _fold(conn: Connection, customer_id: str, events: Sequence[Stored]) -> None:
    """Fold one customer's events against the stored sightings and keep the result."""
    folded = Commitments(_StoredHistory(conn))
    for found in events:
        _add(folded, found)
    where = {e.event_id: e.created for e in events}
    commitments = folded.commitments()
    u = committed_price_uses.c
    conn.execute(delete(committed_price_uses).where(u.customer_id == customer_id))
    uses = [{"price_id": p, "customer_id": customer_id} for p in sorted(folded.looked_up)]
    if uses:
        conn.execute(committed_price_uses.insert(), uses)
    conn.execute(
        delete(committed_customers).where(committed_customers.c.customer_id == customer_id)
    )
    if not commitments and not folded.notes:
        return
    body = {
        "commitments": [_encode(c, where[c.first_event]) for c in commitments],
        "notes": [
            [where[e], e, text] for e, text in zip(folded.noted_by, folded.notes, strict=True)
        ],
    }
    conn.execute(
        committed_customers.insert(),
        {"customer_id": customer_id, "body": json.dumps(body, separators=(",", ":"))},
    )


def refold(conn: Connection, customer_ids: Collection[str | None]) -> None:
    """Fold these customers again (None: objects without a customer), and any other whose
    fold resolved a price id that what they hold changed; inside the caller's transaction."""
    ids = sorted({c or NO_CUSTOMER for c in customer_ids})
    if not ids:
        return
    events = {c: list(stored_objects(conn, c)) for c in ids}
    changed: set[str] = set()
    for customer_id in ids:  # every sighting first: one customer's fold reads another's
        changed |= _replace_sightings(conn, customer_id, events[customer_id])
    for customer_id in ids:
        _fold(conn, customer_id, events[customer_id])
    for customer_id in sorted(_users(conn, changed) - set(ids)):
        _fold(conn, customer_id, list(stored_objects(conn, customer_id)))


def _users(conn: Connection, price_ids: Collection[str]) -> set[str]:
    if not price_ids:
        return set()
    u = committed_price_uses.c
    query = select(u.customer_id).where(u.price_id.in_(sorted(price_ids))).distinct()
    return {str(c) for (c,) in conn.execute(query)}


def rebuild(conn: Connection) -> int:
    """Refill the kept folds from every stored event (migration 0017, `mrr replay`); how many
    customers hold one."""
    for table in (committed_customers, committed_prices, committed_price_uses):
        conn.execute(delete(table))
    pending: dict[tuple[str, int, str], tuple[str, str]] = {}
    for found in stored_objects(conn):
        pending.update(_sightings([found]))
        if len(pending) >= _BATCH:
            _insert_sightings(conn, pending)
            pending = {}
    _insert_sightings(conn, pending)
    customers = [
        str(c or NO_CUSTOMER)
        for (c,) in conn.execute(select(inbox.c.customer_id).where(_is_folded()).distinct())
    ]
    for customer_id in sorted(set(customers)):
        _fold(conn, customer_id, list(stored_objects(conn, customer_id)))
    return int(conn.execute(select(func.count()).select_from(committed_customers)).scalar_one())


# --- reading the kept folds -----------------------------------------------------------------


def _encode(c: Commitment, first_created: int) -> dict[str, Any]:
    raw = asdict(c)
    raw["steps"] = [[s.kind, s.at, s.event_id, s.detail, s.price] for s in c.steps]
    raw["first_created"] = first_created
    return raw


def _decode(raw: dict[str, Any]) -> tuple[Position, Commitment]:
    place = (int(raw.pop("first_created")), str(raw["first_event"]))
    steps = tuple(Planned(*s) for s in raw.pop("steps"))
    return place, Commitment(**raw, steps=steps)


def kept(conn: Connection) -> Folded:
    """The kept folds as one: subscriptions in the order each was first named, notes in the
    order of their events, as `fold_all` gives them."""
    placed: list[tuple[Position, Commitment]] = []
    notes: list[tuple[Position, str]] = []
    for (text,) in conn.execute(
        select(committed_customers.c.body), execution_options={"yield_per": _BATCH}
    ):
        body = json.loads(text)
        placed.extend(_decode(raw) for raw in body["commitments"])
        notes.extend(((int(created), str(e)), str(note)) for created, e, note in body["notes"])
    placed.sort(key=lambda item: item[0])
    notes.sort(key=lambda item: item[0])
    return Folded([c for _, c in placed], [note for _, note in notes])
