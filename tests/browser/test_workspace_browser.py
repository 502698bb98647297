"""The workspace in headless Chromium (Debian's chromium and chromium-driver, driven by
Selenium): an accountant's path from the overview to a Stripe event and back out.

Skipped, saying so, when Chromium or its driver is not installed. Screenshots of every page go
to tests/artefacts/screenshots/ (gitignored).
"""

from __future__ import annotations

import re
import shutil
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from werkzeug.serving import make_server

from ingest.app import create_app
from ledger.settings import Settings
from ledger.storage.db import make_engine
from tests.conftest import REDIS_URL, WEBHOOK_SECRET
from tests.support.databases import Templates
from tests.support.workspace import PASSWORD, add_user, load_ledger

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
DRIVER = shutil.which("chromedriver")
pytestmark = [
    pytest.mark.skipif(
        CHROMIUM is None or DRIVER is None,
        reason="Chromium or chromedriver not installed (apt-get install chromium chromium-driver): "
        "browser tests skipped",
    ),
    pytest.mark.xdist_group("browser"),  # under pytest-xdist, one worker: one server
]
SHOTS = Path(__file__).resolve().parent.parent / "artefacts" / "screenshots"
FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--window-size=1366,1000",
)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    templates = Templates(tmp_path_factory.mktemp("browser"))
    url = templates.sqlite_copy()
    engine = make_engine(url)
    load_ledger(engine)
    add_user(engine, "ann@example.com", "admin")
    settings = Settings(
        database_url=url,
        redis_url=REDIS_URL,
        webhook_secrets=(WEBHOOK_SECRET,),
        stripe_api_key=None,
        stripe_api_base=None,
        api_token="browser-" + uuid.uuid4().hex,
        queue_name=f"test-{uuid.uuid4().hex[:10]}",
        secret_key=uuid.uuid4().hex,
    )
    httpd = make_server("127.0.0.1", 0, create_app(settings), threaded=True)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_port}"
    httpd.shutdown()
    engine.dispose()


@pytest.fixture
def browser() -> Iterator[Any]:
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for flag in FLAGS:
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(str(DRIVER)), options=options)
    driver.implicitly_wait(5)
    yield driver
    driver.quit()


def shot(driver: Any, name: str) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    height = driver.execute_script("return document.documentElement.scrollHeight")
    driver.set_window_size(1366, min(max(int(height), 800), 6000))
    driver.save_screenshot(str(SHOTS / f"{name}.png"))
    driver.set_window_size(1366, 1000)


def console_errors(driver: Any) -> list[str]:
    return [e["message"] for e in driver.get_log("browser") if e["level"] == "SEVERE"]


def wait_for_url(driver: Any, pattern: str) -> None:
    """Until the page a click started loading is the one whose URL matches `pattern`."""
    from selenium.webdriver.support.ui import WebDriverWait

    WebDriverWait(driver, 10).until(lambda d: re.search(pattern, d.current_url) is not None)


def sign_in(driver: Any, base: str) -> None:
    from selenium.webdriver.common.by import By

    driver.get(f"{base}/sign-in")
    driver.find_element(By.ID, "email").send_keys("ann@example.com")
    driver.find_element(By.ID, "password").send_keys(PASSWORD)
    driver.find_element(By.ID, "sign-in").click()
    wait_for_url(driver, r"/overview")


def test_from_the_overview_to_a_stripe_event_and_out(server: str, browser: Any) -> None:
    from selenium.webdriver.common.by import By

    errors: list[str] = []
    browser.get(f"{server}/")
    assert "/sign-in" in browser.current_url
    shot(browser, "01-sign-in")
    sign_in(browser, server)
    assert browser.find_element(By.ID, "last-complete").is_displayed()
    browser.get(f"{server}/?currency=usd&from=2025-01&to=2025-12")
    shot(browser, "02-overview")
    errors += console_errors(browser)

    browser.get(f"{server}/bridge?currency=usd&from=2025-02&to=2025-07")
    shot(browser, "03-bridge")
    errors += console_errors(browser)
    cell = browser.find_element(By.CSS_SELECTOR, 'a.cell[data-category="expansion"]')
    shown = cell.text
    cell.click()
    wait_for_url(browser, r"/entries\?")
    total = browser.find_element(By.CSS_SELECTOR, "[data-total-minor]")
    assert total.text == shown  # the list adds up to the cell it came from
    shot(browser, "04-entries")
    errors += console_errors(browser)

    browser.find_element(By.CSS_SELECTOR, "#entries td.id a").click()
    wait_for_url(browser, r"/entries/\d+$")
    event_id = browser.find_element(By.CSS_SELECTOR, ".event-id code").text
    assert event_id.startswith("evt_")
    raw = browser.find_element(By.CSS_SELECTOR, "pre.raw-json").text
    assert f'"id": "{event_id}"' in raw and '"type": "customer.subscription.' in raw
    shot(browser, "05-entry")
    errors += console_errors(browser)

    browser.find_element(By.ID, "customer-link").click()
    wait_for_url(browser, r"/customers/cus_")
    assert browser.find_element(By.ID, "subscriptions").is_displayed()
    shot(browser, "06-customer")
    errors += console_errors(browser)

    browser.get(f"{server}/customers?month=2025-06")
    shot(browser, "07-customers")
    browser.get(f"{server}/data-quality")
    shot(browser, "08-data-quality")
    browser.get(f"{server}/entries/999999")
    shot(browser, "09-not-found")
    errors += [e for e in console_errors(browser) if "404" not in e]

    browser.find_element(By.ID, "sign-out").click()
    wait_for_url(browser, r"/sign-in$")
    browser.get(f"{server}/customers")
    assert "/sign-in" in browser.current_url
    assert errors == []


def test_a_post_without_the_csrf_token_is_refused(server: str, browser: Any) -> None:
    from selenium.webdriver.common.by import By

    sign_in(browser, server)
    browser.get(f"{server}/data-quality")
    # A form posted from the page with its token removed, as a forged request would be.
    browser.execute_script(
        "var f = document.querySelector('form.signout');"
        "f.querySelector('[name=csrf_token]').remove(); f.submit();"
    )
    wait_for_url(browser, r"/sign-out$")
    assert "CSRF" in browser.find_element(By.TAG_NAME, "main").text
    browser.get(f"{server}/")
    assert "/sign-in" not in browser.current_url  # the forged sign-out did nothing


def test_the_forecast_continues_the_mrr_chart(server: str, browser: Any) -> None:
    from selenium.webdriver.common.by import By

    sign_in(browser, server)
    browser.get(f"{server}/forecast?currency=usd")
    chart = browser.find_element(By.ID, "forecast-chart")
    assert chart.find_elements(By.CSS_SELECTOR, "polyline.c-forecast")
    assert chart.find_elements(By.CSS_SELECTOR, "polyline.c-committed")
    rows = browser.find_elements(By.CSS_SELECTOR, "#forecast-table tbody tr")
    assert len(rows) == 12
    shot(browser, "10-forecast")
    browser.get(f"{server}/?currency=usd")
    assert browser.find_elements(By.CSS_SELECTOR, "#mrr-chart polyline.c-forecast")
    shot(browser, "11-overview-forecast")
    assert console_errors(browser) == []


def test_segments_cohorts_and_the_customer_table(server: str, browser: Any) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select

    sign_in(browser, server)
    browser.get(f"{server}/segments?by=plan&currency=usd&from=2025-01&to=2025-12")
    assert browser.find_element(By.ID, "segments-chart").is_displayed()
    rows = browser.find_elements(By.CSS_SELECTOR, "#segments-month tbody tr")
    assert len(rows) >= 3  # at least two plans and the total
    shot(browser, "12-segments-by-plan")
    errors = console_errors(browser)
    Select(browser.find_element(By.NAME, "by")).select_by_value("interval")
    wait_for_url(browser, r"by=interval")
    shot(browser, "13-segments-by-interval")
    errors += console_errors(browser)

    browser.get(f"{server}/cohorts?currency=usd&from=2025-01&to=2025-12")
    cells = browser.find_elements(By.CSS_SELECTOR, "#cohorts td[class^=heat-]")
    assert cells and any(c.get_attribute("class") == "heat-10" for c in cells)
    shot(browser, "14-cohorts")
    errors += console_errors(browser)
    browser.get(f"{server}/cohorts?currency=usd&from=2025-01&to=2025-12&metric=mrr&by=plan")
    shot(browser, "15-cohorts-mrr-by-plan")
    errors += console_errors(browser)

    browser.get(f"{server}/customers?month=2025-12&currency=usd")
    assert browser.find_element(By.ID, "concentration-usd").is_displayed()
    link = browser.find_element(By.ID, "customers-csv").get_attribute("href")
    assert link is not None and "/customers.csv?" in link
    shot(browser, "16-customers-with-plans")
    errors += console_errors(browser)
    assert errors == []
