"""Segments, cohorts and customer months keyed by source (migration 0018): a test-mode event for
a live customer's id leaves every live view as it was, and the test-mode view shows it; one
account's views read only its rows, and without one every account adds up."""

from __future__ import annotations

import dataclasses
from typing import Any

from sqlalchemy import Engine, select

from ledger.processing import segments as segment_rebuild
from ledger.reporting import customer_months
from ledger.reporting import customers as listing
from ledger.reporting.cohorts import build_cohorts
from ledger.reporting.reports import ReportQuery
from ledger.reporting.segments import build_segments, segment_query
from ledger.rules.months import Month
from ledger.storage.schema import customer_months as months_table
from tests.ledger.test_segments import at, process, sub_event

FIRST, LAST = Month.parse("2026-01"), Month.parse("2026-03")


def _live(body: dict[str, Any]) -> dict[str, Any]:
    return {**body, "livemode": True}


def _views(engine: Engine, mode: str) -> dict[str, Any]:
    """What the Segments (by plan and by country), Cohorts and Customers views show in one mode."""
    livemode = mode == "live"
    asked = ReportQuery(FIRST, LAST, currency="usd", livemode=livemode)
    by_plan = build_segments(engine, segment_query(asked, "plan", []))
    by_country = build_segments(engine, segment_query(asked, "country", []))
    cohorts = build_cohorts(engine, str(FIRST), str(LAST), currency="usd", by="plan", mode=mode)
    with engine.begin() as conn:
        customer_months.catch_up(conn)
    with engine.connect() as conn:
        months = list(customer_months.monthly(conn, FIRST, LAST, "usd", livemode=livemode))
        top = customer_months.top(conn, LAST, "usd", livemode=livemode)
        lines = listing.listing(conn, LAST, livemode=livemode, limit=100).lines
        plans = listing.plans_at(conn, Month.parse("2026-02"), ["cus_a"], livemode=livemode)
    return {
        "plan": [(s, [(b.closing_mrr, b.customers) for b in m]) for s, m in by_plan.segments],
        "country": [(s, [b.closing_mrr for b in m]) for s, m in by_country.segments],
        "cohorts": [
            (c.segment, str(c.month), c.size, [(x.customers, x.mrr) for x in c.cells])
            for c in cohorts.cohorts
        ],
        "cohort_mode": cohorts.mode.name,
        "months": [(r.customer_id, str(r.month), r.active, r.plans) for r in months],
        "top": (top.customers, top.total_mrr),
        "lines": [(line.customer_id, line.active) for line in lines],
        "plans": plans,
    }


def _live_history(engine: Engine) -> None:
    process(
        engine,
        [
            _live(sub_event("evt_a1", "created", at(2026, 1, 5), "cus_a", "basic")),
            _live(sub_event("evt_b1", "created", at(2026, 1, 6), "cus_b", "pro")),
        ],
    )


def test_a_test_mode_event_for_a_live_customer_id_leaves_live_segments_unchanged(
    engine: Engine,
) -> None:
    _live_history(engine)
    live = _views(engine, "live")
    assert live["plan"] == [
        ("price_basic", [(5_000, 1)] * 3),
        ("price_pro", [(10_000, 1)] * 3),
    ]
    assert live["lines"] == [("cus_b", 10_000), ("cus_a", 5_000)]
    assert live["plans"] == {("cus_a", "usd"): ["price_basic"]}
    # The same customer id, in test mode, on another plan from February.
    process(engine, [sub_event("evt_t1", "created", at(2026, 2, 3), "cus_a", "enterprise")])
    assert _views(engine, "live") == live
    test = _views(engine, "test")
    assert test["plan"] == [("price_enterprise", [(0, 0), (20_000, 1), (20_000, 1)])]
    assert test["cohorts"] == [("price_enterprise", "2026-02", 1, [(1, 20_000), (1, 20_000)])]
    assert test["cohort_mode"] == "test"
    assert test["months"] == [
        ("cus_a", "2026-02", 20_000, ("price_enterprise",)),
        ("cus_a", "2026-03", 20_000, ("price_enterprise",)),
    ]
    assert test["top"] == ([("cus_a", 20_000)], 20_000)
    assert test["lines"] == [("cus_a", 20_000)]
    assert test["plans"] == {("cus_a", "usd"): ["price_enterprise"]}
    with engine.connect() as conn:
        c = months_table.c
        sources = set(conn.execute(select(c.customer_id, c.livemode).distinct()).all())
    assert sources == {("cus_a", True), ("cus_b", True), ("cus_a", False)}


def test_the_rebuild_keeps_each_mode_apart(engine: Engine) -> None:
    _live_history(engine)
    process(engine, [sub_event("evt_t1", "created", at(2026, 2, 3), "cus_a", "enterprise")])
    live, test = _views(engine, "live"), _views(engine, "test")
    with engine.begin() as conn:
        assert segment_rebuild.rebuild(conn) == 3  # cus_a live, cus_a test, cus_b live
    assert (_views(engine, "live"), _views(engine, "test")) == (live, test)


def test_without_live_data_the_views_show_test_mode(engine: Engine) -> None:
    process(engine, [sub_event("evt_t1", "created", at(2026, 2, 3), "cus_a", "enterprise")])
    asked = ReportQuery(FIRST, LAST, currency="usd")
    found = build_segments(engine, segment_query(asked, "plan", []))
    assert [s for s, _ in found.segments] == ["price_enterprise"]
    table = build_cohorts(engine, str(FIRST), str(LAST), currency="usd")
    assert table.mode.fell_back and [c.size for c in table.cohorts] == [1]


def _in(account: str, body: dict[str, Any]) -> dict[str, Any]:
    return {**_live(body), "account": account}


def test_one_account_reads_only_its_rows_and_every_account_adds_up(engine: Engine) -> None:
    # The same customer id in two accounts: two customers, neither overwriting the other.
    process(
        engine,
        [
            _in("acct_EU", sub_event("evt_e1", "created", at(2026, 1, 5), "cus_a", "basic")),
            _in("acct_US", sub_event("evt_u1", "created", at(2026, 2, 5), "cus_a", "pro")),
        ],
    )
    eu = ReportQuery(FIRST, LAST, currency="usd", livemode=True, account="acct_EU")
    found = build_segments(engine, segment_query(eu, "plan", []))
    assert [(s, [b.closing_mrr for b in m]) for s, m in found.segments] == [
        ("price_basic", [5_000] * 3)
    ]
    assert [b.closing_mrr for b in found.total.months] == [5_000] * 3
    both = build_segments(engine, segment_query(dataclasses.replace(eu, account=None), "plan", []))
    assert [(s, [b.closing_mrr for b in m]) for s, m in both.segments] == [
        ("price_basic", [5_000] * 3),
        ("price_pro", [0, 10_000, 10_000]),
    ]
    us_cohorts = build_cohorts(engine, str(FIRST), str(LAST), currency="usd", source="acct_US")
    assert [(str(c.month), c.size) for c in us_cohorts.cohorts] == [("2026-02", 1)]
    all_cohorts = build_cohorts(engine, str(FIRST), str(LAST), currency="usd")
    assert [(str(c.month), c.size) for c in all_cohorts.cohorts] == [("2026-01", 1), ("2026-02", 1)]
    with engine.begin() as conn:
        customer_months.catch_up(conn)
    with engine.connect() as conn:
        rows = list(customer_months.monthly(conn, FIRST, LAST, "usd", livemode=True))
        eu_rows = list(
            customer_months.monthly(conn, FIRST, LAST, "usd", livemode=True, account="acct_EU")
        )
        top = customer_months.top(conn, LAST, "usd", livemode=True)
    assert sorted((str(r.month), r.active, r.plans) for r in rows) == [
        ("2026-01", 5_000, ("price_basic",)),
        ("2026-02", 5_000, ("price_basic",)),
        ("2026-02", 10_000, ("price_pro",)),
        ("2026-03", 5_000, ("price_basic",)),
        ("2026-03", 10_000, ("price_pro",)),
    ]
    assert [(str(r.month), r.active) for r in eu_rows] == [
        ("2026-01", 5_000),
        ("2026-02", 5_000),
        ("2026-03", 5_000),
    ]
    assert top.total_mrr == 15_000 and top.total_customers == 2
