"""Segments, cohorts and MRR per customer through the API, checked against the OpenAPI file."""

from __future__ import annotations

import csv
import io

import pytest
from flask.testing import FlaskClient
from sqlalchemy import Engine

from ingest.app import create_app
from ledger.settings import Settings
from tests.ingest.test_api import validate
from tests.ledger.test_segments import article, at, process, sub_event


@pytest.fixture
def client(settings: Settings) -> FlaskClient:
    return create_app(settings).test_client()


@pytest.fixture
def auth(settings: Settings) -> dict[str, str]:
    return {"Authorization": f"Bearer {settings.api_token}"}


def test_mrr_by_plan_cohorts_and_customers(
    client: FlaskClient, auth: dict[str, str], engine: Engine
) -> None:
    article(engine)
    process(engine, [sub_event("evt_x", "updated", at(2026, 11, 2), "cus_000", "pro")])
    by_plan = client.get("/api/mrr?from=2026-10&to=2026-11&by=plan", headers=auth)
    assert by_plan.status_code == 200, by_plan.json
    validate(by_plan, "SegmentReport")
    segments = {s["segment"]: s["months"] for s in by_plan.json["segments"]}
    assert segments["price_basic"][1]["churn"] == "-50.00"
    assert segments["price_pro"][1]["new"] == "100.00"
    assert by_plan.json["total"][1]["expansion"] == "50.00"
    assert [s["closing_mrr"] for s in by_plan.json["sums"]] == ["27500.00", "27550.00"]
    only = client.get(
        "/api/mrr?from=2026-10&to=2026-10&where=plan=price_pro&where=plan=price_basic",
        headers=auth,
    )
    assert [s["segment"] for s in only.json["segments"]] == ["price_basic", "price_pro"]
    as_csv = client.get("/api/mrr?from=2026-10&to=2026-10&by=country&format=csv", headers=auth)
    rows = list(csv.DictReader(io.StringIO(as_csv.get_data(as_text=True))))
    assert {r["segment"]: r["customers"] for r in rows} == {"": "300", "DE": "200", "US": "100"}
    bad = client.get("/api/mrr?from=2026-10&to=2026-10&by=colour", headers=auth)
    assert bad.status_code == 400 and bad.json["field"] == "by"
    cohorts = client.get("/api/cohorts?from=2026-10&to=2026-11&metric=mrr", headers=auth)
    assert cohorts.status_code == 200, cohorts.json
    validate(cohorts, "CohortTable")
    [october] = cohorts.json["cohorts"]
    assert (october["customers"], october["starting_mrr"]) == (300, "27500.00")
    assert october["months"][1]["mrr_share"] == "1.0018"
    months = client.get("/api/customers/months?from=2026-10&to=2026-11", headers=auth)
    validate(months, "CustomerMonths")
    assert len(months.json["rows"]) == 600
    first = months.json["rows"][1]
    assert (first["customer_id"], first["month"], first["category"], first["plans"]) == (
        "cus_000",
        "2026-11",
        "expansion",
        "price_pro",
    )
    top = client.get("/api/customers/top?month=2026-11&limit=3", headers=auth)
    validate(top, "TopCustomers")
    assert [t["active_mrr"] for t in top.json["top"]] == ["200.00"] * 3
    assert top.json["top10_share"] == "0.0726"
    assert client.get("/api/cohorts?from=2026-10&to=2026-11").status_code == 401
