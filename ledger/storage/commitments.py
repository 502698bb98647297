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
from sqlalchemy import text as sql

from ledger.rules.commitments import (
    Commitment,
    Commitments,
    Folded,
    Planned,
    prices_on,
)
from ledger.rules.payloads import Price, Tier
from ledger.rules.version import rules_version
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
    "keep",
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


def stored_objects(
    conn: Connection,
    customer_id: str | None = None,
    *,
    after: Position | None = None,
    by_customer: bool = False,
) -> Iterator[Stored]:
    """Every folded event in the order of §5.3 (`by_customer`: each customer's together), or
    one customer's ("" for none), or only those after a place; streamed."""
    i = inbox.c
    query = select(i.created, i.event_id, i.event_type, i.customer_id, i.payload).where(
        _is_folded()
    )
    if customer_id is not None:
        query = query.where(
            i.customer_id.is_(None) if customer_id == NO_CUSTOMER else i.customer_id == customer_id
        )
    if after is not None:
        query = query.where(_after(i.created, i.event_id, after, inclusive=False))
    if by_customer:
        query = query.order_by(i.customer_id)
    query = query.order_by(i.created, i.event_id)
    for row in conn.execute(query, execution_options={"yield_per": _BATCH}):
        yield _read(*row)


def _after(
    created: ColumnElement[Any], event_id: ColumnElement[Any], at: Position, *, inclusive: bool
) -> ColumnElement[bool]:
    """Rows after a place in the order of §5.3 (`inclusive`: or at it)."""
    same = event_id >= at[1] if inclusive else event_id > at[1]
    return or_(created > at[0], and_(created == at[0], same))


def fold_all(conn: Connection) -> Commitments:
    """Every stored object folded at once: the reference `refold` must agree with."""
    folded = Commitments()
    for found in stored_objects(conn):
        _add(folded, found)
    return folded


def _add(folded: Commitments, found: Stored) -> None:
    if not found.readable:
        text = f"{found.event_id}: not a readable Stripe event"
        folded.note(found.event_id, text, found.created)
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


def _lock(conn: Connection, kind: str, keys: Iterable[str], *, shared: bool = False) -> None:
    """PostgreSQL advisory locks until the transaction ends: a customer's fold is written by
    one transaction at a time, and a price's sightings are not changed while a fold that reads
    them is being written (its users are then found after it commits). SQLite's transactions
    already run one at a time."""
    if conn.dialect.name != "postgresql":
        return
    call = "pg_advisory_xact_lock_shared" if shared else "pg_advisory_xact_lock"
    for key in sorted(set(keys)):
        conn.execute(sql(f"SELECT {call}(hashtextextended(:key, 0))"), {"key": f"{kind}:{key}"})


class _StoredHistory:
    """`PriceHistory` over `committed_prices`: the newest sighting at or before a place."""

    def __init__(self, conn: Connection) -> None:
        self._conn = conn
        self._known: dict[tuple[str, int, str], Price | None] = {}

    def at(self, price_id: str, created: int, event_id: str) -> Price | None:
        key = (price_id, created, event_id)
        if key not in self._known:
            _lock(self._conn, "committed price", [price_id], shared=True)
            found = _before(self._conn, price_id, (created, event_id), inclusive=True)
            self._known[key] = None if found is None else _price(found)
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


def _replace_sightings(
    conn: Connection, customer_id: str, events: Sequence[Stored], *, whole: bool
) -> set[str]:
    """The customer's sightings as its events say (`whole`: all its events; else the events
    after its kept fold, whose sightings are not stored yet); the price ids whose history
    changed."""
    p = committed_prices.c
    wanted = _sightings(events)
    query = select(p.price_id, p.created, p.event_id, p.price).where(p.customer_id == customer_id)
    if not whole:
        first = min(((e.created, e.event_id) for e in events), default=None)
        if first is None:
            return set()
        query = query.where(_after(p.created, p.event_id, first, inclusive=True))
    have = {
        (str(price_id), int(created), str(event_id)): (customer_id, str(text))
        for price_id, created, event_id, text in conn.execute(query)
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
    for key, seen in [*((k, have[k][1]) for k in gone), *((k, wanted[k][1]) for k in new)]:
        price_id, created, event_id = key
        # Unchanged for every later event only if the price seen just before was the same.
        if (
            price_id not in changed
            and _before(conn, price_id, (created, event_id), inclusive=False) != seen
        ):
            changed.add(price_id)
    _lock(conn, "committed price", changed)  # after the folds reading them commit
    return changed


def _insert_sightings(conn: Connection, rows: dict[tuple[str, int, str], tuple[str, str]]) -> None:
    values = [
        {"price_id": k[0], "created": k[1], "event_id": k[2], "customer_id": c, "price": text}
        for k, (c, text) in rows.items()
    ]
    for start in range(0, len(values), _BATCH):
        conn.execute(committed_prices.insert(), values[start : start + _BATCH])


# --- the kept folds -------------------------------------------------------------------------


@dataclass(slots=True)
class _Plan:
    """One customer's fold to do: from its kept state (`resumed`) with the events after it, or
    from the start with all its events."""

    folded: Commitments
    events: list[Stored]
    resumed: bool
    count: int  # events folded before `events`
    last: Position | None  # where the kept state stops


def _from_start(conn: Connection, customer_id: str) -> _Plan:
    events = list(stored_objects(conn, customer_id))
    return _Plan(Commitments(_StoredHistory(conn)), events, False, 0, None)


def _plan(conn: Connection, customer_id: str, earliest: Position | None) -> _Plan:
    """Resume from the kept state when every event being processed sorts after it (an event
    stored out of order, or retried, sorts before: the customer is folded from the start)."""
    c = committed_customers.c
    row = conn.execute(
        select(c.folded_created, c.folded_event, c.folded_count, c.state).where(
            c.customer_id == customer_id
        )
    ).first()
    if earliest is None or row is None or row.state is None:
        return _from_start(conn, customer_id)
    last = (int(row.folded_created), str(row.folded_event))
    if earliest <= last:
        return _from_start(conn, customer_id)
    version, _, saved = str(row.state).partition("\n")
    if version != rules_version():  # folded under other rules: fold from the start
        return _from_start(conn, customer_id)
    try:
        folded = Commitments.resumed(saved, _StoredHistory(conn))
    except (ValueError, TypeError):
        return _from_start(conn, customer_id)
    events = list(stored_objects(conn, customer_id, after=last))
    return _Plan(folded, events, True, int(row.folded_count), last)


def _keep(conn: Connection, customer_id: str, plan: _Plan, *, fresh: bool = False) -> None:
    """Fold the plan's events and keep the result (`fresh`: the tables hold nothing of it)."""
    if plan.resumed and not plan.events:
        return
    folded = plan.folded
    for found in plan.events:
        _add(folded, found)
    if not fresh:
        u = committed_price_uses.c
        conn.execute(delete(committed_price_uses).where(u.customer_id == customer_id))
        conn.execute(
            delete(committed_customers).where(committed_customers.c.customer_id == customer_id)
        )
    uses = [{"price_id": p, "customer_id": customer_id} for p in sorted(folded.looked_up)]
    if uses:
        conn.execute(committed_price_uses.insert(), uses)
    last = (plan.events[-1].created, plan.events[-1].event_id) if plan.events else plan.last
    if last is None:
        return
    commitments = folded.commitments()
    body = {
        "commitments": [_encode(c) for c in commitments],
        "notes": [
            [created, e, text]
            for (created, e), text in zip(folded.noted_at, folded.notes, strict=True)
        ],
    }
    conn.execute(
        committed_customers.insert(),
        {
            "customer_id": customer_id,
            "scheduled": bool(folded.notes) or any(_counts(c) for c in commitments),
            "body": json.dumps(body, separators=(",", ":")),
            "folded_created": last[0],
            "folded_event": last[1],
            "folded_count": plan.count + len(plan.events),
            "state": f"{rules_version()}\n{folded.saved()}",
        },
    )


def _counts(c: Commitment) -> bool:
    """Whether a subscription counts in committed MRR whatever its ledger says: something
    scheduled, or a trial (potential MRR). Any other counts only while delinquent."""
    return bool(c.steps) or c.status == "trialing"


def keep(conn: Connection, processed: Iterable[tuple[str | None, int, str]]) -> None:
    """Fold in these events being processed ((customer, created, event id); None: without a
    customer), inside the caller's transaction: each customer's fold continues from its kept
    state, or starts again if one of them sorts before it. Any other customer whose fold
    resolved a price id that they change what is known of is folded again."""
    earliest: dict[str, Position] = {}
    for customer, created, event_id in processed:
        key = customer or NO_CUSTOMER
        earliest[key] = min(earliest.get(key, (created, event_id)), (created, event_id))
    _lock(conn, "committed customer", earliest)
    _refold(conn, {c: _plan(conn, c, at) for c, at in sorted(earliest.items())})


def refold(conn: Connection, customer_ids: Collection[str | None]) -> None:
    """Fold these customers from the start (None: objects without a customer), as when one of
    their stored rows failed; inside the caller's transaction."""
    ids = sorted({c or NO_CUSTOMER for c in customer_ids})
    _lock(conn, "committed customer", ids)
    _refold(conn, {c: _from_start(conn, c) for c in ids})


def _refold(conn: Connection, plans: dict[str, _Plan]) -> None:
    changed: set[str] = set()
    for customer_id, plan in plans.items():  # every sighting first: a fold reads others'
        changed |= _replace_sightings(conn, customer_id, plan.events, whole=not plan.resumed)
    for customer_id, plan in plans.items():
        _keep(conn, customer_id, plan)
    others = sorted(_users(conn, changed) - set(plans))
    _lock(conn, "committed customer", others)
    for customer_id in others:
        _keep(conn, customer_id, _from_start(conn, customer_id))


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
    events: list[Stored] = []
    for found in stored_objects(conn, by_customer=True):
        if events and found.customer_id != events[-1].customer_id:
            _rebuild_one(conn, events)
            events = []
        events.append(found)
    if events:
        _rebuild_one(conn, events)
    return int(conn.execute(select(func.count()).select_from(committed_customers)).scalar_one())


def _rebuild_one(conn: Connection, events: list[Stored]) -> None:
    plan = _Plan(Commitments(_StoredHistory(conn)), events, False, 0, None)
    _keep(conn, events[0].customer_id, plan, fresh=True)


# --- reading the kept folds -----------------------------------------------------------------


def _encode(c: Commitment) -> dict[str, Any]:
    raw = asdict(c)
    raw["steps"] = [[s.kind, s.at, s.event_id, s.detail, s.price] for s in c.steps]
    return raw


def _decode(raw: dict[str, Any]) -> tuple[Position, Commitment]:
    steps = tuple(Planned(*s) for s in raw.pop("steps"))
    found = Commitment(**raw, steps=steps)
    return (found.first_created, found.first_event), found


def kept(conn: Connection, delinquent: Collection[str] = ()) -> Folded:
    """The kept folds of the customers with something scheduled, a trial or a note, and of
    the `delinquent` customers (whose MRR is at risk), as one: subscriptions in the order each
    was first named, notes in the order of their events, as `fold_all` gives them. No other
    subscription changes committed MRR."""
    c = committed_customers.c
    placed: list[tuple[Position, Commitment]] = []
    notes: list[tuple[Position, str]] = []
    wanted = sorted(set(delinquent))
    queries = [select(c.body).where(c.scheduled)]
    queries += [
        select(c.body).where(~c.scheduled, c.customer_id.in_(wanted[start : start + _BATCH]))
        for start in range(0, len(wanted), _BATCH)
    ]
    for query in queries:
        for (body_text,) in conn.execute(query, execution_options={"yield_per": _BATCH}):
            body = json.loads(body_text)
            placed.extend(_decode(raw) for raw in body["commitments"])
            notes.extend(((int(at), str(e)), str(note)) for at, e, note in body["notes"])
    placed.sort(key=lambda item: item[0])
    notes.sort(key=lambda item: item[0])
    return Folded([c for _, c in placed], [note for _, note in notes])
