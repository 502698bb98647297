"""The workspace's pure parts: number formatting, chart geometry, the rules document's anchors."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

from ingest.charts import Series, nice_step, stacked
from ingest.formatting import money_short, money_text, signed_change
from ingest.pages.rules import blocks, slug
from ledger.reporting.balances import MonthBalance
from ledger.reporting.customers import Row, history, subscriptions
from ledger.reporting.overview import headline
from ledger.rules.months import Month


def test_money_for_people() -> None:
    assert money_text(123456789, "usd") == "$1,234,567.89"
    assert money_text(-1250, "eur") == "-€12.50"
    assert money_text(5000, "jpy") == "¥5,000"
    assert money_text(1234567, "kwd") == "1,234.567 KWD"
    assert money_text(Decimal("91.67"), "usd", major=True) == "$91.67"
    assert (
        money_short(2_750_000, "usd") == "$27.5k" and money_short(-150_000_000, "usd") == "-$1.5M"
    )


def _balance(closing: int, delinquent: int, customers: int, churn: int) -> MonthBalance:
    return MonthBalance(
        Month.parse("2026-03"), "usd", 100_000, 0, 0, 0, 0, churn, 0, 0, closing,
        0, 0, 0, delinquent, 10, customers, 0,
    )  # fmt: skip


def test_each_headline_change_reads_as_better_or_worse_by_what_the_figure_means() -> None:
    before = _balance(closing=100_000, delinquent=1_000, customers=10, churn=-5_000)
    worse = _balance(closing=90_000, delinquent=4_000, customers=8, churn=-15_000)
    tones = {f.label: f.tone for f in headline(worse, before)}
    assert tones == {
        "MRR": "worse",
        "Delinquent MRR": "worse",  # it rose: more MRR waits on failed payments
        "Net new MRR": "worse",
        "Customers": "worse",
        "ARPU": "better",  # $900.00 over 8 customers is more each than $1,000.00 over 10
        "Net revenue retention": "worse",
    }
    recovering = {f.label: f.tone for f in headline(before, worse)}
    assert recovering["Delinquent MRR"] == "better" and recovering["MRR"] == "better"
    assert {f.tone for f in headline(before, before)} == {None}


def test_a_change_is_signed() -> None:
    assert signed_change(1_000, "money", "usd") == "+$10.00"
    assert signed_change(-1_000, "money", "usd") == "-$10.00"
    assert signed_change(Decimal("-1.5"), "arpu", "usd") == "-$1.50"
    assert signed_change(1_200, "count", "usd") == "+1,200"
    assert signed_change(Decimal("0.0125"), "ratio", "usd") == "+1.25 pts"


def test_bars_above_and_below_the_axis() -> None:
    chart = stacked(
        "t",
        ["2026-01", "2026-02"],
        [Series("New", "c-new", [1000, 0]), Series("Churn", "c-churn", [-500, -2000])],
        str,
        str,
    )
    new, churn1, churn2 = chart.bars
    assert new.y + new.height == chart.zero  # stands on the axis
    assert churn1.y == chart.zero and churn2.height > churn1.height > 0  # hangs below it
    assert abs(new.height - 2 * churn1.height) < 0.01  # heights proportional to amounts
    assert [t.text for t in chart.x_ticks] == ["2026-01", "2026-02"]
    assert nice_step(27_500) == 10_000 and nice_step(3) == 1


def test_rules_headings_get_github_anchors_and_code_stays_text() -> None:
    found = blocks(
        "# MRR rules\nintro\n## 3. Categories & signs\ntext\n```\n# not a heading\n```\n"
    )
    headings = [(b.heading_level, b.anchor) for b in found if b.heading_level]
    assert headings == [(1, "mrr-rules"), (2, "3-categories--signs")]
    assert "# not a heading" in found[-1].text
    assert slug("Delinquent MRR (past due)") == "delinquent-mrr-past-due"


def test_a_customers_history_and_subscriptions() -> None:
    def at(month: int) -> datetime:
        return datetime(2026, month, 3, tzinfo=UTC)

    rows = [
        Row("sub_1", "usd", "new", 5000, at(1)),
        Row("sub_1", "usd", "expansion", 5000, at(3)),
        Row("sub_1", "usd", "delinquent", -10000, at(4)),
        Row("sub_2", "usd", "new", 2000, at(4)),
    ]
    points = history(rows, "usd", Month.parse("2026-05"))
    assert [(str(p.month), p.active, p.delinquent) for p in points] == [
        ("2026-01", 5000, 0),
        ("2026-02", 5000, 0),
        ("2026-03", 10000, 0),
        ("2026-04", 2000, 10000),
        ("2026-05", 2000, 10000),
    ]
    lines = subscriptions(rows, at(5))
    assert [(s.subscription_id, s.standing, s.active, s.delinquent) for s in lines] == [
        ("sub_1", "delinquent", 0, 10000),
        ("sub_2", "active", 2000, 0),
    ]
