"""Benchmark ledgers: a fresh PostgreSQL database filled with generated ledger rows, fast.

Inserting millions of rows through the hash-chain trigger (sha256 and an advisory lock per row)
would take hours, so the loader works as the database owner: it disables the ledger's user
triggers, COPYs the rows, writes the matching `ledger_chain` links set-based (seq = row_number()
over id, with placeholder hashes, NOT real ones: `mrr verify` would fail on such a ledger and is
not part of these benchmarks), then enables the triggers again. Readers (the projector, the
reports) see what they would see on a real ledger: every row with one link, `seq` in id order.

The data: `customers` customers (default 20,000) over 36 months from 2023-01, 80% billed in
usd, 20% in eur; customers arrive over the period (30% at the start). Each month gets an equal
share of the rows, each row a movement of a randomly picked customer that its state allows:
new, expansion, contraction, churn, delinquent (then recovered, delinquent churn or a
delinquent change), reactivation after a churn, and about 1% reversal pairs (an expansion and
its reversal, same effective time). Amounts are integer minor units; balances never go negative.
The customer count is fixed, so a larger ledger means more movements per customer.
"""

from __future__ import annotations

import random
import uuid
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from itertools import chain

import psycopg
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from ledger.storage import migrate
from ledger.storage.schema import ledger_entries

ADMIN_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
CUSTOMERS = 20_000
MONTHS = 36
FIRST = datetime(2023, 1, 1, tzinfo=UTC)
PRICES = (900, 1_900, 2_900, 4_900, 9_900, 19_900, 49_900)
COLUMNS = tuple(column.name for column in ledger_entries.columns)
Row = tuple[int, str, str, str, str, int, datetime, datetime, str, str, int | None, str]


# --- databases ------------------------------------------------------------------------------


def _admin(statement: str) -> None:
    engine = create_engine(ADMIN_URL, isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as conn:
            conn.execute(text(statement))
    finally:
        engine.dispose()


@contextmanager
def fresh_database() -> Iterator[str]:
    """A new, migrated PostgreSQL database with a unique name, dropped on exit."""
    name = f"mrr_bench_{uuid.uuid4().hex[:12]}"
    _admin(f'CREATE DATABASE "{name}"')
    try:
        url = make_url(ADMIN_URL).set(database=name).render_as_string(hide_password=False)
        migrate.upgrade(url)
        yield url
    finally:
        _admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def libpq_url(url: str) -> str:
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


# --- generated rows ---------------------------------------------------------------------------


@dataclass(slots=True)
class _Customer:
    currency: str
    active: int = 0
    delinquent: int = 0
    started: bool = False


def _month_start(m: int) -> datetime:
    year, month = divmod(FIRST.month - 1 + m, 12)
    return FIRST.replace(year=FIRST.year + year, month=month + 1)


def _movement(rng: random.Random, c: _Customer) -> tuple[str, int] | None:
    """One movement the customer's state allows (and apply it), or None to pick another."""
    if c.delinquent:
        roll = rng.random()
        if roll < 0.70:
            amount, c.active, c.delinquent = c.delinquent, c.delinquent, 0
            return "recovered", amount
        if roll < 0.90:
            amount, c.delinquent = -c.delinquent, 0
            return "delinquent_churn", amount
        change = rng.choice((-1, 1)) * min(c.delinquent // 2, rng.choice(PRICES))
        if change == 0:
            return None
        c.delinquent += change
        return "delinquent_change", change
    if c.active:
        roll = rng.random()
        if roll < 0.45:
            step = rng.choice(PRICES[:4])
            c.active += step
            return "expansion", step
        if roll < 0.80:
            step = min(rng.choice(PRICES[:4]), c.active // 2)
            if step == 0:
                return None
            c.active -= step
            return "contraction", -step
        if roll < 0.90:
            amount, c.active = -c.active, 0
            return "churn", amount
        amount, c.delinquent, c.active = -c.active, c.active, 0
        return "delinquent", amount
    if not c.started:
        c.started = True
        c.active = rng.choice(PRICES)
        return "new", c.active
    if rng.random() < 0.25:
        c.active = rng.choice(PRICES)
        return "reactivation", c.active
    return None


def _explanation(rng: random.Random, category: str, amount: int) -> str:
    price, quantity = rng.randrange(1, 40), rng.randrange(1, 5)
    return (
        f'{{"rule": "{category}", "price": "price_{price:04d}", "quantity": {quantity}, '
        f'"mrr_change": {amount}, "note": "generated for the benchmark"}}'
    )


def rows(entries: int, customers: int = CUSTOMERS, seed: int = 7) -> Iterator[Row]:
    """`entries` ledger rows in id order (ids 1..entries), month by month."""
    rng = random.Random(seed)
    people = [_Customer("eur" if rng.random() < 0.2 else "usd") for _ in range(customers)]
    next_id = 1
    for m in range(MONTHS):
        quota = entries // MONTHS + (1 if m < entries % MONTHS else 0)
        start = _month_start(m)
        seconds = int((_month_start(m + 1) - start).total_seconds())
        joined = max(1, int(customers * (0.3 + 0.7 * m / (MONTHS - 1))))
        units: list[tuple[datetime, int, list[tuple[str, int, bool]]]] = []
        made = 0
        while made < quota:
            i = rng.randrange(joined)
            c = people[i]
            if quota - made >= 2 and c.active and rng.random() < 0.01:
                step = rng.choice(PRICES[:4])
                unit = [("expansion", step, False), ("expansion", -step, True)]
            else:
                found = _movement(rng, c)
                if found is None:
                    continue
                unit = [(found[0], found[1], False)]
            units.append((start + timedelta(seconds=rng.randrange(seconds)), i, unit))
            made += len(unit)
        units.sort(key=lambda u: u[0])
        for at, i, unit in units:
            customer = people[i]
            for category, amount, is_reversal in unit:
                recorded = at + timedelta(seconds=rng.randrange(3 * 86_400))
                event = f"evt_{next_id:024d}"
                yield (
                    next_id,
                    f"cus_{i:014d}",
                    f"sub_{i:014d}",
                    category,
                    customer.currency,
                    amount,
                    at.replace(tzinfo=None),
                    recorded.replace(tzinfo=None),
                    event,
                    event,
                    next_id - 1 if is_reversal else None,
                    _explanation(rng, category, amount),
                )
                next_id += 1


def load(
    url: str,
    entries: int,
    customers: int = CUSTOMERS,
    seed: int = 7,
    extra: Iterable[Row] = (),
) -> None:
    """Fill the (empty, migrated) ledger of `url` with `entries` generated rows, then `extra`
    rows (ids from entries + 1 on), and their links."""
    with psycopg.connect(libpq_url(url)) as conn:
        conn.execute("ALTER TABLE ledger_entries DISABLE TRIGGER USER")
        with conn.cursor().copy(f"COPY ledger_entries ({', '.join(COLUMNS)}) FROM STDIN") as copy:
            for row in chain(rows(entries, customers, seed), extra):
                copy.write_row(row)
        # Placeholder hashes (unique, 64 characters): not a verifiable chain.
        conn.execute(
            """INSERT INTO ledger_chain (seq, entry_id, prev_hash, row_hash)
            SELECT n, id, lpad(to_hex(n - 1), 64, '0'), lpad(to_hex(n), 64, '0')
            FROM (SELECT id, row_number() OVER (ORDER BY id) AS n FROM ledger_entries) AS s"""
        )
        conn.execute("ALTER TABLE ledger_entries ENABLE TRIGGER USER")
        conn.execute(
            "SELECT setval(pg_get_serial_sequence('ledger_entries', 'id'), "
            "(SELECT max(id) FROM ledger_entries))"
        )
    with psycopg.connect(libpq_url(url), autocommit=True) as conn:
        conn.execute("VACUUM ANALYZE ledger_entries")
        conn.execute("VACUUM ANALYZE ledger_chain")
