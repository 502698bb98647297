"""`mrr report`, `mrr ledger`, `mrr replay`, `mrr fx load` through click's runner."""

from __future__ import annotations

import csv
import io
import json
from datetime import UTC, datetime
from pathlib import Path

from click.testing import CliRunner, Result
from sqlalchemy import Engine

from ledger.rules.entries import Category, DesiredEntry
from ledger.rules.sources import Unit
from ledger.storage import store
from scripts.cli import main

JAN = datetime(2026, 1, 5, tzinfo=UTC)
MONTH_KEYS = [
    "month",
    "opening_mrr",
    "new",
    "reactivation",
    "expansion",
    "contraction",
    "churn",
    "delinquent",
    "recovered",
    "closing_mrr",
    "net_new_mrr",
    "opening_delinquent_mrr",
    "delinquent_churn",
    "delinquent_change",
    "delinquent_mrr",
    "customers",
    "arpu",
    "customer_churn_rate",
    "gross_mrr_churn_rate",
    "net_mrr_churn_rate",
    "net_revenue_retention",
    "quick_ratio",
    "ltv",
]


def run(db_url: str, *args: str) -> Result:
    return CliRunner().invoke(main, list(args), env={"DATABASE_URL": db_url})


def seed(engine: Engine, currency: str = "usd", customers: int = 3) -> None:
    with engine.begin() as conn:
        for i in range(customers):
            cid = f"cus_{currency}_{i}"
            amount = 5000 * (i + 1)
            entry = DesiredEntry(cid, "sub", Category.NEW, currency, amount, JAN, f"evt_{cid}")
            store.apply(conn, [store.DesiredLedger(Unit(cid, "", False), [entry], f"evt_{cid}")])


def test_report_json_has_exactly_the_documented_shape(db_url: str, engine: Engine) -> None:
    seed(engine)
    result = run(db_url, "report", "--from", "2025-12", "--to", "2026-02", "--format", "json")
    assert result.exit_code == 0, result.output
    document = json.loads(result.stdout)
    # Every entry here is test mode (no inbox row says otherwise): shown, and said so.
    assert list(document) == ["currency", "from", "to", "months", "mode", "source", "note"]
    assert (document["mode"], document["source"]) == ("test", None)
    assert "note: Test-mode data: no live data yet" in result.stderr
    assert (document["currency"], document["from"], document["to"]) == (
        "usd",
        "2025-12",
        "2026-02",
    )
    dec, jan, feb = document["months"]
    assert all(list(m) == MONTH_KEYS for m in document["months"])
    assert dec["opening_mrr"] == "0.00" and dec["arpu"] is None and dec["customers"] == 0
    assert (jan["new"], jan["closing_mrr"], jan["customers"], jan["arpu"]) == (
        "300.00",
        "300.00",
        3,
        "100.00",
    )
    assert (feb["opening_mrr"], feb["new"], feb["closing_mrr"]) == ("300.00", "0.00", "300.00")


def test_report_csv_and_table(db_url: str, engine: Engine) -> None:
    seed(engine)
    result = run(db_url, "report", "--from", "2026-01", "--to", "2026-01", "--format", "csv")
    assert result.exit_code == 0, result.output
    rows = list(csv.reader(io.StringIO(result.stdout)))
    assert rows[0] == ["currency", *MONTH_KEYS]
    assert rows[1][:3] == ["usd", "2026-01", "0.00"]
    table = run(db_url, "report", "--from", "2026-01", "--to", "2026-02")
    assert table.exit_code == 0 and "closing_mrr" in table.output and "300.00" in table.output


def test_several_currencies_without_a_choice_are_listed(db_url: str, engine: Engine) -> None:
    seed(engine, "usd")
    seed(engine, "eur", 1)
    result = run(db_url, "report", "--from", "2026-01", "--to", "2026-01")
    assert result.exit_code == 2
    assert "--currency" in result.output and "eur, usd" in result.output
    chosen = run(db_url, "report", "--from", "2026-01", "--to", "2026-01", "--currency", "EUR")
    assert chosen.exit_code == 0 and "50.00" in chosen.output


def test_bad_arguments_name_the_problem(db_url: str) -> None:
    cases = [
        (["report", "--from", "2025-13", "--to", "2026-01"], ["--from", "2025-13"]),
        (["report", "--from", "2026-03", "--to", "2026-01"], ["--from", "after"]),
        (["report", "--from", "2026-01", "--to", "2026-01", "--currency", "us"], ["--currency"]),
        (["report", "--from", "2026-01", "--to", "2026-01", "--as-of", "yesterday"], ["--as-of"]),
        (["ledger", "--category", "upsell"], ["--category", "upsell"]),
        (["ledger", "--month", "2026-1"], ["--month", "YYYY-MM"]),
    ]
    for args, words in cases:
        result = run(db_url, *args)
        assert result.exit_code == 2, (args, result.output)
        for word in words:
            assert word in result.output, (args, result.output)


def test_ledger_csv_opens_in_a_spreadsheet(db_url: str, engine: Engine) -> None:
    seed(engine)
    result = run(db_url, "ledger", "--format", "csv", "--customer", "cus_usd_1")
    assert result.exit_code == 0, result.output
    rows = list(csv.DictReader(io.StringIO(result.stdout)))
    assert len(rows) == 1
    assert "note: Test-mode data: no live data yet" in result.stderr
    assert rows[0]["effective_date"] == "2026-01-05" and rows[0]["amount"] == "100.00"
    assert rows[0]["source_event_id"] == "evt_cus_usd_1" and rows[0]["category"] == "new"
    as_json = json.loads(run(db_url, "ledger", "--format", "json", "--month", "2026-01").stdout)
    assert len(as_json["entries"]) == 3
    live = run(db_url, "ledger", "--format", "json", "--mode", "live").stdout
    assert json.loads(live)["entries"] == []  # every entry here is test mode


def test_replay_and_fx_load(db_url: str, engine: Engine, tmp_path: Path) -> None:
    seed(engine)
    seed(engine, "eur", 1)
    assert "replayed 4" in run(db_url, "replay").output
    rates = tmp_path / "rates.csv"
    rates.write_text("date,currency,rate\n2026-01-01,eur,1.10\n")
    loaded = run(db_url, "fx", "load", str(rates))
    assert loaded.exit_code == 0 and "loaded 1 rates (eur)" in loaded.output
    result = run(
        db_url,
        "report",
        "--from",
        "2026-01",
        "--to",
        "2026-01",
        "--reporting-currency",
        "USD",
        "--format",
        "json",
    )
    assert result.exit_code == 0, result.output
    (jan,) = json.loads(result.stdout)["months"]
    assert jan["closing_mrr"] == "355.00" and jan["customers"] == 4
    rates.write_text("date,currency,rate\n2026-01-01,eur,-1\n")
    bad = run(db_url, "fx", "load", str(rates))
    assert bad.exit_code == 2 and "line 2" in bad.output


def test_report_by_account_prints_each_account_then_all_of_them(
    db_url: str, engine: Engine
) -> None:
    seed(engine)
    args = ["report", "--from", "2026-01", "--to", "2026-01", "--currency", "usd", "--by"]
    table = run(db_url, *args, "account")
    assert table.exit_code == 0, table.output
    assert "source default" in table.stdout and "all accounts" in table.stdout
    assert "the accounts add up to the consolidated figures" in table.stdout
    found = json.loads(run(db_url, *args, "account", "--format", "json").stdout)
    assert found["adds_up"] and [a["source"] for a in found["accounts"]] == ["default"]
    closing = found["consolidated"]["months"][0]["closing_mrr"]
    assert found["accounts"][0]["months"][0]["closing_mrr"] == closing
    rows = list(
        csv.DictReader(io.StringIO(run(db_url, *args, "account", "--format", "csv").stdout))
    )
    assert [r["source"] for r in rows] == ["default", "all"]
    refused = run(db_url, *args, "account", "--source", "acct_A1")
    assert refused.exit_code == 2 and "every account" in refused.output
