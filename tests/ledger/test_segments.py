"""Segments, cohorts and MRR per customer per month on SQLite and PostgreSQL, through the
workers' batch processing."""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Sequence
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import Engine, select

from ledger.processing import segments as segment_rebuild
from ledger.processing.apply import process_batch
from ledger.reporting import customer_months
from ledger.reporting.cohorts import build_cohorts
from ledger.reporting.reports import build_report, report_query
from ledger.reporting.segments import build_segments, segment_query
from ledger.rules.months import Month
from ledger.storage import inbox
from ledger.storage.schema import cohort_month_changes, segment_month_totals
from ledger.storage.schema import customer_months as months_table
from scripts import stripe_objects as so
from tests.support.histories import histories

DAY = 86_400
PLANS = {"basic": 5_000, "pro": 10_000, "enterprise": 20_000}


def at(year: int, month: int, day: int) -> int:
    return int(datetime(year, month, day, tzinfo=UTC).timestamp())


def sub_event(
    event_id: str,
    kind: str,
    created: int,
    customer: str,
    plan: str,
    *,
    sub_id: str | None = None,
    status: str = "active",
) -> dict[str, Any]:
    price = so.price(f"price_{plan}", PLANS[plan], "usd", "month", product=f"prod_{plan}")
    sub_id = sub_id or f"sub_{customer}"
    item = so.subscription_item(f"si_{sub_id}", sub_id, price, 1, (created, created + 30 * DAY))
    ended = created if kind.endswith(".deleted") else None
    obj = so.subscription(
        sub_id, customer, [item], status=status, currency="usd", created=created, ended_at=ended
    )
    return so.event(event_id, f"customer.subscription.{kind}", created, obj)


def failed_renewal(event_id: str, created: int, customer: str, plan: str) -> dict[str, Any]:
    price = so.price(f"price_{plan}", PLANS[plan], "usd", "month", product=f"prod_{plan}")
    sub_id = f"sub_{customer}"
    item = so.subscription_item(f"si_{sub_id}", sub_id, price, 1, (created, created + 30 * DAY))
    obj = so.invoice(
        f"in_{event_id}", f"il_{event_id}", item, customer_id=customer, created=created,
        billing_reason="subscription_cycle", amount_due=PLANS[plan], paid_at=None,
    )  # fmt: skip
    return so.event(event_id, "invoice.payment_failed", created, obj)


def customer_event(customer: str, created: int, country: str, tier: str) -> dict[str, Any]:
    obj = so.customer(customer, customer, f"{customer}@example.com", created)
    obj["address"] = {"country": country}
    obj["metadata"] = {"tier": tier}
    return so.event(f"evt_{customer}_created", "customer.created", created, obj)


def process(engine: Engine, bodies: Sequence[dict[str, Any]]) -> None:
    with engine.begin() as conn:
        stored = inbox.store_events(conn, [(json.dumps(b), b) for b in bodies])
    process_batch(engine, [s.inbox_id for s in stored], max_attempts=4)


def article_events() -> list[dict[str, Any]]:
    """150 customers on Basic at 50.00, 100 on Pro at 100.00, 50 on Enterprise at 200.00."""
    bodies = []
    plans = ["basic"] * 150 + ["pro"] * 100 + ["enterprise"] * 50
    for n, plan in enumerate(plans):
        customer = f"cus_{n:03d}"
        created = at(2026, 10, 1) + n * 600
        bodies.append(customer_event(customer, created, "DE" if n % 3 else "US", plan))
        bodies.append(sub_event(f"evt_{n}", "created", created, customer, plan))
    return bodies


def article(engine: Engine) -> None:
    process(engine, article_events())


def by(engine: Engine, dimension: str, *where: str) -> dict[str, dict[str, Any]]:
    query = segment_query(report_query("2026-10", "2026-10"), dimension, where)
    found = build_segments(engine, query)
    return {
        name: {
            "closing": months[0].closing_mrr,
            "customers": months[0].customers,
            "arpu": months[0].arpu,
            "new": months[0].new,
        }
        for name, months in found.segments
    }


def test_the_articles_example_by_plan_product_and_attribute(engine: Engine) -> None:
    article(engine)
    total = build_report(engine, report_query("2026-10", "2026-10")).main.months[0]
    assert (total.closing_mrr, total.customers, total.arpu) == (2_750_000, 300, Decimal("91.67"))
    plans = by(engine, "plan")
    assert plans == {
        "price_basic": {"closing": 750_000, "customers": 150, "arpu": Decimal("50.00"),
                        "new": 750_000},
        "price_enterprise": {"closing": 1_000_000, "customers": 50, "arpu": Decimal("200.00"),
                             "new": 1_000_000},
        "price_pro": {"closing": 1_000_000, "customers": 100, "arpu": Decimal("100.00"),
                      "new": 1_000_000},
    }  # fmt: skip
    assert {k: v["closing"] for k, v in by(engine, "product").items()} == {
        "prod_basic": 750_000,
        "prod_enterprise": 1_000_000,
        "prod_pro": 1_000_000,
    }
    assert by(engine, "interval")["month"]["closing"] == 2_750_000
    assert by(engine, "plan", "plan=price_pro") == {"price_pro": plans["price_pro"]}
    countries = by(engine, "country")
    assert {k: v["customers"] for k, v in countries.items()} == {"DE": 200, "US": 100}
    assert sum(v["closing"] for v in countries.values()) == 2_750_000
    tiers = by(engine, "metadata.tier")
    assert {k: v["closing"] for k, v in tiers.items()} == {
        "basic": 750_000,
        "enterprise": 1_000_000,
        "pro": 1_000_000,
    }


def test_a_plan_switch_is_expansion_in_the_total_and_churn_and_new_across_plans(
    engine: Engine,
) -> None:
    process(
        engine,
        [
            sub_event("evt_1", "created", at(2026, 1, 5), "cus_1", "basic"),
            sub_event("evt_2", "updated", at(2026, 2, 5), "cus_1", "pro"),
        ],
    )
    query = segment_query(report_query("2026-02", "2026-02"), "plan", [])
    found = build_segments(engine, query)
    february = found.total.months[0]
    assert (february.expansion, february.new, february.churn) == (5_000, 0, 0)
    plans = {name: months[0] for name, months in found.segments}
    assert (plans["price_basic"].churn, plans["price_basic"].closing_mrr) == (-5_000, 0)
    assert (plans["price_pro"].new, plans["price_pro"].closing_mrr) == (10_000, 10_000)
    assert found.sums == [(Month.parse("2026-02"), 10_000, 0, 1)]
    assert "Movements do not add up" in found.note


def test_a_cohort_table_on_a_hand_built_history(engine: Engine) -> None:
    # January: A (basic) and B (pro) start; February: C (basic) starts, A upgrades to pro;
    # March: B's subscription ends; April: C's renewal fails.
    process(
        engine,
        [
            sub_event("evt_a1", "created", at(2026, 1, 5), "cus_a", "basic"),
            sub_event("evt_b1", "created", at(2026, 1, 6), "cus_b", "pro"),
            sub_event("evt_c1", "created", at(2026, 2, 3), "cus_c", "basic"),
            sub_event("evt_a2", "updated", at(2026, 2, 10), "cus_a", "pro"),
            sub_event("evt_b2", "deleted", at(2026, 3, 8), "cus_b", "pro", status="canceled"),
            failed_renewal("evt_c2", at(2026, 4, 3), "cus_c", "basic"),
        ],
    )
    table = build_cohorts(engine, "2026-01", "2026-04", metric="mrr")
    assert table.currency == "usd"
    january, february = table.cohorts
    assert (january.month, january.size, january.starting_mrr) == (
        Month.parse("2026-01"),
        2,
        15_000,
    )
    assert [(c.customers, c.delinquent, c.mrr) for c in january.cells] == [
        (2, 0, 15_000),
        (2, 0, 20_000),
        (1, 0, 10_000),
        (1, 0, 10_000),
    ]
    assert [c.mrr_share for c in january.cells] == [
        Decimal("1.0000"),
        Decimal("1.3333"),
        Decimal("0.6667"),
        Decimal("0.6667"),
    ]
    assert [c.customers_share for c in january.cells][2] == Decimal("0.5000")
    assert (february.size, february.starting_mrr) == (1, 5_000)
    assert [(c.customers, c.delinquent, c.mrr) for c in february.cells] == [
        (1, 0, 5_000),
        (1, 0, 5_000),
        (0, 1, 0),
    ]
    plans = build_cohorts(engine, "2026-01", "2026-04", by="plan")
    firsts = {(c.segment, str(c.month)): c.size for c in plans.cohorts}
    assert firsts == {
        ("price_basic", "2026-01"): 1,
        ("price_pro", "2026-01"): 1,
        ("price_basic", "2026-02"): 1,
        ("price_pro", "2026-02"): 1,
    }


def test_per_customer_months_add_up_to_the_report_every_month(engine: Engine) -> None:
    bodies = histories(1_200, 60, seed=11)
    process(engine, bodies[:700])
    with engine.begin() as conn:
        customer_months.catch_up(conn)
    process(engine, bodies[700:])  # incremental from here on
    with engine.begin() as conn:
        customer_months.catch_up(conn)
    months = {Month.of(datetime.fromtimestamp(b["created"], UTC)) for b in bodies}
    first, last = min(months), max(months)
    for currency in _currencies(engine):
        report = build_report(engine, report_query(str(first), str(last), currency=currency))
        active: dict[Month, int] = defaultdict(int)
        delinquent: dict[Month, int] = defaultdict(int)
        with engine.connect() as conn:
            for row in customer_months.monthly(
                conn, first, last, currency, livemode=report.mode.livemode
            ):
                active[row.month] += row.active
                delinquent[row.month] += row.delinquent
        for b in report.main.months:
            assert (active[b.month], delinquent[b.month]) == (b.closing_mrr, b.delinquent_mrr)
        for dimension in ("plan", "product", "interval"):
            query = segment_query(
                report_query(str(first), str(last), currency=currency), dimension, []
            )
            found = build_segments(engine, query)
            for (month, closing, owing, customers), b in zip(
                found.sums, report.main.months, strict=True
            ):
                assert (closing, owing) == (b.closing_mrr, b.delinquent_mrr), (dimension, month)
                assert customers >= b.customers
    # A rebuild from the events gives the rows and totals the processing kept.
    kept = _segments(engine)
    with engine.begin() as conn:
        segment_rebuild.rebuild(conn)
    assert _segments(engine) == kept
    with engine.begin() as conn:
        customer_months.replay(conn)
    assert _segments(engine) == kept
    # The cohort table read from the stored changes is the one the rows themselves give.
    table = build_cohorts(engine, str(first), str(last), currency="usd", metric="mrr")
    by_country = build_cohorts(engine, str(first), str(last), currency="usd", by="country")
    assert [(c.month, c.size, [(x.customers, x.delinquent, x.mrr) for x in c.cells])
            for c in table.cohorts] == [
        (c.month, c.size, [(x.customers, x.delinquent, x.mrr) for x in c.cells])
        for c in by_country.cohorts
    ]  # fmt: skip


def _currencies(engine: Engine) -> list[str]:
    with engine.connect() as conn:
        return sorted(
            {str(c) for c in conn.execute(select(months_table.c.currency).distinct()).scalars()}
        )


def _segments(engine: Engine) -> tuple[list[Any], list[Any], list[Any]]:
    with engine.connect() as conn:
        rows = conn.execute(select(months_table).order_by(*months_table.primary_key)).all()
        totals = conn.execute(
            select(segment_month_totals).order_by(*segment_month_totals.primary_key)
        ).all()
        cohorts = conn.execute(
            select(cohort_month_changes).order_by(*cohort_month_changes.primary_key)
        ).all()
    return rows, [t for t in totals if any(t[4:])], [c for c in cohorts if any(c[5:])]
