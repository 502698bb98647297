"""The accountant API and page: auth, filters, cursor pages, CSV, OpenAPI, bad input."""

from __future__ import annotations

import csv
import io
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from flask.testing import FlaskClient
from jsonschema import Draft202012Validator
from sqlalchemy import Engine

from ingest.app import create_app
from ingest.openapi import document
from ledger.rules.entries import Category, DesiredEntry
from ledger.rules.sources import Unit
from ledger.settings import Settings
from ledger.storage import store

JAN = datetime(2026, 1, 5, tzinfo=UTC)


@pytest.fixture
def client(settings: Settings) -> FlaskClient:
    return create_app(settings).test_client()


@pytest.fixture
def auth(settings: Settings) -> dict[str, str]:
    return {"Authorization": f"Bearer {settings.api_token}"}


def seed(engine: Engine) -> None:
    """Five customers in January; cus_0's entry is later corrected (a reversal)."""
    with engine.begin() as conn:
        for i in range(5):
            cid = f"cus_{i}"
            e = DesiredEntry(cid, f"sub_{i}", Category.NEW, "usd", 1000 * (i + 1), JAN, f"evt_{i}")
            store.apply(conn, [store.DesiredLedger(Unit(cid, "", False), [e], f"evt_{i}")])
        fix = DesiredEntry("cus_0", "sub_0", Category.NEW, "usd", 1500, JAN, "evt_0")
        churn = DesiredEntry(
            "cus_0", "sub_0", Category.CHURN, "usd", -1500, JAN + timedelta(days=40), "evt_9"
        )
        store.apply(conn, [store.DesiredLedger(Unit("cus_0", "", False), [fix, churn], "evt_9")])


def validate(response: Any, schema_name: str) -> None:
    spec = document()
    validator = Draft202012Validator(
        {"$ref": f"#/components/schemas/{schema_name}", "components": spec["components"]}
    )
    validator.validate(response.json)


def test_the_api_needs_the_bearer_token(client: FlaskClient, auth: dict[str, str]) -> None:
    assert client.get("/api/mrr?from=2026-01&to=2026-01").status_code == 401
    wrong = client.get("/api/ledger", headers={"Authorization": "Bearer nope"})
    assert wrong.status_code == 401 and wrong.json["error"] == "bad_token"
    validate(wrong, "Error")
    for header in ("Basic abc", "Bearer", "Bearer t\u00e9st", "Bearer a b"):
        malformed = client.get("/api/ledger", headers={"Authorization": header})
        assert malformed.status_code == 400, header
        assert malformed.json["error"] == "malformed_token"
    assert client.get("/api/ledger", headers=auth).status_code == 200


def test_without_a_configured_token_the_api_is_refused(settings: Settings) -> None:
    client = create_app(replace(settings, api_token=None)).test_client()
    for path in ("/api/ledger", "/api/mrr?from=2026-01&to=2026-01", "/api/ledger/1"):
        response = client.get(path, headers={"Authorization": "Bearer anything"})
        assert response.status_code == 503 and response.json["error"] == "not_configured"


def test_mrr_matches_the_openapi_document(
    client: FlaskClient, auth: dict[str, str], engine: Engine
) -> None:
    seed(engine)
    response = client.get("/api/mrr?from=2025-12&to=2026-02", headers=auth)
    assert response.status_code == 200
    validate(response, "MrrReport")
    _dec, jan, feb = response.json["months"]
    assert (jan["closing_mrr"], jan["customers"], jan["arpu"]) == ("155.00", 5, "31.00")
    assert (feb["churn"], feb["customers"], feb["customer_churn_rate"]) == ("-15.00", 4, "0.2000")
    as_csv = client.get("/api/mrr?from=2026-01&to=2026-02&format=csv", headers=auth)
    rows = list(csv.reader(io.StringIO(as_csv.get_data(as_text=True))))
    assert as_csv.mimetype == "text/csv" and rows[0][:3] == ["currency", "month", "opening_mrr"]
    assert len(rows) == 3
    by_account = client.get("/api/mrr?from=2025-12&to=2026-02&by=account", headers=auth)
    validate(by_account, "AccountBreakdown")
    assert by_account.json["adds_up"] and by_account.json["mismatches"] == []
    [own] = by_account.json["accounts"]
    assert own["source"] == "default" and own["months"][1]["closing_mrr"] == "155.00"
    assert by_account.json["consolidated"]["months"][1]["closing_mrr"] == "155.00"
    refused = client.get("/api/mrr?from=2026-01&to=2026-01&by=account&source=default", headers=auth)
    assert refused.status_code == 400 and refused.json["field"] == "by"


def test_ledger_filters_pages_and_csv(
    client: FlaskClient, auth: dict[str, str], engine: Engine
) -> None:
    seed(engine)
    everything = client.get("/api/ledger", headers=auth)
    validate(everything, "LedgerPage")
    assert len(everything.json["entries"]) == 8 and everything.json["next_cursor"] is None
    seen: list[int] = []
    url = "/api/ledger?limit=3"
    while True:
        page = client.get(url, headers=auth)
        validate(page, "LedgerPage")
        seen += [e["id"] for e in page.json["entries"]]
        if page.json["next_cursor"] is None:
            break
        url = f"/api/ledger?limit=3&cursor={page.json['next_cursor']}"
    assert seen == [e["id"] for e in everything.json["entries"]]
    cus0 = client.get("/api/ledger?customer=cus_0&month=2026-01", headers=auth).json["entries"]
    assert [(e["category"], e["amount"]) for e in cus0] == [
        ("new", "10.00"),
        ("new", "-10.00"),
        ("new", "15.00"),
    ]
    assert cus0[0]["reversed_by"] == cus0[1]["id"] and cus0[1]["reversal_of"] == cus0[0]["id"]
    churns = client.get("/api/ledger?category=churn", headers=auth).json["entries"]
    assert [e["source_event_id"] for e in churns] == ["evt_9"]
    subs = client.get("/api/ledger?subscription=sub_3", headers=auth).json["entries"]
    assert [e["customer_id"] for e in subs] == ["cus_3"]
    as_csv = client.get("/api/ledger?format=csv&customer=cus_0", headers=auth)
    rows = list(csv.DictReader(io.StringIO(as_csv.get_data(as_text=True))))
    assert [r["amount"] for r in rows] == ["10.00", "-10.00", "15.00", "-15.00"]
    assert rows[0]["effective_date"] == "2026-01-05"


def test_one_entry_with_its_explanation_and_reversal(
    client: FlaskClient, auth: dict[str, str], engine: Engine
) -> None:
    seed(engine)
    first = client.get("/api/ledger?customer=cus_0", headers=auth).json["entries"][0]
    detail = client.get(f"/api/ledger/{first['id']}", headers=auth)
    validate(detail, "LedgerEntryDetail")
    assert detail.json["reversal"]["reversal_of"] == first["id"]
    assert detail.json["reversal"]["cause_event_id"] == "evt_9"
    other = client.get("/api/ledger?customer=cus_1", headers=auth).json["entries"][0]
    plain = client.get(f"/api/ledger/{other['id']}", headers=auth)
    assert plain.json["reversal"] is None
    missing = client.get("/api/ledger/999999", headers=auth)
    assert missing.status_code == 404
    validate(missing, "Error")


@pytest.mark.parametrize(
    ("path", "field"),
    [
        ("/api/mrr?from=2025-13&to=2026-01", "from"),
        ("/api/mrr?from=2026-03&to=2026-01", "from"),
        ("/api/mrr?to=2026-01", "from"),
        ("/api/mrr?from=2026-01&to=2026-01&currency=dollars", "currency"),
        ("/api/mrr?from=2026-01&to=2026-01&as_of=soon", "as_of"),
        ("/api/mrr?from=2026-01&to=2026-01&format=xml", "format"),
        ("/api/ledger?category=upsell", "category"),
        ("/api/ledger?month=2026-00", "month"),
        ("/api/ledger?limit=0", "limit"),
        ("/api/ledger?limit=abc", "limit"),
        ("/api/ledger?cursor=bm9wZQ", "cursor"),
        ("/api/ledger/abc", "entry_id"),
    ],
)
def test_bad_input_is_a_400_naming_the_problem(
    client: FlaskClient, auth: dict[str, str], path: str, field: str
) -> None:
    response = client.get(path, headers=auth)
    assert response.status_code == 400, response.get_data(as_text=True)
    assert response.json["field"] == field and response.json["reason"]
    validate(response, "Error")


INJECTIONS = [
    "' OR '1'='1",
    "1; DROP TABLE ledger_entries; --",
    "\x00",
    "cus_1\x00",
    "%",
    "_",
    "\u2028",
    '=HYPERLINK("http://x")',
    "x" * 300,
    "../../etc/passwd",
    "{{7*7}}",
    "<script>alert(1)</script>",
]


@pytest.mark.parametrize("value", INJECTIONS)
def test_injection_strings_in_every_filter_are_refused_or_match_nothing(
    client: FlaskClient, auth: dict[str, str], engine: Engine, value: str
) -> None:
    seed(engine)
    for name in ("month", "customer", "subscription", "category", "cursor", "limit", "format"):
        response = client.get("/api/ledger", query_string={name: value}, headers=auth)
        assert response.status_code in (200, 400), (name, value)
        if response.status_code == 200:
            assert response.json["entries"] == [], (name, value)
    for name in ("from", "to", "currency", "reporting_currency", "as_of", "format"):
        params = {"from": "2026-01", "to": "2026-01", "currency": "usd", name: value}
        response = client.get("/api/mrr", query_string=params, headers=auth)
        assert response.status_code == 400, (name, value)
    assert client.get(f"/api/ledger/{value}", headers=auth).status_code in (400, 404)


def test_openapi_document_is_served_and_valid(client: FlaskClient) -> None:
    from jsonschema import Draft202012Validator as V

    spec = client.get("/api/openapi.json").json
    assert spec["openapi"].startswith("3.1")
    assert set(spec["paths"]) == {
        "/api/mrr",
        "/api/mrr/committed",
        "/api/mrr/forecast",
        "/api/mrr/forecast/backtest",
        "/api/cohorts",
        "/api/customers/months",
        "/api/customers/top",
        "/api/ledger",
        "/api/ledger/{entry_id}",
    }
    for schema in spec["components"]["schemas"].values():
        V.check_schema(schema)
