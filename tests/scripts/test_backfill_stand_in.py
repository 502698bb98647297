"""The backfill alone on a generated account served as Stripe's API (tests/support/stand_in.py):
the present exactly as the subscriptions say, the past as the objects can tell it."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

import pytest
import responses
from sqlalchemy import Engine

from ledger.reporting.balances import effects
from ledger.reporting.explain import explain, render
from ledger.rules.entries import DesiredEntry
from ledger.rules.events import customer_of, parse_event
from ledger.rules.timeline import replay_customer
from ledger.settings import Settings
from ledger.storage.store import StoredEntry
from tests.scripts.test_backfill import (
    backfill,
    counts,
    fake,
    ingest_webhooks,
    monthly,
    rsps,
    stripe_settings,
    truth,
)
from tests.support.fake_stripe import Account, make_account
from tests.support.ledger import all_entries
from tests.support.stand_in import NOW, StandIn, make_stand_in

__all__ = ["rsps", "stripe_settings"]  # fixtures shared with test_backfill

Entry = DesiredEntry | StoredEntry
MonthEnd = dict[tuple[str, str], tuple[int, int, int]]  # (currency, month) -> balances

# The share of month-ends (per currency) where the backfill alone must agree with what the
# objects can tell; measured: see docs/backfill.md.
AGREEMENT = 0.9


class Refs:
    """Coupons and discounts as a webhook-fed ledger would look them up (the events carry them)."""

    def __init__(self, account: Account) -> None:
        self.account = account

    def get(self, kind: str, object_id: str) -> dict[str, Any] | None:
        if kind == "coupon":
            return self.account.coupons.get(object_id)
        if kind == "discount":
            return self.account.discounts.get(object_id)
        return None


def replayed(account: Account, events: Iterable[dict[str, Any]]) -> list[DesiredEntry]:
    by_customer: dict[str, list[Any]] = defaultdict(list)
    for body in events:
        event = parse_event(body)
        by_customer[customer_of(event) or ""].append(event)
    return [
        entry
        for customer_id, found in by_customer.items()
        for entry in replay_customer(customer_id, found, Refs(account)).entries
    ]


def stored(engine: Engine) -> list[StoredEntry]:
    with engine.connect() as conn:
        return all_entries(conn)


def month_ends(entries: Iterable[Entry]) -> MonthEnd:
    """Each currency's closing active MRR, delinquent MRR and paying customers at the end of
    every month up to the one holding NOW (as of NOW)."""
    moves: dict[str, list[tuple[str, str, int, int]]] = defaultdict(list)
    for e in entries:
        active, delinquent = effects(e.category.value, e.amount)
        moves[e.currency].append(
            (e.effective_at.strftime("%Y-%m"), e.customer_id, active, delinquent)
        )
    last = datetime.fromtimestamp(NOW, UTC).strftime("%Y-%m")
    found: MonthEnd = {}
    for currency, rows in moves.items():
        rows.sort()
        months = sorted({m for m, *_ in rows} | {last})
        per_customer: dict[str, int] = defaultdict(int)
        active = delinquent = 0
        index = 0
        for month in months:
            while index < len(rows) and rows[index][0] <= month:
                _, customer, a, d = rows[index]
                active, delinquent = active + a, delinquent + d
                per_customer[customer] += a
                index += 1
            paying = sum(1 for amount in per_customer.values() if amount > 0)
            found[(currency, month)] = (active, delinquent, paying)
    return found


def live_by_subscription(entries: Iterable[Entry]) -> dict[str, tuple[int, int]]:
    found: dict[str, tuple[int, int]] = defaultdict(lambda: (0, 0))
    for e in entries:
        a, d = effects(e.category.value, e.amount)
        before = found[e.subscription_id]
        found[e.subscription_id] = (before[0] + a, before[1] + d)
    return dict(found)


def expanded(account: Account, sub: dict[str, Any]) -> dict[str, Any]:
    return {**sub, "discounts": [account.discounts[d] for d in sub["discounts"]]}


def rules_on_current_objects(account: Account) -> dict[str, tuple[int, int]]:
    """Each subscription's (active, delinquent) MRR by the rules, from its object as it is."""
    found = {}
    for sub in account.subscriptions:
        event = {
            "id": f"evt_now_{sub['id']}",
            "object": "event",
            "type": "customer.subscription.created",
            "created": NOW,
            "data": {"object": expanded(account, sub)},
        }
        replay = replay_customer(sub["customer"], [parse_event(event)], Refs(account))
        found[sub["id"]] = replay.closing.get(sub["id"], (0, 0))
    return found


@pytest.fixture(scope="module")
def stand_in() -> StandIn:
    return make_stand_in()


def test_the_stand_in_has_what_the_issue_names(stand_in: StandIn) -> None:
    account = stand_in.account
    subs, invoices = account.subscriptions, account.invoices
    assert len(account.customers) == 40
    assert {s["currency"] for s in subs} == {"usd", "eur"}
    assert sum(1 for s in subs if s["discounts"]) >= 3 and len(account.discounts) >= 8
    assert any(i["status"] == "void" for i in invoices)  # pauses
    assert any(s["pause_collection"] for s in subs) and any(s["status"] == "paused" for s in subs)
    assert sum(1 for i in invoices if i["status"] == "open") >= 4  # failures
    assert not account.prices["price_legacy_usd"]["active"]
    span = max(e["created"] for e in account.events) - min(e["created"] for e in account.events)
    assert span > 23 * 30 * 86_400


def test_the_backfill_alone_gets_the_present_exactly_and_the_past_as_the_objects_tell_it(
    stripe_settings: Settings,
    engine: Engine,
    rsps: responses.RequestsMock,
    stand_in: StandIn,
    capsys: pytest.CaptureFixture[str],
) -> None:
    account = stand_in.account
    fake(rsps, account)
    summary = backfill(stripe_settings, engine, account).run()
    assert not summary.warnings, summary.warnings
    assert not summary.without_discount_terms
    assert summary.archived_prices == 1
    assert summary.guesses["next_invoice"] > 0 and summary.guesses["voided_pause"] > 0
    ledger = stored(engine)

    # The present: every subscription as the rules read its object today.
    live, expected = live_by_subscription(ledger), rules_on_current_objects(account)
    assert {s: live.get(s, (0, 0)) for s in expected} == expected and set(live) <= set(expected)
    ours, webhooks = month_ends(ledger), month_ends(replayed(account, account.events))
    last = datetime.fromtimestamp(NOW, UTC).strftime("%Y-%m")
    for currency in ("usd", "eur"):
        assert ours[(currency, last)] == webhooks[(currency, last)]

    # The past: month-end balances as the objects can tell them.
    told = month_ends(replayed(account, stand_in.told))
    months = sorted(set(told) | set(ours))
    agreeing = [m for m in months if ours.get(m) == told.get(m)]
    share = len(agreeing) / len(months)
    with capsys.disabled():
        print(f"\nstand-in month-ends agreeing: {len(agreeing)}/{len(months)} = {share:.1%}")
    assert share >= AGREEMENT, [(m, ours.get(m), told.get(m)) for m in months if m not in agreeing]

    # An entry from a guessed event says so where an accountant looks (`mrr explain`).
    with engine.connect() as conn:
        found = [explain(conn, e.id) or {} for e in ledger if e.source_event_id.startswith("bf_")]
    origins = [f["source_event"]["rebuilt_from"] or {} for f in found]
    assert all(o.get("object") for o in origins)  # every entry names its Stripe object
    guessed = next(
        f for f, o in zip(found, origins, strict=True) if o.get("guess") == "next_invoice"
    )
    shown = render(guessed)
    assert "rebuilt by the backfill from in_" in shown and "lines.data.period.start" in shown
    assert "guessed (next_invoice): " in shown and "no proration line" in shown


def test_webhooks_then_the_backfill_twice_change_no_figure(
    stripe_settings: Settings, engine: Engine, rsps: responses.RequestsMock, stand_in: StandIn
) -> None:
    account = stand_in.account
    fake(rsps, account)
    ingest_webhooks(engine, account.events)
    before = month_ends(stored(engine)), counts(engine)
    assert before[0] == month_ends(replayed(account, account.events))
    for _ in range(2):
        summary = backfill(stripe_settings, engine, account).run()
        assert (summary.appended, summary.reversed, summary.synthesized) == (0, 0, 0)
        assert (month_ends(stored(engine)), counts(engine)) == before


def test_an_archived_price_is_retrieved_by_id(
    stripe_settings: Settings, engine: Engine, rsps: responses.RequestsMock
) -> None:
    account = make_account(12, seed=3)
    archived = "price_2900_month"
    account.prices[archived]["active"] = False  # listed no more; still retrieved by id
    api = fake(rsps, account)
    summary = backfill(stripe_settings, engine, account).run()
    assert f"/v1/prices/{archived}" in api.paths and summary.archived_prices == 1
    assert not summary.warnings
    assert monthly(engine) == truth(account)


def test_a_subscription_the_rules_refuse_is_reported_and_the_run_goes_on(
    stripe_settings: Settings, engine: Engine, rsps: responses.RequestsMock
) -> None:
    account = make_account(6, seed=5)
    bad = account.subscriptions[0]
    bad["currency"] = "dollars"
    fake(rsps, account)
    summary = backfill(stripe_settings, engine, account).run()
    assert summary.customers == 6
    refused = [w for w in summary.warnings if bad["id"] in w and "refused" in w]
    assert refused and "three-letter" in refused[0] and refused[0].startswith(bad["customer"])
    assert summary.appended > 0


def test_discount_terms_stripe_did_not_give_are_named_in_the_summary(
    stripe_settings: Settings, engine: Engine, rsps: responses.RequestsMock
) -> None:
    stand_in = make_stand_in()
    account = stand_in.account
    lost = next(s for s in account.subscriptions if s["discounts"])
    del account.discounts[lost["discounts"][0]]  # the listing cannot expand it
    fake(rsps, account)
    summary = backfill(stripe_settings, engine, account).run()
    assert summary.without_discount_terms == {lost["customer"]}
    assert any(
        w.startswith(lost["customer"]) and "terms not available" in w for w in summary.warnings
    )
    said = "\n".join(summary.lines(dry_run=False))
    assert f"(MRR counted without them): customers {lost['customer']}" in said


def test_a_dry_run_says_what_it_guessed(
    stripe_settings: Settings, engine: Engine, rsps: responses.RequestsMock, stand_in: StandIn
) -> None:
    account = stand_in.account
    fake(rsps, account)
    run = backfill(stripe_settings, engine, account, dry_run=True)
    summary = run.run()
    lines: list[str] = run.lines  # type: ignore[attr-defined]
    guessed = [line for line in lines if line.startswith("would store") and "(guessed:" in line]
    assert len(guessed) == sum(summary.guesses.values()) > 0
    assert any("no proration line" in line for line in guessed)
    assert any("renewal invoice(s) left uncollected" in line for line in guessed)
    said = summary.lines(dry_run=True)
    assert any(
        line.startswith(f"guessed: {len(guessed)} of the synthesized events") for line in said
    )
    assert any("changes dated at the next invoice" in line for line in said)
    assert counts(engine) == (0, 0)
    real = backfill(stripe_settings, engine, account).run()
    assert real.guesses == summary.guesses and real.appended == summary.appended
