"""Committed MRR, the forecast and its backtest through the API, against the OpenAPI document."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import ROUND_HALF_EVEN, Decimal

import pytest
from flask.testing import FlaskClient
from sqlalchemy import Engine

from ingest.app import create_app
from ledger.reporting import fx
from ledger.rules.entries import Category, DesiredEntry
from ledger.rules.months import Month
from ledger.rules.sources import Unit
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
            store.apply(conn, [store.DesiredLedger(Unit(cid, "", False), [entry], f"evt_{back}")])


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


def test_a_reporting_currency_converts_at_one_rate_or_is_refused_naming_the_rate(
    client: FlaskClient, auth: dict[str, str], engine: Engine
) -> None:
    seed(engine)
    for path in ("/api/mrr/forecast", "/api/mrr/committed"):
        refused = client.get(f"{path}?reporting_currency=eur", headers=auth)
        assert refused.status_code == 400 and refused.json["field"] == "reporting_currency"
        assert "usd" in refused.json["reason"] and "mrr fx load" in refused.json["reason"]
    month_start = Month.of(datetime.now(UTC)).start().date()
    with engine.begin() as conn:  # one usd is worth 0.80 eur, the base (no eur rows)
        fx.store_rates(conn, [fx.Rate(month_start - timedelta(days=40), "usd", Decimal("0.8"))])
    usd = client.get("/api/mrr/forecast?months=3", headers=auth).json
    eur = client.get("/api/mrr/forecast?months=3&reporting_currency=eur", headers=auth)
    assert eur.status_code == 200, eur.json
    validate(eur, "MrrForecast")
    assert (eur.json["currency"], eur.json["converted_from"]) == ("eur", "usd")
    assert usd["converted_from"] is None and eur.json["model"] == usd["model"]
    for mine, theirs in zip(eur.json["months"], usd["months"], strict=True):
        for name in ("closing_mrr", "low", "high"):
            if theirs[name] is None:
                assert mine[name] is None
            else:
                assert Decimal(mine[name]) == (Decimal(theirs[name]) * Decimal("0.8")).quantize(
                    Decimal("0.01"), rounding=ROUND_HALF_EVEN
                )
    committed = client.get("/api/mrr/committed?reporting_currency=eur", headers=auth)
    assert committed.status_code == 200
    validate(committed, "CommittedMrr")
    assert committed.json["currency"] == "eur" and committed.json["mrr_today"] == "64.00"
    assert committed.json["months"][0]["committed_mrr"] == "64.00"
    assert any("converted into eur from usd" in note for note in committed.json["notes"])
