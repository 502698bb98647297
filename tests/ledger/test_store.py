"""The ledger store contract, on SQLite and PostgreSQL alike."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from sqlalchemy import Engine, text
from sqlalchemy.exc import DBAPIError

from ledger.rules.entries import Category, DesiredEntry
from ledger.rules.sources import Unit
from ledger.storage import store
from tests.support.ledger import all_entries

T0 = datetime(2026, 1, 15, tzinfo=UTC)


def entry(
    amount: int, category: Category = Category.NEW, event: str = "evt_1", customer: str = "cus_1"
) -> DesiredEntry:
    return DesiredEntry(customer, "sub_1", category, "usd", amount, T0, event, {"why": "test"})


def test_apply_appends_what_is_missing_once(engine: Engine) -> None:
    with engine.begin() as conn:
        first = store.apply(
            conn, [store.DesiredLedger(Unit("cus_1", "", False), [entry(5000)], "evt_1")]
        )
    with engine.begin() as conn:
        again = store.apply(
            conn, [store.DesiredLedger(Unit("cus_1", "", False), [entry(5000)], "evt_1")]
        )
        rows = all_entries(conn)
    assert (first.appended, first.reversed) == (1, 0)
    assert (again.appended, again.reversed) == (0, 0)
    assert [(r.amount, r.category, r.source_event_id) for r in rows] == [
        (5000, Category.NEW, "evt_1")
    ]
    assert rows[0].effective_at == T0


def test_a_changed_derivation_is_a_reversal_plus_a_new_entry(engine: Engine) -> None:
    with engine.begin() as conn:
        store.apply(conn, [store.DesiredLedger(Unit("cus_1", "", False), [entry(5000)], "evt_1")])
    with engine.begin() as conn:
        result = store.apply(
            conn, [store.DesiredLedger(Unit("cus_1", "", False), [entry(7000)], "evt_late")]
        )
        rows = all_entries(conn)
        effective = store.in_effect(conn, ["cus_1"])
    assert (result.appended, result.reversed) == (1, 1)
    original, reversal, replacement = rows
    assert reversal.reversal_of == original.id and reversal.amount == -5000
    assert reversal.effective_at == original.effective_at
    assert reversal.cause_event_id == "evt_late" and replacement.cause_event_id == "evt_late"
    assert [e.amount for e in effective] == [7000]
    assert sum(r.amount for r in rows) == 7000


def test_identical_entries_are_counted_as_a_multiset(engine: Engine) -> None:
    twice = [entry(100, Category.EXPANSION), entry(100, Category.EXPANSION)]
    with engine.begin() as conn:
        store.apply(conn, [store.DesiredLedger(Unit("cus_1", "", False), twice, "evt_1")])
        store.apply(conn, [store.DesiredLedger(Unit("cus_1", "", False), twice[:1], "evt_2")])
        assert [e.amount for e in store.in_effect(conn, ["cus_1"])] == [100]


def test_one_call_for_several_customers_does_what_one_call_each_does(engine: Engine) -> None:
    def desired(customer: str, amount: int, cause: str) -> store.DesiredLedger:
        return store.DesiredLedger(
            Unit(customer, "", False), [entry(amount, customer=customer)], cause
        )

    with engine.begin() as conn:
        store.apply(conn, [desired("cus_1", 5000, "evt_1"), desired("cus_2", 900, "evt_2")])
        both = store.apply(
            conn,
            [
                desired("cus_1", 7000, "evt_3"),
                desired("cus_2", 900, "evt_4"),
                desired("cus_3", 1, "evt_5"),
            ],
        )
        by_customer = {c: store.in_effect(conn, [c]) for c in ("cus_1", "cus_2", "cus_3")}
        chosen = store.in_effect(conn, ["cus_1", "cus_3"])
        everyone = store.in_effect(conn)
        nobody = store.in_effect(conn, [])
    assert (both.appended, both.reversed) == (2, 1)
    assert {c: [(e.amount, e.cause_event_id) for e in es] for c, es in by_customer.items()} == {
        "cus_1": [(7000, "evt_3")],
        "cus_2": [(900, "evt_2")],
        "cus_3": [(1, "evt_5")],
    }
    assert chosen == by_customer["cus_1"] + by_customer["cus_3"]
    assert (
        sorted(everyone, key=lambda e: e.id)
        == everyone
        == sorted(chosen + by_customer["cus_2"], key=lambda e: e.id)
    )
    assert nobody == []


@pytest.mark.parametrize(
    "statement",
    [
        "UPDATE ledger_entries SET amount = 1",
        "DELETE FROM ledger_entries WHERE id = 1",
        "DELETE FROM ledger_entries",
        "TRUNCATE ledger_entries",
    ],
)
def test_the_database_refuses_to_change_ledger_rows(engine: Engine, statement: str) -> None:
    if statement.startswith("TRUNCATE") and engine.dialect.name == "sqlite":
        pytest.skip("SQLite has no TRUNCATE; its equivalent is the unqualified DELETE")
    with engine.begin() as conn:
        store.apply(conn, [store.DesiredLedger(Unit("cus_1", "", False), [entry(5000)], "evt_1")])
    with pytest.raises(DBAPIError, match="append-only"), engine.begin() as conn:
        conn.execute(text(statement))
    with engine.connect() as conn:
        assert [e.amount for e in all_entries(conn)] == [5000]


def test_reference_objects_keep_the_newest_version(engine: Engine) -> None:
    with engine.begin() as conn:
        assert store.put_reference(conn, "coupon", "co_1", {"percent_off": 50}, 20, "evt_b")
        assert not store.put_reference(conn, "coupon", "co_1", {"percent_off": 10}, 10, "evt_a")
        assert store.get_reference(conn, "coupon", "co_1") == {"percent_off": 50}
        store.record_dependencies(conn, "cus_1", [("coupon", "co_1")])
        store.record_dependencies(conn, "cus_1", [("coupon", "co_1")])
        assert store.dependents(conn, "coupon", "co_1") == ["cus_1"]
