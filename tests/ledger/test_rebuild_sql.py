"""The projector's SQL rebuild equals the pure fold (reporting/balances.py) on a random ledger."""

from __future__ import annotations

import random
from collections import Counter
from datetime import UTC, datetime, timedelta

from sqlalchemy import Engine, select, text

from ledger.reporting import projector
from ledger.reporting.balances import Posting, Projection
from ledger.rules.entries import Category, DesiredEntry
from ledger.rules.months import month_index
from ledger.rules.sources import Unit
from ledger.storage import store
from ledger.storage.schema import MOVEMENT_COLUMNS, mrr_month_totals
from tests.support.ledger import all_entries

FOLDED_COLUMNS = ("currency", "month", *MOVEMENT_COLUMNS, "customers_change", "customers_lost")
START = datetime(2025, 11, 3, tzinfo=UTC)


def test_rebuild_equals_the_fold_with_odd_balances(engine: Engine) -> None:
    rng = random.Random(5)
    by_customer: dict[str, list[DesiredEntry]] = {}
    for n in range(160):
        customer = f"cus_{rng.randrange(25)}"
        by_customer.setdefault(customer, []).append(
            DesiredEntry(
                customer,
                "sub_1",
                rng.choice(list(Category)),
                rng.choice(["usd", "usd", "eur"]),
                rng.randrange(-5000, 9000),  # balances may go negative: the fold allows it
                START + timedelta(days=rng.randrange(0, 240), seconds=rng.randrange(86_400)),
                f"evt_{n}",
            )
        )
    for customer, desired in by_customer.items():
        with engine.begin() as conn:
            store.apply(
                conn,
                [store.DesiredLedger(Unit(customer, "", False), desired, f"evt_cause_{customer}")],
            )
    if engine.dialect.name == "postgresql":
        with engine.begin() as conn:
            conn.execute(text("ANALYZE ledger_entries"))
            # Statistics exist, so the rebuild runs over several customer ranges at once.
            assert projector._customer_splits(conn, projector.REBUILD_PARTS)
    with engine.begin() as conn:
        assert projector.replay(conn) == 160
    with engine.connect() as conn:
        stored_rows = conn.execute(select(mrr_month_totals)).mappings().all()
        stored = [tuple(r[c] for c in FOLDED_COLUMNS) for r in stored_rows]
        counted = {
            (r["currency"], r["month"], c.value): r[f"{c.value}_entries"]
            for r in stored_rows
            for c in Category
            if r[f"{c.value}_entries"]
        }
        ledger_counts = Counter(
            (e.currency, e.effective_at.strftime("%Y-%m"), e.category.value)
            for e in all_entries(conn)
        )
        rows = projector.in_effective_order(conn, projector.entry_columns())
        folded = (
            Projection()
            .add_all(
                Posting(c, cur, kind, amount, month_index(at), cur, amount)
                for c, cur, kind, amount, at in rows
            )
            .totals()
        )
    expected = [
        (t.currency, str(t.month), *t.movements, t.customers_change, t.customers_lost)
        for t in folded
    ]
    assert sorted(stored) == sorted(expected)
    assert counted == dict(ledger_counts)
    assert any(t.customers_lost for t in folded) and any(t.customers_change < 0 for t in folded)
