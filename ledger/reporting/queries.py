"""Listing ledger entries for accountants: filters, keyset (cursor) pages, streaming."""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, Select, func, select, true
from sqlalchemy.orm import aliased

from ledger.rules.entries import Category
from ledger.rules.months import Month
from ledger.storage.schema import inbox, ledger_entries, text_limit
from ledger.storage.store import StoredEntry, entry_from_row

MAX_ID_LENGTH = min(
    text_limit(ledger_entries.c.customer_id), text_limit(ledger_entries.c.subscription_id)
)
_PRINTABLE = re.compile(r"[^\x00-\x1f\x7f]+")
_CURSOR = re.compile(r"after:([1-9][0-9]{0,18})")


class BadFilter(ValueError):
    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field
        self.message = message


@dataclass(frozen=True, slots=True)
class LedgerFilter:
    month: Month | None = None
    customer_id: str | None = None
    subscription_id: str | None = None
    category: Category | None = None
    currency: str | None = None
    # The source (its source event's inbox row's): None for any mode, or any account.
    livemode: bool | None = None
    account: str | None = None


@dataclass(frozen=True, slots=True)
class LedgerRow(StoredEntry):
    """A stored entry as listed: with the id of the entry that reverses it, if any."""

    reversed_by: int | None = None


def parse_id(text: str, name: str) -> str:
    """A Stripe id filter: printable and at most MAX_ID_LENGTH characters (anything else matches
    nothing stored, and PostgreSQL refuses NUL bytes outright)."""
    if not text or len(text) > MAX_ID_LENGTH or not _PRINTABLE.fullmatch(text):
        raise BadFilter(name, f"{name} must be 1-{MAX_ID_LENGTH} printable characters")
    return text


def parse_category(text: str) -> Category:
    try:
        return Category(text)
    except ValueError:
        names = ", ".join(c.value for c in Category)
        raise BadFilter("category", f"{text!r} is not a category (one of {names})") from None


def encode_cursor(after_id: int) -> str:
    return base64.urlsafe_b64encode(f"after:{after_id}".encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> int:
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        found = _CURSOR.fullmatch(base64.urlsafe_b64decode(padded.encode("ascii")).decode())
    except (ValueError, binascii.Error, UnicodeError):
        found = None
    if found is None:
        raise BadFilter("cursor", "the cursor is not one this API returned")
    return int(found.group(1))


def _filtered(filters: LedgerFilter) -> Select[Any]:
    """The entries matching `filters`, in id order."""
    e = ledger_entries.c
    query = select(ledger_entries)
    if filters.month is not None:
        query = query.where(e.effective_at >= filters.month.start())
        if filters.month.year < 9999 or filters.month.month < 12:
            query = query.where(e.effective_at < filters.month.next().start())
    if filters.customer_id is not None:
        query = query.where(e.customer_id == filters.customer_id)
    if filters.subscription_id is not None:
        query = query.where(e.subscription_id == filters.subscription_id)
    if filters.category is not None:
        query = query.where(e.category == filters.category.value)
    if filters.currency is not None:
        query = query.where(e.currency == filters.currency)
    query = _in_source(query, filters)
    if filters.month is not None:
        # A month holds a bounded share of the ledger: read it by time and sort it. Ordered by
        # the bare id, PostgreSQL walks the primary key from the start and filters, expecting
        # the month's rows to be spread over all ids; they follow time (bench/pages.py).
        return query.order_by(e.id + 0)
    return query.order_by(e.id)


def _in_source(query: Select[Any], filters: LedgerFilter) -> Select[Any]:
    """Entries of the mode and account asked. An entry whose source event is not stored is
    the default source's (test mode, the endpoint's own account), as the projector counts it."""
    source = ledger_entries.c.source_event_id
    events = select(inbox.c.event_id)
    if filters.livemode is True:
        query = query.where(source.in_(events.where(inbox.c.livemode.is_(true()))))
    elif filters.livemode is False:
        query = query.where(source.not_in(events.where(inbox.c.livemode.is_(true()))))
    if filters.account:
        query = query.where(source.in_(events.where(inbox.c.account == filters.account)))
    elif filters.account == "":
        query = query.where(source.not_in(events.where(inbox.c.account != "")))
    return query


def _with_reversals(chosen: Select[Any]) -> Select[Any]:
    """`chosen` entries with the id of the entry reversing each, for a whole filter (a join)."""
    rows = chosen.subquery()
    reversal = aliased(ledger_entries)
    return (
        select(rows, reversal.c.id.label("reversed_by"))
        .outerjoin(reversal, reversal.c.reversal_of == rows.c.id)
        .order_by(rows.c.id)
    )


def _with_own_reversals(chosen: Select[Any]) -> Select[Any]:
    """`chosen` entries (a page: limited) with the id of the entry reversing each, looked up
    row by row after the limit. As a join, PostgreSQL may merge the page with the whole
    reversal index in id order, which reads every reversal below the page's ids."""
    rows = chosen.subquery()
    reversal = aliased(ledger_entries)
    reversed_by = select(reversal.c.id).where(reversal.c.reversal_of == rows.c.id)
    return select(rows, reversed_by.scalar_subquery().label("reversed_by")).order_by(rows.c.id)


def _row(m: Any) -> LedgerRow:
    entry = entry_from_row(m)
    fields = {name: getattr(entry, name) for name in StoredEntry.__dataclass_fields__}
    reversed_by = None if m["reversed_by"] is None else int(m["reversed_by"])
    return LedgerRow(**fields, reversed_by=reversed_by)


def get(conn: Connection, entry_id: int) -> LedgerRow | None:
    found = conn.execute(
        _with_own_reversals(select(ledger_entries).where(ledger_entries.c.id == entry_id))
    )
    mapping = found.mappings().first()
    return None if mapping is None else _row(mapping)


def page(
    conn: Connection, filters: LedgerFilter, *, after_id: int = 0, limit: int = 100
) -> tuple[list[LedgerRow], str | None]:
    """One page in id order, and the cursor of the next page (None on the last)."""
    query = _with_own_reversals(
        _filtered(filters).where(ledger_entries.c.id > after_id).limit(limit + 1)
    )
    rows = [_row(m) for m in conn.execute(query).mappings()]
    more = len(rows) > limit
    rows = rows[:limit]
    return rows, encode_cursor(rows[-1].id) if more else None


def totals(conn: Connection, filters: LedgerFilter) -> tuple[int, dict[str, int]]:
    """How many entries match, and their amounts summed per currency (minor units)."""
    inner = _filtered(filters).order_by(None).subquery()
    query = select(inner.c.currency, func.count(), func.sum(inner.c.amount)).group_by(
        inner.c.currency
    )
    found = {str(currency): (int(n), int(total)) for currency, n, total in conn.execute(query)}
    return sum(n for n, _ in found.values()), {c: t for c, (_, t) in sorted(found.items())}


def stream(conn: Connection, filters: LedgerFilter) -> Iterator[LedgerRow]:
    """Every matching entry in id order, read in batches (a server-side cursor on PostgreSQL)."""
    result = conn.execute(
        _with_reversals(_filtered(filters)), execution_options={"yield_per": 2_000}
    )
    for m in result.mappings():
        yield _row(m)
