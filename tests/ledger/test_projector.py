"""The projector on SQLite and PostgreSQL: incremental equals replay, as-of, reporting currency."""

from __future__ import annotations

import random
import time
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from sqlalchemy import Engine, select

from ledger.reporting import fx, projector, queries
from ledger.reporting.balances import MonthTotals
from ledger.reporting.reports import BadInput, build_report, report_query
from ledger.rules.entries import Category, DesiredEntry
from ledger.rules.months import Month
from ledger.rules.sources import Unit
from ledger.storage import store
from ledger.storage.schema import mrr_month_totals
from tests.support.ledger import all_entries

JAN = datetime(2026, 1, 10, tzinfo=UTC)


def entry(
    customer: str,
    category: Category,
    amount: int,
    at: datetime,
    *,
    sub: str = "sub_1",
    currency: str = "usd",
    event: str = "evt_1",
) -> DesiredEntry:
    return DesiredEntry(customer, sub, category, currency, amount, at, event, {"test": True})


def put(engine: Engine, customer: str, desired: list[DesiredEntry], cause: str) -> None:
    with engine.begin() as conn:
        store.apply(conn, [store.DesiredLedger(Unit(customer, "", False), desired, cause)])


def catch_up(engine: Engine) -> int:
    with engine.begin() as conn:
        return projector.catch_up(conn)


def stored(engine: Engine) -> list[tuple[object, ...]]:
    with engine.connect() as conn:
        rows = conn.execute(
            select(mrr_month_totals).order_by(mrr_month_totals.c.currency, mrr_month_totals.c.month)
        ).all()
    return [tuple(r) for r in rows if any(r[2:])]


def replayed(engine: Engine) -> list[tuple[object, ...]]:
    with engine.begin() as conn:
        projector.replay(conn)
    return stored(engine)


def months(engine: Engine, first: str, last: str, **kwargs: str) -> list[dict[str, object]]:
    from ledger.reporting.exports import month_fields

    report = build_report(engine, report_query(first, last, **kwargs))
    return [month_fields(b) for b in report.main.months]


def test_incremental_equals_replay_after_reversals_in_past_months(engine: Engine) -> None:
    feb, mar = JAN + timedelta(days=31), JAN + timedelta(days=60)
    put(engine, "cus_1", [entry("cus_1", Category.NEW, 10000, JAN)], "evt_1")
    put(engine, "cus_2", [entry("cus_2", Category.NEW, 5000, JAN, event="evt_2")], "evt_2")
    assert catch_up(engine) == 2
    assert catch_up(engine) == 0
    put(
        engine,
        "cus_2",
        [
            entry("cus_2", Category.NEW, 5000, JAN, event="evt_2"),
            entry("cus_2", Category.CHURN, -5000, mar, event="evt_3"),
        ],
        "evt_3",
    )
    catch_up(engine)
    # a late event changes what January was: reversal + new entry, both effective in January
    put(
        engine,
        "cus_2",
        [
            entry("cus_2", Category.NEW, 7000, JAN, event="evt_2"),
            entry("cus_2", Category.CHURN, -7000, feb, event="evt_3"),
        ],
        "evt_late",
    )
    # and a customer who churns in January, counted only from the correction on
    put(engine, "cus_3", [entry("cus_3", Category.NEW, 100, feb, event="evt_4")], "evt_4")
    assert catch_up(engine) == 5
    incremental = stored(engine)
    assert incremental == replayed(engine)
    jan, feb_m, mar_m = months(engine, "2026-01", "2026-03")
    assert (jan["closing_mrr"], jan["customers"], jan["new"]) == ("170.00", 2, "170.00")
    assert (feb_m["churn"], feb_m["closing_mrr"], feb_m["customers"]) == ("-70.00", "101.00", 2)
    assert (mar_m["churn"], mar_m["customers"], mar_m["customer_churn_rate"]) == (
        "0.00",
        2,
        "0.0000",
    )
    assert feb_m["customer_churn_rate"] == "0.5000"


@pytest.mark.parametrize("seed", [1, 2])
def test_incremental_equals_replay_on_a_random_history(engine: Engine, seed: int) -> None:
    rng = random.Random(seed)
    desired: dict[str, list[DesiredEntry]] = {}
    categories = list(Category)
    for step in range(14):
        customer = f"cus_{rng.randrange(4)}"
        current = desired.setdefault(customer, [])
        if current and rng.random() < 0.4:
            # rewrite a past entry: the store reverses it and appends its replacement
            index = rng.randrange(len(current))
            old = current[index]
            current[index] = entry(
                customer,
                old.category,
                old.amount + rng.randrange(-300, 300),
                old.effective_at,
                event=old.source_event_id,
            )
        else:
            at = JAN + timedelta(days=rng.randrange(0, 150))
            current.append(
                entry(
                    customer,
                    rng.choice(categories),
                    rng.randrange(-9000, 9000),
                    at,
                    currency=rng.choice(["usd", "usd", "eur"]),
                    event=f"evt_{step}",
                )
            )
        put(engine, customer, list(current), f"evt_cause_{step}")
        if rng.random() < 0.5:
            catch_up(engine)
    catch_up(engine)
    assert stored(engine) == replayed(engine)
    # and the stored report equals one computed straight from the ledger
    far = (datetime.now(UTC) + timedelta(days=1)).isoformat()
    for currency in ("usd", "eur"):
        assert months(engine, "2025-12", "2026-07", currency=currency) == months(
            engine, "2025-12", "2026-07", currency=currency, as_of=far
        )


def _entry_totals_equal_the_ledger(engine: Engine) -> None:
    with engine.connect() as conn:
        months_held = {e.effective_at.strftime("%Y-%m") for e in all_entries(conn)}
        filters = [
            queries.LedgerFilter(month=month, category=category, currency=currency)
            for month in [None, *(Month.parse(m) for m in sorted(months_held))]
            for category in [None, *Category]
            for currency in [None, "usd", "eur", "gbp"]
        ]
        for f in filters:
            stored_figures = projector.entry_totals(
                conn, month=f.month, category=f.category, currency=f.currency
            )
            assert stored_figures == queries.totals(conn, f), f


def test_stored_entry_counts_equal_the_ledgers_incrementally_and_rebuilt(engine: Engine) -> None:
    rng = random.Random(3)
    desired: dict[str, list[DesiredEntry]] = {}
    for step in range(40):
        customer = f"cus_{rng.randrange(5)}"
        current = desired.setdefault(customer, [])
        if current and rng.random() < 0.3:  # a correction: a reversal and its replacement
            index = rng.randrange(len(current))
            old = current[index]
            current[index] = entry(
                customer, old.category, old.amount + 1, old.effective_at,
                currency=old.currency, event=old.source_event_id,
            )  # fmt: skip
        else:
            current.append(
                entry(
                    customer,
                    rng.choice(list(Category)),
                    rng.randrange(-9000, 9000),
                    JAN + timedelta(days=rng.randrange(0, 120)),
                    currency=rng.choice(["usd", "usd", "eur"]),
                    event=f"evt_{step}",
                )
            )
        put(engine, customer, list(current), f"evt_cause_{step}")
        if rng.random() < 0.3:
            catch_up(engine)
    catch_up(engine)
    _entry_totals_equal_the_ledger(engine)
    replayed(engine)
    _entry_totals_equal_the_ledger(engine)
    with engine.connect() as conn:
        assert projector.entry_totals(conn, currency="gbp") == (0, {})


def test_as_of_reproduces_a_closed_month_after_a_late_correction(engine: Engine) -> None:
    put(engine, "cus_1", [entry("cus_1", Category.NEW, 10000, JAN)], "evt_1")
    closed = months(engine, "2026-01", "2026-01")
    time.sleep(0.01)
    closed_at = datetime.now(UTC)
    time.sleep(0.01)
    put(engine, "cus_1", [entry("cus_1", Category.NEW, 12000, JAN)], "evt_fix")
    (now,) = months(engine, "2026-01", "2026-01")
    assert now["closing_mrr"] == "120.00"
    assert months(engine, "2026-01", "2026-01", as_of=closed_at.isoformat()) == closed
    assert closed[0]["closing_mrr"] == "100.00"


def test_a_reporting_currency_converts_each_entry_and_keeps_unrated_ones_apart(
    engine: Engine,
) -> None:
    put(engine, "cus_u", [entry("cus_u", Category.NEW, 10000, JAN)], "e1")
    put(engine, "cus_e", [entry("cus_e", Category.NEW, 3333, JAN, currency="eur")], "e2")
    put(engine, "cus_s", [entry("cus_s", Category.NEW, 50000, JAN, currency="sek")], "e3")
    later = JAN + timedelta(days=40)
    put(
        engine,
        "cus_e",
        [
            entry("cus_e", Category.NEW, 3333, JAN, currency="eur"),
            entry("cus_e", Category.EXPANSION, 1000, later, currency="eur", event="e4"),
        ],
        "e4",
    )
    rates = fx.parse_rates(["date,currency,rate", "2026-01-01,eur,1.5", "2026-02-01,EUR,1.25"])
    with engine.begin() as conn:
        assert fx.store_rates(conn, rates) == 2
    report = build_report(engine, report_query("2026-01", "2026-02", reporting_currency="USD"))
    jan, feb = report.main.months
    # 33.33 EUR x 1.5 = 49.995 -> 50.00 (half-even on 4999.5 minor units); 10.00 EUR x 1.25
    assert (report.main.currency, jan.new, jan.customers) == ("usd", 10000 + 5000, 2)
    assert (feb.expansion, feb.closing_mrr) == (1250, 16250)
    (sek,) = report.unconverted
    assert sek.currency == "sek" and sek.months[0].closing_mrr == 50000
    assert len(report.warnings) == 1 and "sek" in report.warnings[0]


def test_several_currencies_need_a_choice(engine: Engine) -> None:
    put(engine, "cus_u", [entry("cus_u", Category.NEW, 10000, JAN)], "e1")
    put(engine, "cus_e", [entry("cus_e", Category.NEW, 3333, JAN, currency="eur")], "e2")
    with pytest.raises(BadInput, match=r"several currencies \(eur, usd\)"):
        build_report(engine, report_query("2026-01", "2026-01"))
    (eur,) = months(engine, "2026-01", "2026-01", currency="EUR")
    assert eur["closing_mrr"] == "33.33"


def test_stored_totals_read_back(engine: Engine) -> None:
    put(engine, "cus_1", [entry("cus_1", Category.NEW, 10000, JAN)], "evt_1")
    catch_up(engine)
    with engine.connect() as conn:
        (found,) = projector.stored_totals(conn, "usd", Month.parse("2026-12"), False)
        assert projector.checkpoint(conn) > 0
    assert found == MonthTotals("usd", Month.parse("2026-01"), (10000,) + (0,) * 8, 1, 0)
    assert Decimal(months(engine, "2026-01", "2026-01")[0]["arpu"]) == Decimal("100.00")


def test_rows_still_in_flight_are_read_later_not_skipped(engine: Engine) -> None:
    """PostgreSQL: the projector reads in hash-chain order, whose committed links are always a
    prefix; it neither waits for in-flight writers nor skips what they commit later."""
    if engine.dialect.name != "postgresql":
        pytest.skip("SQLite serializes writers: nothing is ever in flight beside a reader")
    import threading

    slow = engine.connect()
    slow_tx = slow.begin()
    store.apply(
        slow,
        [
            store.DesiredLedger(
                Unit("cus_slow", "", False), [entry("cus_slow", Category.NEW, 700, JAN)], "evt_slow"
            )
        ],
    )
    fast = threading.Thread(
        target=lambda: put(
            engine, "cus_fast", [entry("cus_fast", Category.NEW, 300, JAN, event="e2")], "e2"
        )
    )
    fast.start()
    fast.join(timeout=0.5)
    assert fast.is_alive(), "chain writers are serialized: the second waits for the first"
    assert catch_up(engine) == 0
    slow_tx.commit()
    slow.close()
    fast.join(timeout=30)
    assert catch_up(engine) == 2
    (jan,) = months(engine, "2026-01", "2026-01")
    assert (jan["closing_mrr"], jan["customers"]) == ("10.00", 2)
