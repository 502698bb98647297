"""Workspace pages over a ledger fed through the real pipeline: every figure opens onto its
entries, and their total is the figure; bad URLs are 404s that say what was not found."""

from __future__ import annotations

import csv
import io
import json
import logging
import re
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from flask.testing import FlaskClient
from rq import Queue
from sqlalchemy import Engine, func, select

from ingest.app import create_app
from ingest.pages import common
from ledger.processing import process_batch
from ledger.reporting import customer_months, customers, fx, queries
from ledger.reporting.balances import effects
from ledger.reporting.customers import CustomerLine
from ledger.reporting.modes import choose_mode
from ledger.reporting.reports import build_report, report_query
from ledger.rules.entries import Category
from ledger.rules.money import to_major
from ledger.rules.months import Month
from ledger.settings import Settings
from ledger.storage import inbox
from ledger.storage.schema import InboxStatus, mrr_forecasts
from tests.support.pipeline import subscription_event
from tests.support.workspace import add_user, csrf_token, load_ledger, sign_in

CELL = re.compile(
    r'data-category="([a-z_]+)" data-month="(\d{4}-\d{2})" href="([^"]+)">'
    r'<span class="num[^"]*">([^<]+)</span>'
)
CHANGE = re.compile(
    r'<div class="label">([^<]+)</div>\s*<div class="value">.*?</div>\s*'
    r'<div class="change">\s*<span class="num (\w+)"[^>]*>([^<]+)<',
    re.S,
)
TOTAL = re.compile(r'data-total-currency="([a-z]{3})" data-total-minor="(-?\d+)"')


@pytest.fixture
def client(settings: Settings, engine: Engine) -> FlaskClient:
    load_ledger(engine)
    add_user(engine, "ann@example.com", "admin")
    add_user(engine, "vic@example.com", "viewer")
    found = create_app(settings).test_client()
    assert sign_in(found, "ann@example.com").status_code == 302
    return found


def test_every_bridge_cell_opens_onto_entries_that_sum_to_it(
    client: FlaskClient, engine: Engine
) -> None:
    page = client.get("/bridge?currency=usd&from=2025-01&to=2025-12")
    assert page.status_code == 200
    cells = CELL.findall(page.get_data(as_text=True))
    report = build_report(engine, report_query("2025-01", "2025-12", currency="usd"))
    expected = {
        (str(b.month), c.value): getattr(b, c.value)
        for b in report.main.months
        for c in Category
        if getattr(b, c.value)
    }
    assert {(month, category) for category, month, _, _ in cells} == set(expected)
    assert {category for category, *_ in cells} >= {"new", "expansion", "contraction", "churn"}
    for category, month, href, _shown in cells:
        listed = client.get(href.replace("&amp;", "&"))
        assert listed.status_code == 200
        totals = TOTAL.findall(listed.get_data(as_text=True))
        assert totals == [("usd", str(expected[(month, category)]))], (month, category)


def test_entries_filter_pages_and_csv_agree(client: FlaskClient, engine: Engine) -> None:
    args = "currency=usd"
    page = client.get(f"/entries?{args}").get_data(as_text=True)
    [(_, total)] = TOTAL.findall(page)
    count = int(re.search(r"([\d,]+) entr(?:y|ies)", page).group(1).replace(",", ""))  # type: ignore[union-attr]
    rows = list(
        csv.DictReader(io.StringIO(client.get(f"/entries.csv?{args}").get_data(as_text=True)))
    )
    assert len(rows) == count and count > 50
    assert sum(Decimal(r["amount"]) for r in rows) == to_major(int(total), "usd")
    seen: list[int] = []
    while True:
        ids = [int(x) for x in re.findall(r'href="/entries/(\d+)"', page)]
        assert len(ids) <= 50
        seen += ids
        following = re.search(r'id="next-page" href="([^"]+)"', page)
        if following is None:
            break
        page = client.get(following.group(1).replace("&amp;", "&")).get_data(as_text=True)
    assert seen == sorted(set(seen)) and len(seen) == count == len(rows)


def test_an_entry_shows_its_arithmetic_and_stripe_event(
    client: FlaskClient, engine: Engine
) -> None:
    with engine.connect() as conn:
        rows, _ = queries.page(conn, queries.LedgerFilter(category=Category.EXPANSION), limit=1)
    entry = rows[0]
    page = client.get(f"/entries/{entry.id}").get_data(as_text=True)
    assert entry.source_event_id in page
    assert f"https://dashboard.stripe.com/test/events/{entry.source_event_id}" in page
    assert "&#34;customer.subscription." in page  # raw JSON, escaped
    assert "explanation:" in page and f"/customers/{entry.customer_id}" in page


def test_customers_are_searchable_and_names_escaped(client: FlaskClient) -> None:
    listed = client.get("/customers?month=2025-06").get_data(as_text=True)
    assert "&lt;b&gt;Customer&lt;/b&gt; 3 &amp; Co" in listed and "<b>Customer</b>" not in listed
    found = client.get("/customers?month=2025-06&q=billing3@").get_data(as_text=True)
    assert found.count('href="/customers/cus_') == 1
    by_id = client.get("/customers?month=2025-06&q=x000004").get_data(as_text=True)
    assert 'href="/customers/cus_5x000004"' in by_id
    sorted_page = client.get("/customers?month=2025-06&sort=customer&dir=asc").get_data(
        as_text=True
    )
    table = sorted_page.split('id="customers"')[1].split("</table>")[0]
    ids = re.findall(r'href="/customers/(cus_[^"]+)"', table)
    assert ids == sorted(ids)


def test_a_customer_page_has_history_subscriptions_entries_and_events(
    client: FlaskClient,
) -> None:
    page = client.get("/customers/cus_5x000002").get_data(as_text=True)
    for part in ('id="subscriptions"', 'id="customer-entries"', 'id="customer-events"', "<svg"):
        assert part in page
    assert "customer.created" in page and "billing2@example.com" in page


def test_overview_headline_is_the_report(client: FlaskClient, engine: Engine) -> None:
    page = client.get("/?currency=usd").get_data(as_text=True)
    assert 'id="mrr-chart"' in page and 'id="movements-chart"' in page
    assert "Last complete month" in page and "Month to date" in page
    assert "<table" in page  # the figures behind the charts, readable without JavaScript


def test_the_overview_draws_the_kept_forecast_and_never_makes_one(
    client: FlaskClient, engine: Engine
) -> None:
    # Making the month's forecast backtests the whole ledger: the overview only reads it back.
    page = client.get("/?currency=usd").get_data(as_text=True)
    assert "c-forecast" not in page and 'id="mrr-ahead"' not in page
    with engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(mrr_forecasts)).scalar_one() == 0
    assert client.get("/forecast?currency=usd").status_code == 200  # makes and keeps it
    page = client.get("/?currency=usd").get_data(as_text=True)
    assert "c-forecast" in page and 'id="mrr-ahead"' in page


def test_a_rise_of_delinquent_mrr_reads_as_bad_news(
    settings: Settings, engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    # In October the only customer's payment fails: MRR falls and delinquent MRR rises by
    # $100.00, and both are worse than in September (the sign alone would call one good).
    events = [
        subscription_event("evt_1", "customer.subscription.created", 1_757_030_400, sub_id="sub_a"),
        subscription_event(
            "evt_2",
            "customer.subscription.updated",
            1_760_054_400,
            sub_id="sub_a",
            status="past_due",
        ),
    ]
    with engine.begin() as conn:
        stored = inbox.store_events(conn, [(json.dumps(e), e) for e in events])
    process_batch(engine, [s.inbox_id for s in stored], max_attempts=4)
    add_user(engine, "ann@example.com")
    monkeypatch.setattr(common, "now", lambda: datetime(2025, 11, 15, tzinfo=UTC))
    client = create_app(settings).test_client()
    sign_in(client, "ann@example.com")
    page = client.get("/?currency=usd").get_data(as_text=True)
    complete = page[page.index('id="last-complete"') : page.index('id="month-to-date"')]
    changes = {label: (tone, text) for label, tone, text in CHANGE.findall(complete)}
    assert changes["MRR"] == ("worse", "-$100.00")
    assert changes["Delinquent MRR"] == ("worse", "+$100.00")
    assert changes["Customers"] == ("worse", "-1")


@pytest.mark.parametrize(
    "path, says",
    [
        ("/entries?month=2025-13", "no such month"),
        ("/entries?category=upgrade", "no such category"),
        ("/entries?currency=xyz", "no entries in XYZ"),
        ("/entries?currency=%3Cscript%3E", "not a 3-letter currency code"),
        ("/entries?customer=cus_nobody", "no customer cus_nobody"),
        ("/entries/999999", "no ledger entry 999999"),
        ("/entries/99999999999999999999999", "no ledger entry"),
        ("/entries?after=abc", "no such page"),
        ("/customers/cus_nobody", "no customer cus_nobody"),
        ("/customers?month=nope", "no such month"),
        ("/customers?sort=evil", "no such column"),
        ("/bridge?currency=eur", "no entries in EUR"),
        ("/?from=2025-1", "no such month"),
        ("/?reporting=eur", "no exchange rates for EUR"),
        ("/nowhere", "not found"),
    ],
)
def test_bad_input_in_a_url_is_a_404_saying_what(client: FlaskClient, path: str, says: str) -> None:
    response = client.get(path)
    assert response.status_code == 404, path
    assert says.lower() in response.get_data(as_text=True).lower()


def test_failed_rows_show_a_banner_and_an_admin_queues_them_again(
    settings: Settings,
    client: FlaskClient,
    engine: Engine,
    queue: Queue,
    caplog: pytest.LogCaptureFixture,
) -> None:
    # A worker gave up on this event (as it does when tiers or coupon terms cannot be fetched).
    bad = subscription_event(
        "evt_bad_1", "customer.subscription.updated", 1_740_000_000, customer="cus_5x000001"
    )
    with engine.begin() as conn:
        stored = inbox.store_events(conn, [(json.dumps(bad), bad)])
        inbox.mark(
            conn, [stored[0].inbox_id], InboxStatus.FAILED, "price_1 tiers could not be fetched"
        )
    page = client.get("/bridge").get_data(as_text=True)
    assert 'id="quality-banner"' in page and "1 stored event failed" in page
    assert "cus_5x000001" in page
    listed = client.get("/data-quality").get_data(as_text=True)
    assert "evt_bad_1" in listed
    assert f'name="inbox_id" value="{stored[0].inbox_id}" checked' in listed  # failed: ticked
    viewer = create_app(settings).test_client()
    sign_in(viewer, "vic@example.com")
    token = csrf_token(viewer, "/data-quality")
    form = {"inbox_id": str(stored[0].inbox_id)}
    assert (
        viewer.post("/data-quality/requeue", data=form | {"csrf_token": token}).status_code == 403
    )
    assert client.post("/data-quality/requeue", data=form).status_code == 400  # no CSRF token
    token = csrf_token(client, "/data-quality")
    with caplog.at_level(logging.INFO, logger="ingest.pages.quality"):
        done = client.post("/data-quality/requeue", data=form | {"csrf_token": token})
    assert done.status_code == 302
    with engine.connect() as conn:
        row = inbox.get(conn, stored[0].inbox_id)
    assert row is not None and row.status == "pending"
    assert queue.count == 1
    assert re.search(r"user \d+ queued 1 failed inbox rows", caplog.text)
    assert "ann@example.com" not in caplog.text  # who did it, by id: no personal data in logs


def test_the_customer_listing_sorts_counts_and_pages_in_the_database(engine: Engine) -> None:
    load_ledger(engine)
    with engine.begin() as conn:
        customer_months.catch_up(conn)
    month = Month.parse("2025-06")
    end = month.next().start()
    balances: dict[tuple[str, str], tuple[int, int]] = {}
    first_paid: dict[tuple[str, str], Month] = {}
    with engine.connect() as conn:
        mode = choose_mode(conn, None).livemode  # as the page chooses it
        for row in queries.stream(conn, queries.LedgerFilter()):
            if row.effective_at >= end:
                continue
            key = (row.customer_id, row.currency)
            active, delinquent = effects(row.category.value, row.amount)
            before = balances.get(key, (0, 0))
            balances[key] = (before[0] + active, before[1] + delinquent)
            in_effect = row.reversal_of is None and row.reversed_by is None
            if row.category is Category.NEW and in_effect:
                paid = Month.of(row.effective_at)
                first_paid[key] = min(paid, first_paid.get(key, paid))
        expected = [
            CustomerLine(cid, cur, a, d, first_paid.get((cid, cur)))
            for (cid, cur), (a, d) in balances.items()
        ]
        assert len(expected) > 5
        python_keys: dict[str, Callable[[CustomerLine], tuple[Any, ...]]] = {
            "customer": lambda line: (line.customer_id, line.currency),
            "active": lambda line: (line.active, line.customer_id, line.currency),
            "delinquent": lambda line: (line.delinquent, line.customer_id, line.currency),
            "status": lambda line: (line.status, line.customer_id, line.currency),
            "first_paid": lambda line: (
                line.first_paid.index if line.first_paid else -1,
                line.customer_id,
                line.currency,
            ),
        }
        for sort, sort_key in python_keys.items():
            for descending in (False, True):
                whole = customers.listing(
                    conn, month, livemode=mode, sort=sort, descending=descending, limit=10_000
                )
                assert whole.lines == sorted(expected, key=sort_key, reverse=descending), sort
                assert whole.total == len(expected)
                pages = [
                    customers.listing(
                        conn,
                        month,
                        livemode=mode,
                        sort=sort,
                        descending=descending,
                        offset=n,
                        limit=4,
                    )
                    for n in range(0, len(expected) + 4, 4)
                ]
                assert [line for p in pages for line in p.lines] == whole.lines
                assert {p.total for p in pages} == {len(expected)}
        needle = expected[0].customer_id[-3:].upper()
        named = expected[-1].customer_id
        found = customers.listing(
            conn, month, livemode=mode, search=needle, named=[named], limit=10_000
        )
        assert {(line.customer_id, line.currency) for line in found.lines} == {
            (line.customer_id, line.currency)
            for line in expected
            if needle.lower() in line.customer_id.lower() or line.customer_id == named
        }
        assert found.total == len(found.lines) >= 1


def test_segments_cohorts_and_the_customer_exports(client: FlaskClient, engine: Engine) -> None:
    report = build_report(engine, report_query("2025-01", "2025-12", currency="usd"))
    page = client.get("/segments?by=plan&currency=usd&from=2025-01&to=2025-12")
    assert page.status_code == 200
    text = page.get_data(as_text=True)
    assert 'id="segments-chart"' in text and "Segments added up" in text
    december = report.main.months[-1]
    closing = to_major(december.closing_mrr, "usd")
    assert text.count(f"${closing:,.2f}") >= 2  # the segments added up, and the bridge's total
    for by in ("product", "interval", "country", "metadata.tier"):
        assert client.get(f"/segments?by={by}&currency=usd").status_code == 200
    assert client.get("/segments?by=colour").status_code == 404
    cohorts = client.get("/cohorts?currency=usd&from=2025-01&to=2025-12&metric=mrr")
    assert cohorts.status_code == 200
    assert 'id="cohorts"' in cohorts.get_data(as_text=True)
    assert client.get("/cohorts?by=plan&currency=usd").status_code == 200
    assert client.get("/cohorts?metric=ltv").status_code == 404
    listing = client.get("/customers?month=2025-12&currency=usd").get_data(as_text=True)
    assert "Concentration in USD" in listing and "customers.csv" in listing
    table = client.get("/customers.csv?month=2025-12&currency=usd")
    rows = list(csv.DictReader(io.StringIO(table.get_data(as_text=True))))
    total = sum(Decimal(r["active_mrr"]) for r in rows)
    assert total == closing
    months = client.get("/customers-months.csv?from=2025-01&to=2025-12&currency=usd")
    per_month: dict[str, Decimal] = {}
    for row in csv.DictReader(io.StringIO(months.get_data(as_text=True))):
        per_month[row["month"]] = per_month.get(row["month"], Decimal(0)) + Decimal(
            row["active_mrr"]
        )
    for b in report.main.months:
        assert per_month.get(str(b.month), Decimal(0)) == to_major(b.closing_mrr, "usd")


def test_test_data_shown_unasked_says_so_and_the_chosen_mode_is_carried_in_links(
    client: FlaskClient,
) -> None:
    page = client.get("/bridge?currency=usd&from=2025-01&to=2025-03").get_data(as_text=True)
    assert 'id="mode-banner"' in page and "Test-mode data: no live data yet" in page
    asked = client.get("/bridge?currency=usd&from=2025-01&to=2025-03&mode=test")
    text = asked.get_data(as_text=True)
    assert 'id="mode-banner"' not in text  # asked for: nothing to warn about
    links = re.findall(r'href="(/entries\?[^"]+)"', text)
    assert links and all("mode=test" in link for link in links)
    live = client.get("/bridge?currency=usd&from=2025-01&to=2025-03&mode=live")
    assert live.status_code == 404  # no live figures in usd: the ledger holds test data only
    assert client.get("/bridge?mode=staging").status_code == 404


def test_the_forecast_page_converts_into_a_reporting_currency(
    client: FlaskClient, engine: Engine
) -> None:
    plain = client.get("/forecast?currency=usd").get_data(as_text=True)
    assert 'name="reporting"' not in plain  # no rates loaded: nothing to convert into
    month_start = Month.of(datetime.now(UTC)).start().date()
    day = month_start - timedelta(days=40)
    with engine.begin() as conn:  # in the base currency: a usd is worth 0.80, a gbp 1.60
        fx.store_rates(
            conn, [fx.Rate(day, "usd", Decimal("0.8")), fx.Rate(day, "gbp", Decimal("1.6"))]
        )
    page = client.get("/forecast?currency=usd&reporting=gbp").get_data(as_text=True)
    assert 'name="reporting"' in page and '<option value="gbp" selected>' in page
    table = page[
        page.index('id="forecast-table"') : page.index(
            "</table>", page.index('id="forecast-table"')
        )
    ]
    assert "£" in table and "$" not in table
    unconverted = client.get("/forecast?currency=usd").get_data(as_text=True)
    usd_table = unconverted[unconverted.index('id="forecast-table"') :]
    assert "$" in usd_table[: usd_table.index("</table>")]
    assert client.get("/forecast?currency=usd&reporting=xyz").status_code == 404
