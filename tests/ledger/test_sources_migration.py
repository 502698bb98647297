"""Migration 0015 on a ledger holding live and test rows, SQLite and PostgreSQL: accounts read
from the stored payloads, no ledger row touched, live figures without what test mode added,
and the difference printed."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from ledger.reporting.reports import build_report, report_query
from ledger.rules.entries import Category, DesiredEntry
from ledger.rules.sources import Unit
from ledger.storage import chain, migrate, store
from ledger.storage.db import make_engine
from ledger.storage.schema import inbox, ledger_entries
from tests.rules.builders import subscription_event
from tests.support.databases import database_at, store_before_sources

BEFORE = "0016"
AT = datetime(2023, 11, 14, tzinfo=UTC)


@pytest.fixture(params=["sqlite", "postgresql"])
def old_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    with database_at(request.param, BEFORE, tmp_path) as url:
        yield url


def _event(event_id: str, customer: str, *, livemode: bool, account: str = "") -> dict[str, Any]:
    body = subscription_event("customer.subscription.created", "sub_1", customer, 1_700_000_000,
                              event_id=event_id)  # fmt: skip
    return body | {"livemode": livemode} | ({"account": account} if account else {})


def test_live_figures_lose_what_test_mode_added(
    old_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    engine = make_engine(old_url)
    rows = {  # event: (customer, livemode, account, MRR)
        "evt_live": ("cus_1", True, "", 10_000),
        "evt_eu": ("cus_2", True, "acct_EU", 2_000),
        "evt_test": ("cus_1", False, "", 4_000),
    }
    with engine.begin() as conn:
        store_before_sources(
            conn, [_event(e, c, livemode=m, account=a) for e, (c, m, a, _) in rows.items()]
        )
        for event_id, (customer, livemode, account, mrr) in rows.items():
            entry = DesiredEntry(customer, "sub_1", Category.NEW, "usd", mrr, AT, event_id, {})
            # Compared by source event: no inbox column is read before 0015 adds `account`.
            desired = store.DesiredLedger(Unit(customer, account, livemode), [entry], event_id,
                                          [event_id])  # fmt: skip
            store.apply(conn, [desired])
        entries_before = conn.execute(select(func.count()).select_from(ledger_entries)).scalar()
    capsys.readouterr()
    migrate.upgrade(old_url)
    printed = capsys.readouterr().err
    assert "usd: net ledger amount 16000 before, 12000 live only; test mode took out 4000" in (
        printed
    )
    with engine.connect() as conn:
        accounts = dict(conn.execute(select(inbox.c.event_id, inbox.c.account)).all())
        assert accounts == {"evt_live": "", "evt_eu": "acct_EU", "evt_test": ""}
        assert conn.execute(select(func.count()).select_from(ledger_entries)).scalar() == (
            entries_before
        )
        assert chain.verify(conn).ok
    live = build_report(engine, report_query("2023-11", "2023-11", currency="usd"))
    assert (live.mode.name, live.main.months[-1].closing_mrr) == ("live", 12_000)
    assert live.main.months[-1].customers == 2  # cus_1 live and cus_2; not cus_1 in test
    test = build_report(engine, report_query("2023-11", "2023-11", currency="usd", mode="test"))
    assert test.main.months[-1].closing_mrr == 4_000
    eu = report_query("2023-11", "2023-11", currency="usd", account="acct_EU")
    assert build_report(engine, eu).main.months[-1].closing_mrr == 2_000
    engine.dispose()
