"""Loading the demo through the real pipeline (webhook, inbox, batch processing) and the report."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from decimal import Decimal

import pytest
import redis
from rq import Queue
from sqlalchemy import Engine, func, select

from ingest.passwords import check
from ledger.reporting.balances import MOVEMENTS
from ledger.reporting.exports import report_json
from ledger.reporting.reports import build_report, report_query
from ledger.rules.months import Month
from ledger.settings import Settings
from ledger.storage import inbox, users
from ledger.storage.db import make_engine
from ledger.storage.schema import ledger_entries
from scripts.demo import Loaded, describe, load_demo
from scripts.demo_data import demo_events
from scripts.local import DEMO_EMAIL, demo_sign_in, load_demo_if_empty
from tests.conftest import REDIS_URL
from tests.support.databases import Templates
from tests.support.pipeline import subscription_event

# Under pytest-xdist the module's tests share one worker, so the demo is loaded once.
pytestmark = pytest.mark.xdist_group("demo")

JUNE_2026 = Month.parse("2026-06")


@dataclass(frozen=True)
class Demo:
    engine: Engine
    loaded: Loaded


def demo_settings(url: str) -> Settings:
    return Settings(
        database_url=url,
        redis_url=REDIS_URL,
        webhook_secrets=(),
        stripe_api_key=None,
        stripe_api_base=None,
        api_token=None,
        queue_name=f"test-demo-{uuid.uuid4().hex[:10]}",
    )


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def demo(request: pytest.FixtureRequest, templates: Templates) -> Iterator[Demo]:
    """The demo ending June 2026, loaded once per database for the module's tests."""

    def loaded_into(url: str) -> Iterator[Demo]:
        settings = demo_settings(url)
        engine = make_engine(url)
        try:
            yield Demo(engine, load_demo(settings, JUNE_2026))
        finally:
            engine.dispose()
            queue = Queue(settings.queue_name, connection=redis.Redis.from_url(REDIS_URL))
            queue.delete(delete_jobs=True)

    if request.param == "sqlite":
        yield from loaded_into(templates.sqlite_copy())
    else:
        with templates.pg_copy() as url:
            yield from loaded_into(url)


def test_the_final_month_is_the_worked_example_in_the_report(demo: Demo) -> None:
    query = report_query("2024-07", "2026-06", currency="usd")
    june = build_report(demo.engine, query).main.months[-1]
    assert (june.month, june.currency) == (JUNE_2026, "usd")
    assert (june.closing_mrr, june.customers, june.arpu) == (2_750_000, 300, Decimal("91.67"))
    month = report_json(build_report(demo.engine, query))["months"][-1]
    assert (month["closing_mrr"], month["customers"], month["arpu"]) == ("27500.00", 300, "91.67")


def test_every_movement_category_appears_and_eur_has_its_own_mrr(demo: Demo) -> None:
    seen = set()
    for currency in ("usd", "eur"):
        query = report_query("2024-07", "2026-06", currency=currency)
        for month in build_report(demo.engine, query).main.months:
            seen |= {c for c in MOVEMENTS if getattr(month, c.value)}
    assert seen == set(MOVEMENTS)
    eur = build_report(demo.engine, report_query("2026-06", "2026-06", currency="eur"))
    assert eur.main.months[-1].closing_mrr > 0 and eur.main.months[-1].customers > 0


def test_every_event_went_through_the_inbox_and_the_rules(demo: Demo) -> None:
    bodies = demo_events(JUNE_2026)
    customer_events = sum(b["type"] in ("customer.created", "customer.updated") for b in bodies)
    with demo.engine.connect() as conn:
        counts = inbox.status_counts(conn)
        entries = conn.execute(select(func.count()).select_from(ledger_entries)).scalar_one()
    assert counts == {"processed": len(bodies) - customer_events, "ignored": customer_events}
    assert demo.loaded.events == len(bodies)
    assert entries == demo.loaded.entries > 0


def test_mrr_up_says_what_it_loaded(demo: Demo) -> None:
    bodies = demo_events(JUNE_2026)
    assert demo.loaded.customers == sum(b["type"] == "customer.created" for b in bodies)
    said = "\n".join(describe(demo.loaded))
    loaded = f"{demo.loaded.customers} customers, {len(bodies):,} Stripe events"
    assert f"{loaded} from 2024-07 to 2026-06" in said
    assert "2026-06: MRR 27,500.00 USD from 300 customers, ARPU 91.67" in said
    assert f"({demo.loaded.entries:,} ledger entries)" in said


def test_a_ledger_with_events_gets_no_demo(settings: Settings, engine: Engine) -> None:
    body = subscription_event("evt_mine", "customer.subscription.created", 1_767_225_600)
    with engine.begin() as conn:
        inbox.store_events(conn, [(inbox.dumps(body), body)])
    assert load_demo_if_empty(settings) is None
    with engine.connect() as conn:
        assert inbox.status_counts(conn) == {"pending": 1}


def test_the_demo_sign_in_is_an_admin_whose_password_is_printed_once(
    settings: Settings, engine: Engine
) -> None:
    (line,) = demo_sign_in(settings)
    password = line.split(" with the password ")[1].split(" ")[0]
    with engine.connect() as conn:
        user = users.by_email(conn, DEMO_EMAIL)
    assert user is not None and user.role == "admin"
    assert password not in user.password_hash and check(user.password_hash, password)
    (again,) = demo_sign_in(settings)
    assert f"{DEMO_EMAIL} already has an account" in again and password not in again
