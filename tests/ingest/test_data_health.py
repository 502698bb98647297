"""GET /healthz/data and the reconcile gauges: a difference Stripe shows, while /readyz stays
green."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import Engine

from ingest.app import create_app
from ledger.backfill import reconcile_store
from ledger.backfill.reconcile import Cause, Difference
from ledger.settings import Settings

STARTED = datetime(2026, 11, 1, 6, 0, tzinfo=UTC)


def differing(sub_id: str = "sub_1") -> Difference:
    return Difference(
        sub_id, "cus_1", "usd", "active", 5000, 0, "delinquent", 0, 5000,
        Cause.MISSED_EVENT, "a missed event: its newest stored event is evt_1",
    )  # fmt: skip


def record(engine: Engine, differences: list[Difference], error: str | None = None) -> None:
    with engine.begin() as conn:
        run_id = reconcile_store.start_run(conn, "schedule", STARTED)
        finished = STARTED + timedelta(minutes=2)
        if error is not None:
            reconcile_store.fail_run(conn, run_id, finished, error)
        else:
            reconcile_store.finish_run(
                conn, run_id, finished, subscriptions=40, differences=differences, fixed=0
            )


def gauges(text: str) -> dict[str, float]:
    return {
        sample.name: sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name.startswith("mrr_reconcile_")
    }


def test_data_health_says_what_differs_and_readiness_stays_green(
    settings: Settings, engine: Engine
) -> None:
    client = create_app(settings).test_client()
    auth = {"Authorization": f"Bearer {settings.api_token}"}
    assert client.get("/healthz/data").status_code == 401
    never = client.get("/healthz/data", headers=auth)
    assert never.status_code == 200 and never.get_json() == {
        "ok": True, "problems": [], "reconcile": None,
    }  # fmt: skip
    assert gauges(client.get("/metrics", headers=auth).get_data(as_text=True)) == {}

    record(engine, [])
    agreed = client.get("/healthz/data", headers=auth)
    assert agreed.status_code == 200 and agreed.get_json()["reconcile"]["subscriptions"] == 40

    record(engine, [differing()])
    found = client.get("/healthz/data", headers=auth)
    assert found.status_code == 503
    body = found.get_json()
    assert body["ok"] is False
    assert body["problems"] == [
        "the last reconcile found 1 differences",
        "sub_1 (cus_1): ledger active, Stripe delinquent; missed_event",
    ]
    [detail] = body["reconcile"]["details"]
    assert detail["ledger_mrr"] == "50.00" and detail["stripe_delinquent_mrr"] == "50.00"
    assert client.get("/readyz").status_code == 200
    scraped = gauges(client.get("/metrics", headers=auth).get_data(as_text=True))
    assert scraped["mrr_reconcile_differences"] == 1
    finished = STARTED + timedelta(minutes=2)
    assert scraped["mrr_reconcile_last_success_timestamp_seconds"] == finished.timestamp()

    record(engine, [], error="AuthenticationError: Invalid API Key provided")
    failed = client.get("/healthz/data", headers=auth)
    assert failed.status_code == 503
    assert failed.get_json()["problems"] == [
        "the last reconcile failed: AuthenticationError: Invalid API Key provided"
    ]
    # The gauge keeps the last successful run's figure.
    scraped = gauges(client.get("/metrics", headers=auth).get_data(as_text=True))
    assert scraped["mrr_reconcile_differences"] == 1


def test_data_health_says_when_it_cannot_read_the_database(settings: Settings) -> None:
    down = replace(settings, database_url="postgresql+psycopg://mrr@127.0.0.1:1/mrr")
    answer = (
        create_app(down)
        .test_client()
        .get("/healthz/data", headers={"Authorization": f"Bearer {settings.api_token}"})
    )
    assert answer.status_code == 503
    assert answer.get_json()["problems"] == ["database unreachable (OperationalError)"]
