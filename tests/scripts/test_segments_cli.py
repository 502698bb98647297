"""`mrr report --by/--where`, `mrr cohorts`, `mrr customers` through click's runner."""

from __future__ import annotations

import csv
import io
import json
from decimal import Decimal

from click.testing import CliRunner, Result
from rq import Queue
from sqlalchemy import Engine

from ingest.app import create_app
from ledger.settings import Settings
from scripts.cli import main
from tests.conftest import WEBHOOK_SECRET
from tests.ledger.test_segments import article, article_events, at, process, sub_event
from tests.support.pipeline import drain
from tests.support.stripe_sign import signed


def run(db_url: str, *args: str) -> Result:
    return CliRunner().invoke(main, list(args), env={"DATABASE_URL": db_url})


def test_report_by_plan_prints_a_bridge_per_plan_and_says_why(db_url: str, engine: Engine) -> None:
    article(engine)
    result = run(db_url, "report", "--from", "2026-10", "--to", "2026-10", "--by", "plan")
    assert result.exit_code == 0, result.output
    text = result.output
    for block in ("USD total", "plan price_basic", "plan price_pro", "plan price_enterprise"):
        assert block in text
    assert "closing_mrr 27500.00" in text and "customers 300" in text
    assert "counts once in the total and once in each" in text
    found = run(
        db_url, "report", "--from", "2026-10", "--to", "2026-10", "--where", "plan=price_pro",
        "--format", "json",
    )  # fmt: skip
    assert found.exit_code == 0, found.output
    document = json.loads(found.output)
    assert list(document) == ["currency", "from", "to", "by", "where", "note", "total",
                              "segments", "sums"]  # fmt: skip
    assert document["total"][0]["closing_mrr"] == "27500.00"
    assert document["total"][0]["arpu"] == "91.67"
    [pro] = document["segments"]
    assert (pro["segment"], pro["months"][0]["closing_mrr"], pro["months"][0]["customers"]) == (
        "price_pro",
        "10000.00",
        100,
    )
    bad = run(db_url, "report", "--from", "2026-10", "--to", "2026-10", "--by", "colour")
    assert bad.exit_code == 2 and "'--by'" in bad.output and "not a dimension" in bad.output
    mixed = run(
        db_url, "report", "--from", "2026-10", "--to", "2026-10", "--by", "plan",
        "--where", "country=DE",
    )  # fmt: skip
    assert mixed.exit_code == 2 and "filter on the dimension reported" in mixed.output


def test_cohorts_and_customers(db_url: str, engine: Engine) -> None:
    process(
        engine,
        [
            sub_event("evt_a1", "created", at(2026, 1, 5), "cus_a", "basic"),
            sub_event("evt_b1", "created", at(2026, 1, 6), "cus_b", "pro"),
            sub_event("evt_b2", "deleted", at(2026, 2, 8), "cus_b", "pro", status="canceled"),
        ],
    )
    table = run(db_url, "cohorts", "--from", "2026-01", "--to", "2026-03")
    assert table.exit_code == 0, table.output
    assert "2026-01" in table.stdout and "50.0%" in table.stdout
    # Only test-mode events: shown, and said so apart from the figures.
    assert "no live data yet" in table.stderr and "no live data" not in table.stdout
    document = json.loads(
        run(db_url, "cohorts", "--from", "2026-01", "--to", "2026-03", "--metric", "mrr",
            "--format", "json").stdout
    )  # fmt: skip
    [january] = document["cohorts"]
    assert [m["mrr_share"] for m in january["months"]] == ["1.0000", "0.3333", "0.3333"]
    rows = list(
        csv.DictReader(io.StringIO(run(db_url, "customers", "--from", "2026-01", "--to",
                                       "2026-03").stdout))
    )  # fmt: skip
    assert [
        (r["customer_id"], r["month"], r["active_mrr"], r["category"], r["plans"]) for r in rows
    ] == [
        ("cus_a", "2026-01", "50.00", "new", "price_basic"),
        ("cus_a", "2026-02", "50.00", "", "price_basic"),
        ("cus_a", "2026-03", "50.00", "", "price_basic"),
        ("cus_b", "2026-01", "100.00", "new", "price_pro"),
        ("cus_b", "2026-02", "0.00", "churn", ""),
    ]
    top = json.loads(run(db_url, "customers", "--from", "2026-01", "--to", "2026-01", "--top",
                         "1").stdout)  # fmt: skip
    assert top["top"] == [{"customer_id": "cus_b", "active_mrr": "100.00"}]
    assert Decimal(top["top10_share"]) == Decimal("1.0000")


def test_the_articles_example_through_the_webhook_the_worker_and_report_by_plan(
    settings: Settings, queue: Queue
) -> None:
    client = create_app(settings).test_client()
    for body in article_events():
        payload, headers = signed(body, WEBHOOK_SECRET)
        assert client.post("/webhooks/stripe", data=payload, headers=headers).status_code == 200
    drain(queue, client)
    printed = run(
        settings.database_url, "report", "--from", "2026-10", "--to", "2026-10", "--by", "plan",
        "--format", "json",
    )  # fmt: skip
    assert printed.exit_code == 0, printed.output
    document = json.loads(printed.output)
    october = document["total"][0]
    assert (october["closing_mrr"], october["customers"], october["arpu"]) == (
        "27500.00",
        300,
        "91.67",
    )
    plans = {
        s["segment"]: (s["months"][0]["closing_mrr"], s["months"][0]["customers"],
                       s["months"][0]["arpu"])
        for s in document["segments"]
    }  # fmt: skip
    assert plans == {
        "price_basic": ("7500.00", 150, "50.00"),
        "price_pro": ("10000.00", 100, "100.00"),
        "price_enterprise": ("10000.00", 50, "200.00"),
    }
    assert document["sums"] == [
        {"month": "2026-10", "closing_mrr": "27500.00", "delinquent_mrr": "0.00", "customers": 300}
    ]
