"""Ledger helpers for tests: the whole ledger as stored, and postings built by hand."""

from __future__ import annotations

from sqlalchemy import Connection, select

from ledger.reporting.balances import Posting
from ledger.storage.schema import ledger_entries
from ledger.storage.store import StoredEntry, entry_from_row


def all_entries(conn: Connection) -> list[StoredEntry]:
    """Every ledger row in id order, reversals and reversed ones included (the application
    reads only what is in effect)."""
    query = select(ledger_entries).order_by(ledger_entries.c.id)
    return [entry_from_row(m) for m in conn.execute(query).mappings()]


def posting(customer_id: str, currency: str, category: str, amount: int, month: int) -> Posting:
    """A posting reported in its own currency."""
    return Posting(customer_id, currency, category, amount, month, currency, amount)
