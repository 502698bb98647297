"""docs/mrr-rules.md §10.2: no subscription or customer MRR, active or delinquent, below zero."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from ledger.rules.entries import Category, DesiredEntry
from ledger.rules.invariants import BrokenInvariant, check_balances
from ledger.rules.payloads import INT64_MAX
from ledger.rules.timeline import replay_customer
from tests.rules import builders as b

C = Category
T0 = 1_767_225_600


def entry(
    category: Category, amount: int, sub: str = "sub_1", currency: str = "usd"
) -> DesiredEntry:
    return DesiredEntry(
        customer_id="cus_1",
        subscription_id=sub,
        category=category,
        currency=currency,
        amount=amount,
        effective_at=datetime.fromtimestamp(T0, UTC),
        source_event_id=f"evt_{category.value}",
    )


def test_a_life_of_movements_keeps_every_balance_at_or_above_zero() -> None:
    check_balances(
        [
            entry(C.NEW, 5_000),
            entry(C.EXPANSION, 3_000, sub="sub_2"),
            entry(C.DELINQUENT, -5_000),
            entry(C.DELINQUENT_CHANGE, 1_000),
            entry(C.RECOVERED, 6_000),
            entry(C.CONTRACTION, -1_000),
            entry(C.CHURN, -5_000),
            entry(C.CHURN, -3_000, sub="sub_2"),
        ]
    )


@pytest.mark.parametrize(
    ("entries", "breach"),
    [
        ([entry(C.CONTRACTION, -25_000)], "subscription sub_1 with active MRR -25000"),
        (
            [entry(C.NEW, 5_000), entry(C.DELINQUENT, -5_000), entry(C.DELINQUENT_CHURN, -6_000)],
            "subscription sub_1 with active MRR 0 and delinquent MRR -1000",
        ),
        (
            [entry(C.NEW, 5_000), entry(C.CHURN, -5_000, currency="eur")],
            "customer cus_1 (eur) with active MRR -5000",  # balances are per currency
        ),
        ([entry(C.NEW, INT64_MAX), entry(C.EXPANSION, 1, sub="sub_2")], "customer cus_1 (usd)"),
    ],
)
def test_a_breach_names_the_event_and_the_balance(entries: list[DesiredEntry], breach: str) -> None:
    with pytest.raises(BrokenInvariant, match=r"from evt_\w+ would leave") as broken:
        check_balances(entries)
    assert breach in str(broken.value)


def negative_metered_history() -> list[dict[str, Any]]:
    """A metered item priced from a credit line of its price: the rules take the line at face
    value, so the subscription's MRR would fall below zero."""
    metered: dict[str, Any] = {"price": b.price(None, usage_type="metered", price_id="price_m")}
    credit = b.invoice_line("sub_1", -700, price_id="price_m", line_id="il_credit")
    return [
        b.subscription_event("created", "sub_1", "cus_1", T0, items=[metered], event_id="evt_1"),
        b.invoice_event("paid", "in_1", "cus_1", "sub_1", T0 + 5, lines=[credit], event_id="evt_2"),
    ]


def test_the_replay_refuses_entries_that_break_an_invariant() -> None:
    events = [b.record(e) for e in negative_metered_history()]
    with pytest.raises(BrokenInvariant, match="contraction -700 from evt_2 would leave"):
        replay_customer("cus_1", events, b.Refs())
