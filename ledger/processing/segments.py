"""Rebuilding every customer's segment rows by replaying its stored events (`mrr replay`).

The ledger is not touched: an existing ledger gains its segments this way, and a change to the
segment rules reaches every customer.
"""

from __future__ import annotations

from collections.abc import Iterator
from itertools import islice

from sqlalchemy import Connection

from ledger.processing import replays
from ledger.processing.apply import Fetcher, StoredReferences, keep_segments
from ledger.rules.sources import Unit
from ledger.storage import customer_months, store
from ledger.storage import replay_checkpoints as checkpoints

CHUNK = 200


def rebuild(conn: Connection, fetch: Fetcher | None = None) -> int:
    """Replace every customer's segment rows and the segments' totals, in the caller's
    transaction (customers are locked as they are replayed); returns customers replayed."""
    customer_months.clear(conn, segments=True)
    ids = checkpoints.units(conn)
    refs = StoredReferences(conn, fetch)
    for chunk in _chunks(ids):
        store.lock_customers(conn, [u.customer_id for u in chunk])
        found = replays.recompute(conn, chunk, refs, from_start=True, keep=False)
        keep_segments(conn, found)
    return len(ids)


def _chunks(ids: list[Unit]) -> Iterator[list[Unit]]:
    iterator = iter(ids)
    while batch := list(islice(iterator, CHUNK)):
        yield batch
