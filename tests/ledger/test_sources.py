"""Sources: live and test never mix, several accounts add up, secrets bound to a source."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime
from typing import Any

import pytest
from sqlalchemy import Engine

from ledger.processing import process_batch
from ledger.reporting.accounts import build_breakdown, check
from ledger.reporting.committed import build_committed
from ledger.reporting.reports import BadInput, build_report, report_query
from ledger.rules.sources import SecretBinding, key_mode, parse_secret
from ledger.storage import inbox
from tests.rules.builders import subscription_event

CREATED = 1_700_000_000  # 2023-11-14
MONTH = "2023-11"


def _event(
    event_id: str, amount: int, *, livemode: bool, account: str | None = None
) -> dict[str, Any]:
    body = subscription_event(
        "customer.subscription.created",
        "sub_1",
        "cus_1",
        CREATED,
        items=((amount, "month", 1, 1),),
        event_id=event_id,
    )
    body["livemode"] = livemode
    if account is not None:
        body["account"] = account
    return body


def _ingest(engine: Engine, bodies: list[dict[str, Any]]) -> None:
    with engine.begin() as conn:
        stored = inbox.store_events(conn, [(inbox.dumps(b), b) for b in bodies])
    outcome = process_batch(engine, [s.inbox_id for s in stored], max_attempts=2)
    assert outcome.counts == {"processed": len(bodies)}


def _closing(engine: Engine, **asked: str) -> int:
    report = build_report(engine, report_query(MONTH, MONTH, currency="usd", **asked))
    return report.main.months[-1].closing_mrr


def test_a_test_mode_event_for_a_live_customer_id_leaves_live_mrr_unchanged(
    engine: Engine,
) -> None:
    _ingest(engine, [_event("evt_live", 10_000, livemode=True)])
    assert _closing(engine) == 10_000
    _ingest(engine, [_event("evt_test", 55_000, livemode=False)])
    report = build_report(engine, report_query(MONTH, MONTH, currency="usd"))
    assert report.mode.name == "live" and report.mode.note is None
    assert report.main.months[-1].closing_mrr == 10_000
    assert report.main.months[-1].customers == 1
    assert _closing(engine, mode="test") == 55_000


def test_only_test_data_is_shown_by_default_and_said_so(engine: Engine) -> None:
    _ingest(engine, [_event("evt_test", 7_000, livemode=False)])
    report = build_report(engine, report_query(MONTH, MONTH, currency="usd"))
    assert report.main.months[-1].closing_mrr == 7_000
    assert report.mode.fell_back and report.mode.note == "Test-mode data: no live data yet"
    assert _closing(engine, mode="live") == 0


def test_two_accounts_add_up_to_the_consolidated_report(engine: Engine) -> None:
    # The same customer and subscription ids in two accounts are two customers.
    _ingest(
        engine,
        [
            _event("evt_a", 10_000, livemode=True, account="acct_A"),
            _event("evt_b", 3_000, livemode=True, account="acct_B"),
            _event("evt_t", 90_000, livemode=False, account="acct_A"),
        ],
    )
    whole = build_report(engine, report_query(MONTH, MONTH, currency="usd")).main.months[-1]
    parts = [
        build_report(engine, report_query(MONTH, MONTH, currency="usd", account=a)).main.months[-1]
        for a in ("acct_A", "acct_B")
    ]
    assert (whole.closing_mrr, whole.customers) == (13_000, 2)
    assert [p.closing_mrr for p in parts] == [10_000, 3_000]
    for name in ("opening_mrr", "new", "churn", "closing_mrr", "customers", "delinquent_mrr"):
        assert getattr(whole, name) == sum(getattr(p, name) for p in parts), name
    for part in parts:  # each account's own identity holds
        assert part.opening_mrr + part.new - part.churn == part.closing_mrr


def test_the_account_breakdown_lists_each_account_of_the_mode_and_adds_up(engine: Engine) -> None:
    _ingest(
        engine,
        [
            _event("evt_a", 10_000, livemode=True, account="acct_A"),
            _event("evt_o", 2_500, livemode=True),  # the endpoint's own account
            _event("evt_t", 90_000, livemode=False, account="acct_T"),
        ],
    )
    found = build_breakdown(engine, report_query(MONTH, MONTH))
    assert [a for a, _ in found.accounts] == ["", "acct_A"]  # no test-mode account
    assert [r.main.months[-1].closing_mrr for _, r in found.accounts] == [2_500, 10_000]
    assert found.consolidated.main.months[-1].closing_mrr == 12_500
    assert found.mismatches == []
    whole = found.consolidated
    wrong = dataclasses.replace(
        whole.main, months=[dataclasses.replace(whole.main.months[-1], churn=1)]
    )
    assert check(dataclasses.replace(whole, main=wrong), [r for _, r in found.accounts]) == [
        f"{MONTH} churn: accounts 0, consolidated 1"
    ]
    tested = build_breakdown(engine, report_query(MONTH, MONTH, mode="test"))
    assert [a for a, _ in tested.accounts] == ["acct_T"]
    with pytest.raises(BadInput):
        build_breakdown(engine, report_query(MONTH, MONTH, account="acct_A"))


def test_a_webhook_secret_binds_its_source() -> None:
    assert parse_secret("whsec_x") == SecretBinding("whsec_x")
    bound = parse_secret("acct_1A:live:whsec_y")
    assert (bound.account, bound.mode, bound.secret) == ("acct_1A", "live", "whsec_y")
    assert bound.mismatch("acct_1A", True) is None
    assert "test mode" in (bound.mismatch("acct_1A", False) or "")
    assert "acct_2B" in (bound.mismatch("acct_2B", True) or "")
    assert bound.account_for("") == "acct_1A"
    connect = parse_secret("*:test:whsec_z")
    assert connect.mismatch("acct_9", False) is None and connect.account_for("") == ""
    for bad in ("acct_1:prod:whsec_a", "cus_1:live:whsec_a", "a:b", "acct_1:live:"):
        with pytest.raises(ValueError):
            parse_secret(bad)


def test_a_key_says_its_mode() -> None:
    assert key_mode("sk_live_1") and key_mode("rk_live_1")
    assert not key_mode("sk_test_1") and not key_mode("rk_test_1")
    with pytest.raises(ValueError):
        key_mode("pk_live_1")
    assert dataclasses.is_dataclass(SecretBinding)


def test_committed_mrr_is_of_one_mode(engine: Engine) -> None:
    live = _event("evt_live", 10_000, livemode=True)
    live["data"]["object"]["cancel_at_period_end"] = True
    tested = [
        subscription_event(
            "customer.subscription.created",
            "sub_9",
            "cus_9",
            CREATED,
            status="trialing",
            items=((5_000, "month", 1, 1),),
            event_id="evt_trial",
            trial_end=CREATED + 20 * 86_400,
        ),
        subscription_event(
            "customer.subscription.created",
            "sub_2",
            "cus_2",
            CREATED,
            items=((55_000, "month", 1, 1),),
            event_id="evt_test",
        ),
    ]
    tested[1]["data"]["object"]["cancel_at_period_end"] = True
    _ingest(engine, [live, *tested])
    today = datetime.fromtimestamp(CREATED + 86_400, UTC)
    found = build_committed(engine, today, 3, "usd")
    assert {a.subscription_id for a in found.adjustments} == {"sub_1"}
    assert [a.amount for a in found.adjustments] == [-10_000]  # the live one, not 55,000
    assert found.potential == []  # the trial is test mode's
