"""`mrr explain`: an entry traced to its Stripe event and its arithmetic."""

from __future__ import annotations

import json

from click.testing import CliRunner
from sqlalchemy import Engine

from ledger.processing import process_inbox_row
from ledger.settings import Settings
from ledger.storage import inbox
from scripts.cli import main
from tests.support.pipeline import subscription_event

T0 = 1_767_225_600


def store_and_process(engine: Engine, body: dict) -> None:
    with engine.begin() as conn:
        (stored,) = inbox.store_events(conn, [(inbox.dumps(body), body)])
    process_inbox_row(engine, stored.inbox_id, max_attempts=1)


def test_explain_names_the_event_and_a_late_correction(settings: Settings, engine: Engine) -> None:
    store_and_process(
        engine, subscription_event("evt_b", "customer.subscription.updated", T0 + 50, amount=20000)
    )
    # A late, earlier event changes what evt_b means: from new +200.00 to expansion +100.00.
    store_and_process(
        engine, subscription_event("evt_a", "customer.subscription.created", T0, amount=10000)
    )
    env = {"DATABASE_URL": settings.database_url}
    runner = CliRunner()

    first = runner.invoke(main, ["explain", "1"], env=env)
    assert first.exit_code == 0, first.output
    assert "entry 1: new 200.00 USD (20000 minor units)" in first.output
    assert "from Stripe event evt_b (customer.subscription.updated" in first.output
    assert "reversed by entry 2: not in effect" in first.output

    reversal = json.loads(runner.invoke(main, ["explain", "2", "--json"], env=env).output)
    assert reversal["reverses"]["id"] == 1 and reversal["entry"]["amount"] == -20000
    assert reversal["entry"]["cause_event_id"] == "evt_a"

    missing = runner.invoke(main, ["explain", "999"], env=env)
    assert missing.exit_code == 2 and "no ledger entry with id 999" in missing.output
    bad = runner.invoke(main, ["explain", "abc"], env=env)
    assert bad.exit_code == 2 and "'abc' is not a valid integer" in bad.output
