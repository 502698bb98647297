"""Committed MRR, the forecast and its backtest through the API, against the OpenAPI document."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from flask.testing import FlaskClient
from sqlalchemy import Engine

from ingest.app import create_app
from ledger.rules.entries import Category, DesiredEntry
from ledger.rules.months import Month
from ledger.settings import Settings
from ledger.storage import store
from tests.ingest.test_api import validate


@pytest.fixture
def client(settings: Settings) -> FlaskClient:
    return create_app(settings).test_client()


@pytest.fixture
def auth(settings: Settings) -> dict[str, str]:
    return {"Authorization": f"Bearer {settings.api_token}"}


def seed(engine: Engine) -> None:
    """A customer of 10.00 more each month for the last 8 months."""
    now = Month.of(datetime.now(UTC))
    with engine.begin() as conn:
        for back in range(8, 0, -1):
            at = Month(now.index - back).start() + timedelta(days=2)
            cid = f"cus_{back}"
            entry = DesiredEntry(cid, f"sub_{back}", Category.NEW, "usd", 1000, at, f"evt_{back}")
            store.apply(conn, [store.DesiredLedger(cid, [entry], f"evt_{back}")])


def test_forecast_committed_and_backtest_match_the_openapi_document(
    client: FlaskClient, auth: dict[str, str], engine: Engine
) -> None:
    seed(engine)
    forecast = client.get("/api/mrr/forecast?months=3", headers=auth)
    assert forecast.status_code == 200, forecast.json
    validate(forecast, "MrrForecast")
    assert next(m["month"] for m in forecast.json["months"]) == str(Month.of(datetime.now(UTC)))
    assert len(forecast.json["months"]) == 3
    committed = client.get("/api/mrr/committed?months=2", headers=auth)
    assert committed.status_code == 200
    validate(committed, "CommittedMrr")
    assert committed.json["mrr_today"] == "80.00"
    backtest = client.get("/api/mrr/forecast/backtest", headers=auth)
    assert backtest.status_code == 200
    validate(backtest, "MrrBacktest")
    csv = client.get("/api/mrr/forecast?format=csv", headers=auth)
    assert csv.status_code == 200 and csv.data.startswith(b"month,closing_mrr,low,high")


def test_bad_input_names_the_field(
    client: FlaskClient, auth: dict[str, str], engine: Engine
) -> None:
    seed(engine)
    for path, field in (
        ("/api/mrr/forecast?months=99", "months"),
        ("/api/mrr/forecast?months=x", "months"),
        ("/api/mrr/committed?months=0", "months"),
        ("/api/mrr/committed?currency=usdx", "currency"),
    ):
        answer = client.get(path, headers=auth)
        assert answer.status_code == 400 and answer.json["field"] == field, path
        validate(answer, "Error")
    assert client.get("/api/mrr/forecast").status_code == 401
