"""The demo's generated Stripe account (scripts/demo_data.py), read through the pure rules."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from collections import Counter, defaultdict
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from ledger.rules.entries import Category, DesiredEntry
from ledger.rules.events import EventRecord, customer_of, parse_event
from ledger.rules.months import Month
from ledger.rules.timeline import is_relevant, replay_customer
from scripts.demo_data import add_months, demo_events, first_month

JUNE_2026 = Month.parse("2026-06")
ROOT = Path(__file__).resolve().parents[2]
TYPES = {
    "customer.created",
    "customer.updated",
    "customer.subscription.created",
    "customer.subscription.updated",
    "customer.subscription.deleted",
    "customer.discount.created",
    "customer.discount.deleted",
    "invoice.paid",
    "invoice.payment_failed",
}


class NoReferences:
    """Nothing stored or fetched: every term must come from the demo's own events."""

    def get(self, kind: str, object_id: str) -> dict[str, Any] | None:
        return None


def replayed(bodies: list[dict[str, Any]]) -> tuple[list[DesiredEntry], dict[str, int]]:
    """Every customer's entries, and its active MRR after its last event."""
    by_customer: dict[str, list[EventRecord]] = defaultdict(list)
    for body in bodies:
        event = parse_event(body)
        by_customer[customer_of(event) or ""].append(event)
    entries: list[DesiredEntry] = []
    closing: dict[str, int] = {}
    for customer_id, events in by_customer.items():
        replay = replay_customer(customer_id, events, NoReferences())
        entries += replay.entries
        closing[customer_id] = sum(active for active, _ in replay.closing.values())
    return entries, closing


def test_the_same_final_month_and_seed_give_the_same_events_byte_for_byte() -> None:
    first = json.dumps(demo_events(JUNE_2026, seed=5))
    assert json.dumps(demo_events(JUNE_2026, seed=5)) == first
    assert json.dumps(demo_events(JUNE_2026, seed=6)) != first


def test_another_process_with_another_hash_seed_makes_the_same_bytes() -> None:
    program = (
        "import hashlib, json; from ledger.rules.months import Month; "
        "from scripts.demo_data import demo_events; "
        "print(hashlib.sha256(json.dumps(demo_events(Month.parse('2026-06'))).encode()).hexdigest())"
    )

    def digest(hash_seed: str) -> str:
        env = {**os.environ, "PYTHONHASHSEED": hash_seed}
        done = subprocess.run(
            [sys.executable, "-c", program], capture_output=True, text=True, env=env, cwd=ROOT
        )
        assert done.returncode == 0, done.stderr
        return done.stdout.strip()

    here = hashlib.sha256(json.dumps(demo_events(JUNE_2026)).encode()).hexdigest()
    assert digest("1") == digest("2") == here


def test_the_events_are_stripe_events_over_24_months_in_the_order_stripe_created_them() -> None:
    bodies = demo_events(JUNE_2026)
    events = [parse_event(body) for body in bodies]
    assert {e.type for e in events} == TYPES
    assert all(is_relevant(e.type) or e.type.startswith("customer.") for e in events)
    assert [e.sort_key for e in events] == sorted(e.sort_key for e in events)
    assert len({e.id for e in events}) == len(events)
    months = [Month.of(datetime.fromtimestamp(e.created, UTC)) for e in events]
    assert (months[0], months[-1]) == (Month.parse("2024-07"), JUNE_2026)
    assert {b["api_version"] for b in bodies} == {"2025-03-31.basil"}
    assert all(customer_of(e) is not None for e in events)


def test_every_customer_is_created_once_with_a_name_and_an_email() -> None:
    events = [parse_event(body) for body in demo_events(JUNE_2026)]
    created = [e.object for e in events if e.type == "customer.created"]
    assert sorted(c["id"] for c in created) == sorted({customer_of(e) for e in events})
    assert len({c["name"] for c in created}) == len(created)
    assert all("@" in c["email"] and c["email"].endswith(".example") for c in created)
    changed = [e for e in events if e.type == "customer.updated"]
    assert changed
    for event in changed:
        assert set(event.previous_attributes or {}) == {"email"}
        assert event.object["email"] != (event.previous_attributes or {})["email"]


@pytest.mark.parametrize(
    ("final", "seed"), [(JUNE_2026, 2024), (Month.parse("2026-02"), 1), (Month.parse("2025-12"), 9)]
)
def test_whatever_the_seed_the_final_month_is_the_worked_example(final: Month, seed: int) -> None:
    entries, closing = replayed(demo_events(final, seed))
    currency = {e.customer_id: e.currency for e in entries}
    usd = Counter(mrr for c, mrr in closing.items() if mrr and currency[c] == "usd")
    assert usd == {5_000: 150, 10_000: 100, 20_000: 50}
    assert sum(mrr * n for mrr, n in usd.items()) == 2_750_000
    eur = Counter(mrr for c, mrr in closing.items() if mrr and currency[c] == "eur")
    assert set(eur) == {4_500, 7_500, 9_000, 18_000}  # 7,500: the yearly Pro plan, a month of it
    assert {e.category for e in entries} == set(Category)
    months = {Month.of(e.effective_at) for e in entries}
    assert (min(months), max(months)) == (first_month(final), final)


def test_delinquency_recovers_or_ends_in_delinquent_churn_and_discounts_come_and_go() -> None:
    bodies = demo_events(JUNE_2026)
    entries, _ = replayed(bodies)
    by_customer: dict[str, list[Category]] = defaultdict(list)
    for entry in entries:
        by_customer[entry.customer_id].append(entry.category)
    outcomes: Counter[Category | None] = Counter()
    for categories in by_customer.values():
        for at, category in enumerate(categories):
            if category is Category.DELINQUENT:
                after = [c for c in categories[at + 1 :] if c is not Category.DELINQUENT_CHANGE]
                outcomes[after[0] if after else None] += 1
    assert set(outcomes) == {Category.RECOVERED, Category.DELINQUENT_CHURN, None}
    assert outcomes[None] == 2  # the two renewals still unpaid at the end

    source = {b["id"]: parse_event(b) for b in bodies}
    discount_moves = {
        (e.category, (source[e.source_event_id].previous_attributes or {}).get("discounts") == [])
        for e in entries
        if "discounts" in (source[e.source_event_id].previous_attributes or {})
    }
    assert discount_moves == {(Category.CONTRACTION, True), (Category.EXPANSION, False)}


def test_add_months_keeps_the_day_or_takes_the_last_day_of_a_shorter_month() -> None:
    jan_31 = int(datetime(2026, 1, 31, 9, 30, tzinfo=UTC).timestamp())
    assert add_months(jan_31, 1) == int(datetime(2026, 2, 28, 9, 30, tzinfo=UTC).timestamp())
    assert add_months(jan_31, 13) == int(datetime(2027, 2, 28, 9, 30, tzinfo=UTC).timestamp())
    assert add_months(jan_31, 0) == jan_31
