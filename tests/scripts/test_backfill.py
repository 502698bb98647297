"""The backfill against a fake Stripe API (responses): same numbers as the webhooks, every time."""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterator
from dataclasses import replace
from typing import Any

import pytest
import requests
import responses
from click.testing import CliRunner
from prometheus_client import REGISTRY
from rq import Queue
from sqlalchemy import Engine, func, select

from ledger import processing
from ledger.backfill import store as backfill_store
from ledger.reporting.profiles import profiles
from ledger.rules.events import customer_of, parse_event
from ledger.rules.timeline import replay_customer
from ledger.settings import Settings
from ledger.storage import inbox
from ledger.storage.schema import inbox as inbox_table
from ledger.storage.schema import ledger_entries
from scripts.backfill import Backfill, BackfillError, Options, StripeSource, make_source
from scripts.cli import main
from tests.support.fake_stripe import (
    DAY,
    GOOD_KEY,
    RESTRICTED_KEY,
    Account,
    FakeStripe,
    make_account,
    tier,
)
from tests.support.ledger import all_entries
from tests.support.pipeline import drain
from tests.support.workspace import customer_event
from workers.stripe_client import RateLimiter

BASE = "https://stripe.fake.test"
Monthly = Counter[tuple[str, str, str]]


class Refs:
    """What the rules may look up beyond the events: prices with their tiers, coupons."""

    def __init__(self, account: Account) -> None:
        self.account = account

    def get(self, kind: str, object_id: str) -> dict[str, Any] | None:
        if kind == "price" and object_id in self.account.tiers:
            return {**self.account.prices[object_id], "tiers": self.account.tiers[object_id]}
        return self.account.coupons.get(object_id) if kind == "coupon" else None


def truth(account: Account) -> Monthly:
    """Monthly totals the rules derive from the events Stripe actually sent."""
    by_customer: dict[str, list[Any]] = defaultdict(list)
    for body in account.events:
        event = parse_event(body)
        by_customer[customer_of(event) or ""].append(event)
    totals: Monthly = Counter()
    for customer_id, events in by_customer.items():
        for e in replay_customer(customer_id, events, Refs(account)).entries:
            totals[(e.category.value, e.currency, e.effective_at.strftime("%Y-%m"))] += e.amount
    return +totals


def monthly(engine: Engine) -> Monthly:
    totals: Monthly = Counter()
    with engine.connect() as conn:
        for e in all_entries(conn):
            totals[(e.category.value, e.currency, e.effective_at.strftime("%Y-%m"))] += e.amount
    return +totals


def counts(engine: Engine) -> tuple[int, int]:
    with engine.connect() as conn:
        rows = conn.execute(select(func.count()).select_from(inbox_table)).scalar_one()
        entries = conn.execute(select(func.count()).select_from(ledger_entries)).scalar_one()
    return int(rows), int(entries)


def ingest_webhooks(engine: Engine, events: list[dict[str, Any]], batch: int = 500) -> None:
    """What the webhook and worker would have done with these events, arriving in order: the
    worker's batch path, `batch` rows at a time as a backlog drains (the ledger in effect is
    the one a row at a time gives, tests/workers/test_batch.py; for the stand-in account in
    an eighth of the time)."""
    with engine.begin() as conn:
        stored = inbox.store_events(conn, [(inbox.dumps(e), e) for e in events])
        ids = [s.inbox_id for s in stored]
    for start in range(0, len(ids), batch):
        done = processing.process_batch(engine, ids[start : start + batch], max_attempts=1)
        assert not done.retry and not done.counts.get("failed"), done


@pytest.fixture
def stripe_settings(settings: Settings) -> Settings:
    return replace(settings, stripe_api_key=GOOD_KEY, stripe_api_base=BASE)


@pytest.fixture
def rsps() -> Iterator[responses.RequestsMock]:
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        yield mock


def fake(rsps: responses.RequestsMock, account: Account) -> FakeStripe:
    api = FakeStripe(account)
    api.install(rsps, BASE)
    return api


def backfill(
    settings: Settings,
    engine: Engine,
    account: Account,
    source: StripeSource | None = None,
    **options: Any,
) -> Backfill:
    hook = options.pop("after_customer", None)
    source = source or make_source(settings, rps=0, backoff_base=0.001, sleep=lambda _: None)
    lines: list[str] = []
    run = Backfill(
        settings,
        source,
        Options(now=account.now, **options),
        engine=engine,
        out=lines.append,
        progress_stream=open("/dev/null", "w"),  # noqa: SIM115
        after_customer=hook,
    )
    run.lines = lines  # type: ignore[attr-defined]
    return run


@pytest.mark.parametrize("shape", ["new", "old"])
def test_a_backfill_alone_gives_the_numbers_of_the_events_stripe_sent(
    stripe_settings: Settings, engine: Engine, rsps: responses.RequestsMock, shape: str
) -> None:
    account = make_account(40, seed=3, shape=shape)
    fake(rsps, account)
    summary = backfill(stripe_settings, engine, account).run()
    assert monthly(engine) == truth(account)
    assert summary.customers == 40 and summary.synthesized > 0 and not summary.warnings
    with engine.connect() as conn:
        sources = {e.source_event_id for e in all_entries(conn)}
        backfilled = inbox.list_rows(conn, limit=10_000)
    # Every entry names a real event, or the Stripe object and field it was rebuilt from.
    assert all(s.startswith(("bf_sub_", "bf_in_", "bf_il_", "evt_")) for s in sources)
    assert {r.source for r in backfilled} == {"backfill", "events_api"}
    assert all(r.status in ("processed", "ignored") for r in backfilled)


def test_a_backfill_over_history_the_webhooks_ingested_changes_nothing(
    stripe_settings: Settings, engine: Engine, rsps: responses.RequestsMock
) -> None:
    account = make_account(25, seed=5)
    fake(rsps, account)
    ingest_webhooks(engine, account.events)
    before_numbers, before_counts = monthly(engine), counts(engine)
    summary = backfill(stripe_settings, engine, account).run()
    assert (summary.appended, summary.reversed, summary.synthesized) == (0, 0, 0)
    assert summary.present == summary.events > 0
    assert monthly(engine) == before_numbers == truth(account)
    assert counts(engine) == before_counts


def test_webhooks_installed_midway_plus_backfill_give_the_whole_history(
    stripe_settings: Settings, engine: Engine, rsps: responses.RequestsMock
) -> None:
    account = make_account(30, seed=11)
    fake(rsps, account)
    installed = account.now - 200 * DAY
    ingest_webhooks(engine, account.events_since(installed))
    backfill(stripe_settings, engine, account).run()
    assert monthly(engine) == truth(account)


def test_running_twice_changes_nothing(
    stripe_settings: Settings, engine: Engine, rsps: responses.RequestsMock
) -> None:
    account = make_account(20, seed=2)
    fake(rsps, account)
    first = backfill(stripe_settings, engine, account).run()
    after_first = counts(engine), monthly(engine)
    second = backfill(stripe_settings, engine, account).run()
    assert first.stored > 0 and first.appended > 0
    assert (second.stored, second.appended, second.reversed) == (0, 0, 0)
    assert second.present == first.stored
    assert (counts(engine), monthly(engine)) == after_first


def test_an_interrupted_run_resumes_to_the_same_ledger(
    stripe_settings: Settings, engine: Engine, rsps: responses.RequestsMock
) -> None:
    account = make_account(230, seed=13)
    api = fake(rsps, account)
    seen: list[str] = []

    def crash_at_150(customer_id: str) -> None:
        seen.append(customer_id)
        if len(seen) == 150:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        backfill(stripe_settings, engine, account, after_customer=crash_at_150).run()
    with engine.connect() as conn:
        checkpoint = backfill_store.load_checkpoint(conn, "all")
    assert checkpoint is not None and checkpoint.customers_done == 100
    requests_before = api.requests
    resumed = backfill(stripe_settings, engine, account, resume=True).run()
    assert resumed.resumed_after == 100 and resumed.customers == 130
    assert api.requests - requests_before < 2 * 230  # the first page was not fetched again
    assert monthly(engine) == truth(account)
    again = backfill(stripe_settings, engine, account).run()
    assert (again.stored, again.appended, again.reversed) == (0, 0, 0)


def test_429s_and_500s_are_retried_with_backoff(
    stripe_settings: Settings, engine: Engine, rsps: responses.RequestsMock
) -> None:
    account = make_account(15, seed=17)
    api = fake(rsps, account)
    api.faults.extend([429, 500, 429, 429, 503, 502, 429, 500] * 3)
    api.fault_every = 2
    run = backfill(stripe_settings, engine, account)
    before = stripe_metrics()
    run.run()
    assert not api.faults
    assert run.source.api.counts.answered("429") == 12
    assert sum(run.source.api.counts.answered(str(s)) for s in (500, 502, 503)) == 12
    assert monthly(engine) == truth(account)
    # The same requests in the Prometheus counters, by endpoint and answer, and the retries.
    moved = stripe_metrics() - before
    assert moved[("requests", "429")] == 12 and moved[("retries", "throttled")] == 12
    assert moved[("requests", "GET /v1/customers", "200")] >= 1
    assert sum(n for key, n in moved.items() if len(key) == 2 and key[0] == "requests") == (
        api.requests
    )


def stripe_metrics() -> Counter[tuple[str, ...]]:
    """mrr_stripe_requests_total by answer and by (endpoint, answer); retries by reason."""
    found: Counter[tuple[str, ...]] = Counter()
    for family in REGISTRY.collect():
        for s in family.samples:
            if s.name == "mrr_stripe_requests_total":
                found[("requests", s.labels["status"])] += int(s.value)
                found[("requests", s.labels["endpoint"], s.labels["status"])] += int(s.value)
            elif s.name == "mrr_stripe_retries_total":
                found[("retries", s.labels["reason"])] += int(s.value)
    return found


def test_reference_fetches_wait_for_the_rate_limit_and_are_counted(
    stripe_settings: Settings, engine: Engine
) -> None:
    # Old-shape invoice lines carry their price without tiers, so processing the events rebuilt
    # from them must fetch each price's tiers (new-shape lines name the price, which the
    # backfill reads from its price list with the tiers expanded).
    account = make_account(12, seed=43, shape="old")
    for price_id in account.prices:
        tier(account, price_id)
    api = FakeStripe(account)
    waits: list[float] = []
    # The clock stands still: the n-th request through the limiter is told to wait (n-1)/rps.
    limiter = RateLimiter(5, clock=lambda: 0.0, sleep=waits.append)
    source = make_source(
        stripe_settings, limiter=limiter, transport=api.transport(), backoff_base=0.001
    )
    summary = backfill(stripe_settings, engine, account, source=source).run()
    fetched = [p for p in api.paths if p.startswith("/v1/prices/price_")]
    assert fetched and summary.requests == api.requests
    assert summary.requests == sum(source.api.counts.snapshot().values())
    assert sorted(waits) == pytest.approx([n / 5 for n in range(1, api.requests)])
    assert monthly(engine) == truth(account) and not summary.warnings


@pytest.mark.parametrize("shape", ["new", "old"])
def test_a_dry_run_prints_what_it_would_append_and_writes_nothing(
    stripe_settings: Settings, engine: Engine, rsps: responses.RequestsMock, shape: str
) -> None:
    account = make_account(8, seed=19, shape=shape)
    fake(rsps, account)
    run = backfill(stripe_settings, engine, account, dry_run=True)
    summary = run.run()
    assert counts(engine) == (0, 0)
    lines: list[str] = run.lines  # type: ignore[attr-defined]
    appends = [line for line in lines if line.startswith("would append")]
    assert len(appends) == summary.appended > 0
    real = backfill(stripe_settings, engine, account).run()
    assert real.appended == summary.appended
    assert real.stored == summary.stored


def test_one_customer_only(
    stripe_settings: Settings, engine: Engine, rsps: responses.RequestsMock
) -> None:
    account = make_account(10, seed=23)
    fake(rsps, account)
    summary = backfill(stripe_settings, engine, account, customer="cus_000004").run()
    assert summary.customers == 1
    with engine.connect() as conn:
        owners = {r.customer_id for r in inbox.list_rows(conn, limit=10_000)}
    assert owners == {"cus_000004"}
    expected = Account(
        account.now,
        account.shape,
        events=[e for e in account.events if e["data"]["object"]["customer"] == "cus_000004"],
    )
    assert monthly(engine) == truth(expected)
    with pytest.raises(BackfillError, match="no customer cus_nope"):
        backfill(stripe_settings, engine, account, customer="cus_nope").run()


def test_names_and_emails_come_from_the_customer_list(
    stripe_settings: Settings, engine: Engine, rsps: responses.RequestsMock
) -> None:
    account = make_account(6, seed=31)
    for n, customer in enumerate(account.customers):
        customer["name"] = f"<i>Listed</i> {n}"
    fake(rsps, account)
    older = customer_event("evt_c1", "cus_000001", "Before", "old@example.com", account.now - DAY)
    newer = customer_event("evt_c2", "cus_000002", "After", "new@example.com", account.now + 60)
    ingest_webhooks(engine, [older, newer])
    backfill(stripe_settings, engine, account, dry_run=True).run()
    with engine.connect() as conn:
        assert set(profiles(conn)) == {"cus_000001", "cus_000002"}  # a dry run writes none
    backfill(stripe_settings, engine, account).run()
    with engine.connect() as conn:
        found = profiles(conn)
    assert set(found) == {c["id"] for c in account.customers}
    listed = found["cus_000001"]
    assert (listed.name, listed.email) == ("<i>Listed</i> 1", "c1@example.com")
    assert found["cus_000002"].name == "After"  # an event after the listing is newer


def test_since_keeps_history_from_that_date(
    stripe_settings: Settings, engine: Engine, rsps: responses.RequestsMock
) -> None:
    account = make_account(20, seed=29)
    fake(rsps, account)
    since = account.now - 365 * DAY
    backfill(stripe_settings, engine, account, since=since).run()
    with engine.connect() as conn:
        entries = all_entries(conn)
    assert entries and min(e.effective_at.timestamp() for e in entries) >= since


def test_via_queue_gives_the_same_ledger(
    stripe_settings: Settings, engine: Engine, rsps: responses.RequestsMock, queue: Queue
) -> None:
    account = make_account(10, seed=31)
    fake(rsps, account)
    summary = backfill(stripe_settings, engine, account, via_queue=True).run()
    assert summary.appended == 0 and len(queue) > 0
    drain(queue)
    assert monthly(engine) == truth(account)


# --- errors: one line, nothing written -------------------------------------------------------


def cli(settings: Settings, *args: str, key: str | None = GOOD_KEY) -> Any:
    env = {"DATABASE_URL": settings.database_url, "STRIPE_API_BASE": BASE, "STRIPE_API_KEY": key}
    return CliRunner().invoke(main, ["backfill", "--rps", "1000", *args], env=env)


@pytest.mark.parametrize(
    ("key", "says"),
    [
        (None, "backfill: STRIPE_API_KEY is not set: export"),
        ("sk_test_wrong", "backfill: the API key was rejected by Stripe (401)"),
        (RESTRICTED_KEY, "backfill: the API key may not read everything the backfill needs (403)"),
    ],
)
def test_a_bad_key_ends_with_one_line_and_writes_nothing(
    stripe_settings: Settings,
    engine: Engine,
    rsps: responses.RequestsMock,
    key: str | None,
    says: str,
) -> None:
    fake(rsps, make_account(3))
    result = cli(stripe_settings, key=key)
    assert result.exit_code == 1
    assert result.output.startswith(says) and result.output.count("\n") == 1
    assert counts(engine) == (0, 0)


def test_an_unreachable_api_ends_with_one_line_and_writes_nothing(
    stripe_settings: Settings, engine: Engine, rsps: responses.RequestsMock, monkeypatch: Any
) -> None:
    monkeypatch.setattr("workers.stripe_client.backoff_seconds", lambda attempt, base: 0.0)
    rsps.add(responses.GET, BASE + "/v1/customers", body=requests.ConnectionError("refused"))
    result = cli(stripe_settings)
    assert result.exit_code == 1, result.output
    assert result.output.startswith(f"backfill: cannot reach the Stripe API at {BASE}: check")
    assert result.output.count("\n") == 1
    assert counts(engine) == (0, 0)


@pytest.mark.parametrize(
    ("fault", "says"),
    [
        (429, "backfill: Stripe kept answering 429 (rate limited) after retries: run again"),
        (503, "backfill: Stripe kept failing (503: injected fault) after retries with backoff"),
    ],
)
def test_a_stripe_that_keeps_failing_ends_with_one_line_and_writes_nothing(
    stripe_settings: Settings,
    engine: Engine,
    rsps: responses.RequestsMock,
    monkeypatch: Any,
    fault: int,
    says: str,
) -> None:
    monkeypatch.setattr("workers.stripe_client.backoff_seconds", lambda attempt, base: 0.0)
    api = fake(rsps, make_account(3))
    api.faults.extend([fault] * 100)
    result = cli(stripe_settings)
    assert result.exit_code == 1, result.output
    assert result.output.startswith(says) and result.output.count("\n") == 1
    assert api.requests == (9 if fault == 429 else 5)  # 8 retries of a 429; 4 of a 5xx
    assert counts(engine) == (0, 0)


def test_the_cli_prints_a_summary(
    stripe_settings: Settings, engine: Engine, rsps: responses.RequestsMock
) -> None:
    fake(rsps, make_account(5, seed=37, now=1_780_000_000))
    result = cli(stripe_settings, "--concurrency", "2")
    assert result.exit_code == 0, result.output
    assert "customers: 5" in result.output and "entries appended:" in result.output


@pytest.mark.parametrize(
    ("args", "names"),
    [
        (["--customer", "sub_1"], "--customer"),
        (["--concurrency", "0"], "--concurrency"),
        (["--since", "yesterday"], "--since"),
        (["--rps", "0"], "--rps"),
        (["--dry-run", "--resume"], "--dry-run"),
    ],
)
def test_bad_arguments_are_click_errors(args: list[str], names: str) -> None:
    result = CliRunner().invoke(main, ["backfill", *args])
    assert result.exit_code == 2 and names in result.output


def test_the_shim_runs_the_same_command() -> None:
    import subprocess
    import sys
    from pathlib import Path

    shim = Path(__file__).resolve().parents[2] / "scripts" / "backfill"
    done = subprocess.run([sys.executable, str(shim), "--help"], capture_output=True, text=True)
    assert done.returncode == 0 and "--resume" in done.stdout


def test_a_thousand_customers_with_three_years_of_changes(
    stripe_settings: Settings, engine: Engine, rsps: responses.RequestsMock
) -> None:
    if engine.dialect.name == "sqlite":
        pytest.skip("run on PostgreSQL, the production database; the other tests cover SQLite")
    # 1,000 rather than 2,000 since the workers also keep segments: the suite's time, not the
    # scale, was what grew (requests per customer do not depend on the count).
    account = make_account(1000, years=3, seed=41)
    api = fake(rsps, account)
    summary = backfill(stripe_settings, engine, account, concurrency=4).run()
    assert summary.customers == 1000 and not summary.warnings
    assert summary.requests == api.requests
    assert summary.requests / 1000 < 2.2
    assert monthly(engine) == truth(account)


def test_a_test_key_against_live_data_asks_for_mode_test_and_keeps_the_modes_apart(
    stripe_settings: Settings, engine: Engine, rsps: responses.RequestsMock
) -> None:
    account = make_account(3, seed=11)
    fake(rsps, account)
    live = [e | {"id": f"{e['id']}_live", "livemode": True} for e in account.events]
    ingest_webhooks(engine, live)
    before = counts(engine)
    with pytest.raises(BackfillError, match="--mode test"):
        backfill(stripe_settings, engine, account).run()
    assert counts(engine) == before  # refused before any write
    with pytest.raises(BackfillError, match="--mode live but STRIPE_API_KEY is a test key"):
        backfill(stripe_settings, engine, account, mode="live").run()
    backfill(stripe_settings, engine, account, mode="test").run()
    with engine.connect() as conn:
        rows = inbox.list_rows(conn, limit=10_000)
    assert {r.livemode for r in rows if r.source != "webhook"} == {False}
    # Each mode's ledger is what the rules give for the same history: nothing counted twice.
    assert monthly(engine) == truth(account) + truth(account)
