"""`mrr reconcile` against a fake Stripe API: each subscription's ledger figures against the
rules applied to its live object, the likely cause of each difference, and `--fix`."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import replace
from datetime import timedelta
from typing import Any

import pytest
import responses
from click.testing import CliRunner
from rq import Queue
from sqlalchemy import Engine, select

from ledger import processing
from ledger.backfill import reconcile_store
from ledger.backfill.reconcile import Cause, is_reconciliation
from ledger.rules.events import parse_event
from ledger.rules.payloads import subscription_of
from ledger.settings import Settings
from ledger.storage import inbox
from ledger.storage.schema import inbox as inbox_table
from ledger.storage.schema import reconcile_runs
from scripts.cli import main
from tests.support.fake_stripe import DAY, GOOD_KEY, Account, FakeStripe, make_account
from tests.support.pipeline import drain, subscription_event
from workers import stripe_client
from workers.reconcile import Options, Outcome, run

BASE = "https://stripe.fake.test"


@pytest.fixture
def stripe_settings(settings: Settings) -> Settings:
    return replace(settings, stripe_api_key=GOOD_KEY, stripe_api_base=BASE)


@pytest.fixture
def account() -> Account:
    return make_account(16, seed=5)


def ingest(engine: Engine, events: list[dict[str, Any]]) -> None:
    """What the webhook and the workers would have done with these events."""
    with engine.begin() as conn:
        ids = [s.inbox_id for s in inbox.store_events(conn, [(inbox.dumps(e), e) for e in events])]
    processing.process_batch(engine, ids, max_attempts=1)


def reconcile(
    settings: Settings, engine: Engine, account: Account, **options: Any
) -> tuple[Outcome, FakeStripe]:
    fake = FakeStripe(account)
    api = stripe_client.connect(settings, rps=0, transport=fake.transport())
    return run(engine, api, Options(now=account.now, **options)), fake


def live_subscriptions(account: Account) -> list[dict[str, Any]]:
    return [s for s in account.subscriptions if s["status"] == "active"]


def events_of(account: Account, sub_id: str) -> list[dict[str, Any]]:
    return [e for e in account.events if subscription_of(e["data"]["object"]) == sub_id]


def causes(outcome: Outcome) -> dict[str, Cause]:
    return {d.subscription_id: d.cause for d in outcome.differences}


def test_a_reconcile_compares_within_its_keys_source_and_records_it(
    stripe_settings: Settings, engine: Engine, account: Account
) -> None:
    ingest(engine, account.events)
    # Live-mode rows of another account with the same ids: not the test key's to compare.
    other = [
        e | {"id": f"{e['id']}_eu", "livemode": True, "account": "acct_EU"} for e in account.events
    ]
    ingest(engine, other)
    outcome, fake = reconcile(stripe_settings, engine, account)
    assert outcome.differences == [] and "/v1/account" in fake.paths
    with engine.connect() as conn:
        row = conn.execute(
            select(reconcile_runs.c.account, reconcile_runs.c.livemode).where(
                reconcile_runs.c.id == outcome.run_id
            )
        ).one()
    assert (row.account, row.livemode) == ("", False)  # acct_fake: no stored event names it


def test_a_ledger_built_from_every_event_has_no_difference(
    stripe_settings: Settings, engine: Engine, account: Account
) -> None:
    ingest(engine, account.events)
    outcome, fake = reconcile(stripe_settings, engine, account)
    assert outcome.differences == []
    ended_long_ago = [
        s for s in account.subscriptions if (s["ended_at"] or account.now) < account.now - 30 * DAY
    ]
    assert outcome.subscriptions == len(account.subscriptions) - len(ended_long_ago)
    assert "/v1/subscriptions" in fake.paths
    with engine.connect() as conn:
        last = reconcile_store.last_finished(conn)
    assert last is not None and last.differences == 0 and last.trigger == "cli"
    assert last.subscriptions == outcome.subscriptions and last.error is None


def test_a_missed_event_is_named_with_the_dates_that_show_it(
    stripe_settings: Settings, engine: Engine, account: Account
) -> None:
    # The last renewal's events of a live subscription never arrived, nor did its cancellation
    # of another: the ledger is older than both objects.
    ended = next(s for s in account.subscriptions if s["status"] == "canceled")
    deleted = next(
        e for e in events_of(account, ended["id"]) if e["type"] == "customer.subscription.deleted"
    )
    ingest(engine, [e for e in account.events if e is not deleted])
    outcome, fake = reconcile(stripe_settings, engine, account)
    [found] = outcome.differences
    assert (found.subscription_id, found.cause) == (ended["id"], Cause.MISSED_EVENT)
    assert found.stripe_standing == "ended" and (found.stripe_active, found.stripe_delinquent) == (
        0,
        0,
    )
    assert found.ledger_standing == "active" and found.ledger_active > 0
    assert "older than the object's ended_at" in found.detail
    if ended["ended_at"] < account.now - 30 * DAY:
        assert f"/v1/subscriptions/{ended['id']}" in fake.paths  # ended long ago: asked for


def test_a_failed_row_is_the_likely_cause_of_its_subscriptions_difference(
    stripe_settings: Settings, engine: Engine, account: Account
) -> None:
    sub = live_subscriptions(account)[0]
    created = next(
        e for e in events_of(account, sub["id"]) if e["type"] == "customer.subscription.created"
    )
    updates = [
        e for e in events_of(account, sub["id"]) if e["type"] == "customer.subscription.updated"
    ]
    with engine.begin() as conn:
        inbox.store_events(conn, [(inbox.dumps(e), e) for e in account.events])
        for event in [created, *updates]:
            inbox.mark_event_failed(conn, event["id"], "planted: cannot read this event")
        pending = inbox.pending_ids(conn, older_than=timedelta(0))
    processing.process_batch(engine, pending, max_attempts=1)
    outcome, _ = reconcile(stripe_settings, engine, account)
    [found] = outcome.differences
    assert (found.subscription_id, found.cause) == (sub["id"], Cause.FAILED_ROWS)
    assert found.ledger_standing == "absent" and found.stripe_standing == "active"
    assert "planted: cannot read this event" in found.detail


def test_a_subscription_with_no_event_stored_and_one_stripe_does_not_know(
    stripe_settings: Settings, engine: Engine, account: Account
) -> None:
    sub = live_subscriptions(account)[1]
    mine = {e["id"] for e in events_of(account, sub["id"])}
    ghost = subscription_event(
        "evt_ghost", "customer.subscription.created", account.now - 5 * DAY,
        customer="cus_ghost", sub_id="sub_ghost",
    )  # fmt: skip
    ingest(engine, [e for e in account.events if e["id"] not in mine] + [ghost])
    outcome, fake = reconcile(stripe_settings, engine, account)
    assert causes(outcome) == {sub["id"]: Cause.NO_EVENTS, "sub_ghost": Cause.UNKNOWN}
    unknown = next(d for d in outcome.differences if d.cause is Cause.UNKNOWN)
    assert (unknown.ledger_standing, unknown.ledger_active) == ("active", 10000)
    assert unknown.stripe_standing == "absent"
    assert "/v1/subscriptions/sub_ghost" in fake.paths


def test_fix_stores_the_live_objects_and_after_processing_nothing_differs(
    stripe_settings: Settings, engine: Engine, account: Account, queue: Queue
) -> None:
    missing = {
        e["id"]
        for sub in live_subscriptions(account)[:3]
        for e in events_of(account, sub["id"])[-2:]
    }
    ended = next(s for s in account.subscriptions if s["status"] == "canceled")
    missing |= {e["id"] for e in events_of(account, ended["id"]) if e["type"].endswith("deleted")}
    ingest(engine, [e for e in account.events if e["id"] not in missing])
    fake = FakeStripe(account)
    api = stripe_client.connect(stripe_settings, rps=0, transport=fake.transport())
    queued: list[list[int]] = []
    first = run(engine, api, Options(now=account.now, fix=True), enqueue=queued.append)
    assert first.differences and first.stored and queued == [first.stored]
    with engine.connect() as conn:
        rows = conn.execute(
            select(inbox_table.c.event_id, inbox_table.c.source, inbox_table.c.payload).where(
                inbox_table.c.id.in_(first.stored)
            )
        ).all()
    assert {source for _, source, _ in rows} == {"reconcile"}
    assert all(is_reconciliation(event_id) for event_id, _, _ in rows)
    assert all(parse_event(p).created == account.now for _, _, p in rows)
    # Stored again (the same live objects): nothing new.
    again = run(engine, api, Options(now=account.now + 60, fix=True))
    assert {d.subscription_id for d in again.differences} == {
        d.subscription_id for d in first.differences
    }
    assert again.stored == first.stored
    # The ordinary worker path catches the ledger up by ordinary entries.
    from workers.queue import enqueue_batches

    enqueue_batches(queue, first.stored)
    drain(queue)
    after = run(engine, api, Options(now=account.now + 120))
    assert after.differences == []


@pytest.fixture
def rsps(account: Account) -> Iterator[FakeStripe]:
    fake = FakeStripe(account)
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        fake.install(mock, BASE)
        yield fake


def cli_env(settings: Settings) -> dict[str, str]:
    return {
        "DATABASE_URL": settings.database_url,
        "REDIS_URL": settings.redis_url or "",
        "MRR_QUEUE": settings.queue_name,
        "STRIPE_API_KEY": GOOD_KEY,
        "STRIPE_API_BASE": BASE,
    }


def test_the_command_exits_0_when_all_agree_and_1_with_a_table_json_or_csv_otherwise(
    settings: Settings, engine: Engine, account: Account, rsps: FakeStripe
) -> None:
    runner = CliRunner()
    env = cli_env(settings)
    ingest(engine, account.events)
    agreed = runner.invoke(main, ["reconcile", "--ended-within", "100000"], env=env)
    assert agreed.exit_code == 0, agreed.output
    assert "no difference" in agreed.output
    sub = live_subscriptions(account)[0]
    ghost = subscription_event(
        "evt_ghost", "customer.subscription.created", account.now - DAY,
        customer="cus_ghost", sub_id="sub_ghost", amount=4200,
    )  # fmt: skip
    ingest(engine, [ghost])
    table = runner.invoke(main, ["reconcile"], env=env)
    assert table.exit_code == 1, table.output
    assert "sub_ghost" in table.output and "unknown_subscription" in table.output
    assert "active 42.00" in table.output
    as_json = runner.invoke(main, ["reconcile", "--format", "json"], env=env)
    assert as_json.exit_code == 1
    found = json.loads(as_json.stdout)
    assert found["ok"] is False and found["differences"][0]["ledger_mrr"] == "42.00"
    assert found["differences"][0]["stripe_standing"] == "absent"
    as_csv = runner.invoke(main, ["reconcile", "--format", "csv"], env=env)
    lines = as_csv.stdout.splitlines()
    assert lines[0].startswith("subscription_id,customer_id,currency,ledger_standing")
    assert lines[1].startswith("sub_ghost,cus_ghost,usd,active,42.00")
    assert sub["id"] not in as_csv.stdout


def test_the_command_says_what_to_do_without_a_key_or_when_stripe_refuses(
    settings: Settings, account: Account, rsps: FakeStripe
) -> None:
    runner = CliRunner()
    env = cli_env(settings)
    missing = runner.invoke(main, ["reconcile"], env={**env, "STRIPE_API_KEY": ""})
    assert missing.exit_code == 2 and "STRIPE_API_KEY" in missing.output
    refused = runner.invoke(main, ["reconcile"], env={**env, "STRIPE_API_KEY": "sk_test_bad"})
    assert refused.exit_code == 2 and "rejected" in refused.output


def coupon(coupon_id: str, percent_off: int) -> dict[str, Any]:
    return {
        "id": coupon_id, "object": "coupon", "percent_off": percent_off, "amount_off": None,
        "currency": None, "duration": "forever", "valid": True,
    }  # fmt: skip


def test_discounts_of_the_live_objects_count_and_a_fix_brings_them_into_the_ledger(
    stripe_settings: Settings, engine: Engine, account: Account, queue: Queue
) -> None:
    ingest(engine, account.events)
    own, other = live_subscriptions(account)[:2]
    # Discounts added without the ledger hearing of them: the subscription's own (listed
    # expanded, with its coupon) and another customer's (from the customer list).
    own["discounts"] = [
        {
            "id": "di_own", "object": "discount", "coupon": coupon("c20", 20),
            "customer": own["customer"], "subscription": own["id"], "start": account.now - DAY,
        }
    ]  # fmt: skip
    customer = next(c for c in account.customers if c["id"] == other["customer"])
    customer["discount"] = {
        "id": "di_customer", "object": "discount", "coupon": coupon("c50", 50),
        "customer": customer["id"], "subscription": None, "start": account.now - DAY,
    }  # fmt: skip
    fake = FakeStripe(account)
    api = stripe_client.connect(stripe_settings, rps=0, transport=fake.transport())
    found = run(engine, api, Options(now=account.now, fix=True))
    by_sub = {d.subscription_id: d for d in found.differences}
    assert set(by_sub) == {own["id"], other["id"]}
    for sub, percent in ((own, 20), (other, 50)):
        item = sub["items"]["data"][0]
        price = item["price"]["unit_amount"] * item["quantity"]
        difference = by_sub[sub["id"]]
        assert difference.ledger_active == price
        assert difference.stripe_active == price * (100 - percent) // 100
        assert difference.cause is Cause.MISSED_EVENT
    with engine.connect() as conn:
        types = conn.execute(
            select(inbox_table.c.event_type).where(inbox_table.c.id.in_(found.stored))
        ).scalars()
        assert sorted(types) == [
            "customer.discount.created",
            "customer.subscription.updated",
            "customer.subscription.updated",
        ]
    processing.process_batch(engine, found.stored, max_attempts=1)
    assert run(engine, api, Options(now=account.now + 60)).differences == []


def test_an_object_the_rules_refuse_is_reported_and_not_stored(
    stripe_settings: Settings, engine: Engine, account: Account
) -> None:
    ingest(engine, account.events)
    sub = live_subscriptions(account)[0]
    sub["items"]["data"][0]["quantity"] = -3
    found = run(
        engine,
        stripe_client.connect(stripe_settings, rps=0, transport=FakeStripe(account).transport()),
        Options(now=account.now, fix=True),
    )
    [difference] = found.differences
    assert (difference.subscription_id, difference.cause) == (sub["id"], Cause.UNREADABLE)
    assert "quantity" in difference.detail and found.stored == []


def test_a_throttled_stripe_is_waited_for_and_counted(
    stripe_settings: Settings, engine: Engine, account: Account
) -> None:
    ingest(engine, account.events)
    fake = FakeStripe(account)
    fake.faults.extend([429, 429])
    api = stripe_client.connect(
        stripe_settings, rps=0, backoff_base=0.001, transport=fake.transport()
    )
    assert run(engine, api, Options(now=account.now)).differences == []
    assert api.counts.answered("429") == 2
    assert api.counts.snapshot()[("GET /v1/subscriptions", "200")] >= 1
