"""Loading the demo account (scripts/demo_data.py) into an empty ledger, through the pipeline.

Each event is signed with the webhook secret and POSTed to the real webhook (the Flask app, in
this process), which verifies it and stores it in the inbox; the rows are then processed by the
workers' batch path, as the backfill does (`ledger.backfill.store.process_rows`). Nothing
is written into the ledger except by the rules.

The story ends with the last complete month before today, so the workspace opens on a current
month; `demo_events` gives the same events for the same final month and seed.
"""

from __future__ import annotations

import json
import secrets
import time
from dataclasses import dataclass, replace
from datetime import UTC, datetime

from sqlalchemy import Engine

from ingest.app import create_app
from ledger.backfill.store import pending_ids_of, process_rows
from ledger.reporting.balances import MonthBalance
from ledger.reporting.reports import build_report, report_query
from ledger.rules.events import customer_of, parse_event
from ledger.rules.money import format_major
from ledger.rules.months import Month
from ledger.settings import Settings
from ledger.storage.db import make_engine
from scripts.demo_data import CURRENCIES, DEFAULT_SEED, demo_events, first_month
from scripts.stripe_objects import signature_header

BATCH = 1_000


class DemoFailed(RuntimeError):
    """The pipeline refused or failed a demo event: a bug in the demo or in the pipeline."""


@dataclass(frozen=True, slots=True)
class Loaded:
    final: Month
    customers: int
    events: int
    entries: int
    seconds: float  # the whole load, of which:
    deliver_seconds: float  # generating, signing and POSTing the events
    process_seconds: float  # processing the inbox rows
    closing: dict[str, MonthBalance]  # the final month, per currency


def describe(loaded: Loaded) -> list[str]:
    """What `mrr up` prints about the demo it loaded."""
    first = first_month(loaded.final)
    lines = [
        f"demo:     {loaded.customers} customers, {loaded.events:,} Stripe events from {first} "
        f"to {loaded.final}, signed and POSTed",
        f"          to the webhook, then processed by the workers' batch path "
        f"({loaded.entries:,} ledger entries) in {loaded.seconds:.1f} s",
    ]
    for currency, month in loaded.closing.items():
        mrr = format_major(month.closing_mrr, currency)
        figures = f"MRR {mrr} from {month.customers} customers"
        if month.arpu is not None:
            figures += f", ARPU {month.arpu:,f}"
        if month.delinquent_mrr:
            figures += f"; {format_major(month.delinquent_mrr, currency)} delinquent"
        lines.append(f"          {loaded.final}: {figures}")
    return lines


def last_complete_month(now: datetime) -> Month:
    return Month(Month.of(now).index - 1)


def load_demo(
    settings: Settings, final: Month | None = None, *, seed: int = DEFAULT_SEED
) -> Loaded:
    """Deliver the demo's events to the webhook, process them, and read back the final month.

    Signed with the configured webhook secret, or with one made for the load when none is set.
    """
    began = time.monotonic()
    final = final or last_complete_month(datetime.now(UTC))
    bodies = demo_events(final, seed)
    secret = settings.webhook_secrets[0] if settings.webhook_secrets else _one_off_secret()
    payloads = [json.dumps(b, separators=(",", ":")) for b in bodies]
    deliver(replace(settings, webhook_secrets=(secret,)), payloads, secret)
    delivered = time.monotonic()
    owners = {str(b["id"]): customer_of(parse_event(b)) or "" for b in bodies}
    engine = make_engine(settings.database_url)
    try:
        by_customer = sorted(owners, key=lambda event_id: owners[event_id])
        entries = process(engine, by_customer, max_attempts=settings.max_attempts)
        processed = time.monotonic()
        closing = final_month(engine, final)
    finally:
        engine.dispose()
    return Loaded(
        final=final,
        customers=len(set(owners.values())),
        events=len(bodies),
        entries=entries,
        seconds=time.monotonic() - began,
        deliver_seconds=delivered - began,
        process_seconds=processed - delivered,
        closing=closing,
    )


def _one_off_secret() -> str:
    return "whsec_demo_" + secrets.token_hex(16)


def deliver(settings: Settings, payloads: list[str], secret: str) -> None:
    """POST each payload to the webhook as Stripe would, signed now; any answer but 200 stops."""
    app = create_app(settings)
    client = app.test_client()
    try:
        for payload in payloads:
            headers = {
                "Content-Type": "application/json",
                "Stripe-Signature": signature_header(payload, secret, int(time.time())),
            }
            answer = client.post("/webhooks/stripe", data=payload, headers=headers)
            if answer.status_code != 200:
                reason = answer.get_data(as_text=True)
                raise DemoFailed(f"the webhook answered {answer.status_code}: {reason}")
    finally:
        app.extensions["mrr"].waker.flush()
        app.extensions["mrr"].engine.dispose()


def process(engine: Engine, event_ids: list[str], *, max_attempts: int) -> int:
    """The events' inbox rows through the workers' batch path, a batch per `BATCH` of them
    (ids grouped by customer: each customer is replayed once per batch); the entries appended.
    """
    appended = 0
    for start in range(0, len(event_ids), BATCH):
        with engine.connect() as conn:
            rows = pending_ids_of(conn, event_ids[start : start + BATCH])
        done = process_rows(engine, rows, max_attempts=max_attempts)
        if done.failed:
            raise DemoFailed("; ".join(done.failed))
        appended += done.appended
    return appended


def final_month(engine: Engine, final: Month) -> dict[str, MonthBalance]:
    found = {}
    for currency in CURRENCIES:
        query = report_query(str(first_month(final)), str(final), currency=currency)
        found[currency] = build_report(engine, query).main.months[-1]
    return found
