"""Monthly balances folded from postings: docs/mrr-rules.md §6.1, the worked example."""

from __future__ import annotations

import itertools
from collections import defaultdict
from decimal import Decimal

from hypothesis import given, settings
from hypothesis import strategies as st

from ledger.reporting.balances import (
    MonthBalance,
    Posting,
    Projection,
    balances,
    customer_changes,
    effects,
)
from ledger.reporting.metrics import metrics
from ledger.rules.entries import Category
from ledger.rules.months import Month
from tests.support.ledger import posting

JAN = Month.parse("2026-01")


def test_worked_example_300_customers() -> None:
    postings = [posting(f"cus_a{i}", "usd", "new", 5000, JAN.index) for i in range(150)]
    postings += [posting(f"cus_b{i}", "usd", "new", 10000, JAN.index) for i in range(100)]
    postings += [posting(f"cus_c{i}", "usd", "new", 20000, JAN.index) for i in range(50)]
    (jan,) = balances(Projection().add_all(postings).totals(), "usd", JAN, JAN)
    assert jan.closing_mrr == 2_750_000 and jan.new == 2_750_000
    assert jan.customers == 300
    assert jan.arpu == Decimal("91.67")


def test_months_without_activity_carry_balances_and_churn_is_counted() -> None:
    march = Month.parse("2026-03")
    postings = [
        posting("cus_1", "usd", "new", 10000, JAN.index),
        posting("cus_2", "usd", "new", 5000, JAN.index),
        posting("cus_2", "usd", "churn", -5000, march.index),
    ]
    jan, feb, mar = balances(Projection().add_all(postings).totals(), "usd", JAN, march)
    assert (feb.opening_mrr, feb.closing_mrr, feb.customers, feb.new) == (15000, 15000, 2, 0)
    assert (mar.churn, mar.closing_mrr, mar.opening_customers, mar.customers) == (
        -5000,
        10000,
        2,
        1,
    )
    assert mar.churned_customers == 1
    found = metrics(mar)
    assert found.customer_churn_rate == Decimal("0.5000")
    assert found.gross_mrr_churn_rate == Decimal("0.3333")
    assert found.net_revenue_retention == Decimal("0.6667")
    assert found.quick_ratio == Decimal("0.0000")
    assert found.ltv == Decimal("200.00")  # ARPU 100.00 / 0.5
    assert metrics(feb).ltv is None and metrics(jan).customer_churn_rate is None


def test_a_delinquent_customer_is_not_counted_nor_lost() -> None:
    feb = JAN.next()
    postings = [
        posting("cus_1", "usd", "new", 10000, JAN.index),
        posting("cus_1", "usd", "delinquent", -10000, feb.index),
    ]
    _jan_b, feb_b = balances(Projection().add_all(postings).totals(), "usd", JAN, feb)
    assert (feb_b.closing_mrr, feb_b.delinquent_mrr, feb_b.customers) == (0, 10000, 0)
    assert feb_b.churned_customers == 0


CUSTOMERS = [f"cus_{i}" for i in range(6)]
entry_strategy = st.tuples(
    st.sampled_from(CUSTOMERS),
    st.sampled_from(["usd", "eur"]),
    st.sampled_from([c.value for c in Category]),
    st.integers(-50_000, 50_000),
    st.integers(JAN.index, JAN.index + 7),
)


def _postings(raw: list[tuple[str, str, str, int, int]]) -> list[Posting]:
    return [posting(c, cur, cat, amount, m) for c, cur, cat, amount, m in raw]


def _check_identities(months: list[MonthBalance]) -> None:
    for before, after in itertools.pairwise(months):
        assert after.opening_mrr == before.closing_mrr
        assert after.opening_delinquent_mrr == before.delinquent_mrr
        assert after.opening_customers == before.customers
    for b in months:
        assert b.closing_mrr == (
            b.opening_mrr
            + b.new
            + b.reactivation
            + b.expansion
            + b.contraction
            + b.churn
            + b.delinquent
            + b.recovered
        )
        assert b.delinquent_mrr == (
            b.opening_delinquent_mrr
            - b.delinquent
            - b.recovered
            + b.delinquent_churn
            + b.delinquent_change
        )
        assert b.net_new_mrr == b.closing_mrr - b.opening_mrr


def _brute_force_customers(postings: list[Posting], currency: str, month: Month) -> int:
    active: dict[str, int] = defaultdict(int)
    for p in postings:
        if p.currency == currency and p.month <= month.index:
            active[p.customer_id] += effects(p.category, p.amount)[0]
    return sum(1 for total in active.values() if total > 0)


@settings(max_examples=200, deadline=None)
@given(st.lists(entry_strategy, max_size=60))
def test_identities_hold_in_every_month(raw: list[tuple[str, str, str, int, int]]) -> None:
    postings = sorted(_postings(raw), key=lambda p: p.month)
    totals = Projection().add_all(postings).totals()
    first, last = Month(JAN.index - 1), Month(JAN.index + 8)
    for currency in ("usd", "eur"):
        months = balances(totals, currency, first, last)
        _check_identities(months)
        for b in months:
            assert b.customers == _brute_force_customers(postings, currency, b.month)
            in_month = [p for p in postings if p.currency == currency and p.month <= b.month.index]
            assert b.closing_mrr == sum(effects(p.category, p.amount)[0] for p in in_month)
            assert b.delinquent_mrr == sum(effects(p.category, p.amount)[1] for p in in_month)
        # a report starting later opens with the same carried balances
        later = balances(totals, currency, Month(JAN.index + 3), last)
        assert later == months[4:]


@settings(max_examples=200, deadline=None)
@given(st.lists(entry_strategy, max_size=40), st.data())
def test_customer_counts_from_histories_equal_the_fold(
    raw: list[tuple[str, str, str, int, int]], data: st.DataObject
) -> None:
    """What the incremental projector does: per-customer diffs between two ledger prefixes."""
    postings = _postings(raw)
    cut = data.draw(st.integers(0, len(postings)))

    def counts(prefix: list[Posting]) -> dict[tuple[str, int], tuple[int, int]]:
        history: dict[tuple[str, str], dict[int, tuple[int, int]]] = defaultdict(dict)
        for p in prefix:
            a, d = effects(p.category, p.amount)
            old = history[(p.customer_id, p.currency)].get(p.month, (0, 0))
            history[(p.customer_id, p.currency)][p.month] = (old[0] + a, old[1] + d)
        found: dict[tuple[str, int], tuple[int, int]] = defaultdict(lambda: (0, 0))
        for (_customer, currency), months in history.items():
            for month, (change, lost) in customer_changes(months, currency).items():
                before = found[(currency, month)]
                found[(currency, month)] = (before[0] + change, before[1] + lost)
        return found

    incremental = dict(counts(postings[:cut]))
    after, before = counts(postings), counts(postings[:cut])
    for key in after.keys() | before.keys():
        delta = (after[key][0] - before[key][0], after[key][1] - before[key][1])
        old = incremental.get(key, (0, 0))
        incremental[key] = (old[0] + delta[0], old[1] + delta[1])
    folded = {
        (t.currency, t.month.index): (t.customers_change, t.customers_lost)
        for t in Projection().add_all(sorted(postings, key=lambda p: p.month)).totals()
    }
    nonzero = {k: v for k, v in incremental.items() if v != (0, 0)}
    assert nonzero == {k: v for k, v in folded.items() if v != (0, 0)}


def test_postings_out_of_month_order_are_refused() -> None:
    projection = Projection().add_all([posting("c", "usd", "new", 1, JAN.index + 1)])
    try:
        projection.add(posting("c", "usd", "new", 1, JAN.index))
    except ValueError as problem:
        assert "month order" in str(problem)
    else:
        raise AssertionError("expected a ValueError")


def test_months_parse_and_name_the_problem() -> None:
    assert str(Month.parse("2025-12").next()) == "2026-01"
    for bad, words in [("2025-13", "month 13"), ("2025-1", "YYYY-MM"), ("0000-01", "year")]:
        try:
            Month.parse(bad)
        except ValueError as problem:
            assert words in str(problem) and bad in str(problem)
        else:
            raise AssertionError(bad)
