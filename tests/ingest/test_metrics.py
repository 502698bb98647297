"""GET /metrics through gunicorn with two workers (prometheus_client's multiprocess mode) and a
real `mrr worker` writing to the same directory: each metric moves when its event happens."""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import redis
from flask import Flask
from prometheus_client.parser import text_string_to_metric_families
from rq import Queue
from sqlalchemy import func, select

from ingest.app import create_app
from ledger.reporting import projector
from ledger.settings import Settings
from ledger.storage.db import make_engine
from ledger.storage.schema import ledger_entries
from tests.conftest import REDIS_URL, WEBHOOK_SECRET
from tests.support.databases import Templates
from tests.support.pipeline import subscription_event
from tests.support.stripe_sign import signed
from tests.support.web import ROOT, gunicorn

NOW = 1_767_225_600
TOKEN = "metrics-token-" + uuid.uuid4().hex
Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def parse(text: str) -> Samples:
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


def request(port: int, method: str, path: str, body: str = "", **headers: str) -> tuple[int, str]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request(method, path, body=body.encode(), headers=headers)
        answer = conn.getresponse()
        return answer.status, answer.read().decode()
    finally:
        conn.close()


def post(port: int, body: dict[str, object], secret: str = WEBHOOK_SECRET) -> int:
    payload, headers = signed(body, secret)
    return request(port, "POST", "/webhooks/stripe", payload, **headers)[0]


def scrape(port: int) -> Samples:
    status, text = request(port, "GET", "/metrics", Authorization=f"Bearer {TOKEN}")
    assert status == 200, text
    return parse(text)


def wait_for(port: int, done: Callable[[Samples], bool], timeout: float = 60.0) -> Samples:
    deadline = time.monotonic() + timeout
    while True:
        samples = scrape(port)
        if done(samples) or time.monotonic() > deadline:
            return samples
        time.sleep(0.3)


@pytest.fixture
def env(templates: Templates, tmp_path: Path) -> Iterator[dict[str, str]]:
    shared = tmp_path / "prometheus"
    shared.mkdir()
    queue = f"test-{uuid.uuid4().hex[:10]}"
    with templates.pg_copy() as url:
        yield {
            **os.environ,
            "PYTHONPATH": str(ROOT),
            "DATABASE_URL": url,
            "REDIS_URL": REDIS_URL,
            "STRIPE_WEBHOOK_SECRET": WEBHOOK_SECRET,
            "MRR_API_TOKEN": TOKEN,
            "MRR_QUEUE": queue,
            "MRR_MAX_ATTEMPTS": "1",
            "MRR_MAX_BODY_BYTES": "20000",
            "PROMETHEUS_MULTIPROC_DIR": str(shared),
        }
    Queue(queue, connection=redis.Redis.from_url(REDIS_URL)).delete(delete_jobs=True)


def unreadable(event_id: str, customer: str) -> dict[str, object]:
    body = subscription_event(event_id, "customer.subscription.created", NOW, customer=customer)
    body["data"]["object"]["items"]["data"][0]["price"]["unit_amount_decimal"] = "abc"  # type: ignore[index]
    return body


def test_each_metric_moves_when_its_event_happens(env: dict[str, str], tmp_path: Path) -> None:
    created = [
        subscription_event(f"evt_c{i}", "customer.subscription.created", NOW, customer=f"cus_{i}")
        for i in range(20)
    ]
    with gunicorn(env, tmp_path / "web.log") as port:
        assert request(port, "GET", "/metrics")[0] == 401
        assert request(port, "GET", "/metrics", Authorization="Bearer wrong")[0] == 401
        before = scrape(port)
        assert value(before, "mrr_inbox_rows", status="pending") == 0
        assert value(before, "mrr_state_source_up", source="database") == 1

        # One worker is held by a delivery whose body is still coming, so the other answers
        # the rest: both count.
        with slow_delivery(port, created[0]) as finished:
            statuses = [post(port, body) for body in [*created[1:], unreadable("bad", "cus_x")]]
        statuses.insert(0, finished[0])
        statuses.append(post(port, created[0]))
        statuses.append(post(port, created[1], "whsec_wrong"))
        raw = "{"
        statuses.append(request(port, "POST", "/webhooks/stripe", raw, **signed_raw(raw))[0])
        big = json.dumps({**created[2], "padding": "x" * 30_000})
        statuses.append(request(port, "POST", "/webhooks/stripe", big, **signed_raw(big))[0])
        assert statuses == [200] * 22 + [400, 400, 413]

        pids = {
            path.stem.rsplit("_", 1)[-1]
            for path in Path(env["PROMETHEUS_MULTIPROC_DIR"]).glob("*.db")
        }
        assert len(pids) >= 2, "both gunicorn workers counted"
        seen = [scrape(port) for _ in range(4)]  # whichever worker answers, the same totals
        for after in seen:
            moved = {
                outcome: value(after, "mrr_webhook_requests_total", outcome=outcome, status=code)
                - value(before, "mrr_webhook_requests_total", outcome=outcome, status=code)
                for outcome, code in [
                    ("accepted", "200"),
                    ("duplicate", "200"),
                    ("bad_signature", "400"),
                    ("body_not_json", "400"),
                    ("too_large", "413"),
                ]
            }
            assert moved == {
                "accepted": 21,
                "duplicate": 1,
                "bad_signature": 1,
                "body_not_json": 1,
                "too_large": 1,
            }
            assert (
                value(after, "mrr_webhook_request_duration_seconds_count")
                - value(before, "mrr_webhook_request_duration_seconds_count")
                == 25
            )
            assert value(after, "mrr_inbox_rows", status="pending") == 21
            assert value(after, "mrr_inbox_oldest_pending_age_seconds") > 0
            assert value(after, "mrr_queue_jobs") >= 1
            assert value(after, "mrr_rq_workers") == 0

        worker = subprocess.Popen(
            [sys.executable, "-m", "scripts.cli", "worker"],
            cwd=ROOT,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=(tmp_path / "worker.log").open("wb"),
        )
        try:
            drained = wait_for(port, lambda s: value(s, "mrr_inbox_rows", status="pending") == 0)
            assert value(drained, "mrr_inbox_rows", status="processed") == 20
            assert value(drained, "mrr_inbox_rows", status="failed") == 1
            assert value(drained, "mrr_inbox_oldest_pending_age_seconds") == 0
            kind = "customer.subscription.created"
            assert value(drained, "mrr_events_total", event_type=kind, outcome="processed") == 20
            assert value(drained, "mrr_events_total", event_type=kind, outcome="failed") == 1
            assert value(drained, "mrr_ledger_entries_appended_total") == 20
            assert value(drained, "mrr_batch_rows_sum") == 21
            assert value(drained, "mrr_batch_duration_seconds_count") >= 1
            assert value(drained, "mrr_projector_lag_entries") == 20
            assert value(drained, "mrr_rq_workers") == 1
            assert 0 <= value(drained, "mrr_rq_worker_heartbeat_age_seconds") < 60

            # A late event that moves cus_0's start earlier: its first entry is reversed.
            late = subscription_event(
                "evt_late", "customer.subscription.updated", NOW - 3600, customer="cus_0",
                amount=20000,
            )  # fmt: skip
            assert post(port, late) == 200
            corrected = wait_for(
                port,
                lambda s: (
                    value(s, "mrr_events_total", event_type=late["type"], outcome="processed") == 1
                ),
            )
        finally:
            worker.terminate()
            worker.wait(timeout=30)
        engine = make_engine(env["DATABASE_URL"])
        with engine.begin() as conn:
            entries = conn.execute(select(func.count()).select_from(ledger_entries)).scalar_one()
            reversals = conn.execute(
                select(func.count()).where(ledger_entries.c.reversal_of.is_not(None))
            ).scalar_one()
        assert reversals > 0
        assert value(corrected, "mrr_ledger_entries_reversed_total") == reversals
        assert value(corrected, "mrr_ledger_entries_appended_total") == entries - reversals
        assert value(corrected, "mrr_projector_lag_entries") == entries
        with engine.begin() as conn:
            projector.catch_up(conn)
        engine.dispose()
        assert value(scrape(port), "mrr_projector_lag_entries") == 0


@contextlib.contextmanager
def slow_delivery(port: int, body: dict[str, object]) -> Iterator[list[int]]:
    """A signed delivery whose last bytes are sent when the block ends; yields its status."""
    payload, headers = signed(body, WEBHOOK_SECRET)
    head = "".join(f"{name}: {value}\r\n" for name, value in headers.items())
    data = payload.encode()
    status: list[int] = []
    with socket.create_connection(("127.0.0.1", port), timeout=30) as conn:
        conn.sendall(
            f"POST /webhooks/stripe HTTP/1.1\r\nHost: x\r\nConnection: close\r\n{head}"
            f"Content-Length: {len(data)}\r\n\r\n".encode()
            + data[:-10]
        )
        time.sleep(0.5)  # accepted, and reading the body
        yield status
        conn.sendall(data[-10:])
        answer = http.client.HTTPResponse(conn)
        answer.begin()
        status.append(answer.status)


def signed_raw(payload: str) -> dict[str, str]:
    from tests.support.stripe_sign import signature_header

    return {"Stripe-Signature": signature_header(payload, WEBHOOK_SECRET)}


@pytest.fixture
def app_of(settings: Settings) -> Callable[..., Flask]:
    def made(**changes: object) -> Flask:
        from dataclasses import replace

        return create_app(replace(settings, **changes))  # type: ignore[arg-type]

    return made


def test_503s_are_counted_and_metrics_need_the_token(app_of: Callable[..., Flask]) -> None:
    up = app_of().test_client()
    auth = {"Authorization": f"Bearer {up.application.extensions['mrr'].settings.api_token}"}
    assert up.get("/metrics").status_code == 401
    assert up.get("/metrics", headers={"Authorization": "Basic x"}).status_code == 400
    assert app_of(api_token=None).test_client().get("/metrics").status_code == 503

    def count(outcome: str) -> float:
        text = up.get("/metrics", headers=auth).get_data(as_text=True)
        return value(parse(text), "mrr_webhook_requests_total", outcome=outcome, status="503")

    before = (count("storage_unavailable"), count("not_configured"))
    body = subscription_event("evt_1", "customer.subscription.created", NOW)
    payload, headers = signed(body, WEBHOOK_SECRET)
    down = app_of(database_url="postgresql+psycopg://mrr@127.0.0.1:1/mrr").test_client()
    assert down.post("/webhooks/stripe", data=payload, headers=headers).status_code == 503
    unset = app_of(webhook_secrets=()).test_client()
    assert unset.post("/webhooks/stripe", data=payload, headers=headers).status_code == 503
    after = (count("storage_unavailable"), count("not_configured"))
    assert (after[0] - before[0], after[1] - before[1]) == (1, 1)
