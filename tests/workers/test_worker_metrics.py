"""A worker's own /metrics (MRR_WORKER_METRICS_PORT), for workers on another host than the web:
a real `mrr worker` serves its processing counters, in its own registry or, in multiprocess
mode, its directory's."""

from __future__ import annotations

import http.client
import json
import os
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from click.testing import CliRunner
from prometheus_client.parser import text_string_to_metric_families
from rq import Queue

from ledger.settings import ConfigError
from ledger.storage import inbox
from ledger.storage.db import make_engine
from scripts.cli import main
from tests.conftest import REDIS_URL
from tests.support.databases import Templates
from tests.support.pipeline import subscription_event
from tests.support.redis_server import free_port
from tests.support.web import ROOT
from tests.support.workspace import customer_event
from workers.metrics_endpoint import MetricsEndpoint
from workers.queue import enqueue_batches

NOW = 1_767_225_600
CREATED = "customer.subscription.created"


def test_the_endpoint_is_read_from_the_environment() -> None:
    assert MetricsEndpoint.from_env({}) is None
    assert MetricsEndpoint.from_env({"MRR_WORKER_METRICS_PORT": " "}) is None
    assert MetricsEndpoint.from_env({"MRR_WORKER_METRICS_PORT": "9187"}) == MetricsEndpoint(
        9187, "0.0.0.0"
    )
    private = {"MRR_WORKER_METRICS_PORT": "9187", "MRR_WORKER_METRICS_ADDR": "10.0.0.5"}
    assert MetricsEndpoint.from_env(private) == MetricsEndpoint(9187, "10.0.0.5")
    for bad in ("http", "0", "70000", "-1"):
        with pytest.raises(ConfigError, match="MRR_WORKER_METRICS_PORT"):
            MetricsEndpoint.from_env({"MRR_WORKER_METRICS_PORT": bad})


def test_a_bad_or_busy_port_stops_the_worker_with_one_line() -> None:
    bad = CliRunner().invoke(main, ["worker"], env={"MRR_WORKER_METRICS_PORT": "http"})
    assert bad.exit_code == 2 and "MRR_WORKER_METRICS_PORT must be a TCP port" in bad.output
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = str(taken.getsockname()[1])
        env = {"MRR_WORKER_METRICS_PORT": port, "MRR_WORKER_METRICS_ADDR": "127.0.0.1"}
        busy = CliRunner().invoke(main, ["worker"], env=env)
    assert busy.exit_code == 1 and f"cannot serve worker metrics on 127.0.0.1:{port}" in (
        busy.output
    )


def scrape(port: int) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    try:
        conn.request("GET", "/metrics")
        text = conn.getresponse().read().decode()
    finally:
        conn.close()
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def processed(port: int, event_type: str, outcome: str) -> float:
    try:
        samples = scrape(port)
    except OSError:
        return -1.0  # not listening yet
    labels = frozenset({"event_type": event_type, "outcome": outcome}.items())
    return samples.get(("mrr_events_total", labels), 0.0)


@pytest.fixture
def worker_env(templates: Templates, tmp_path: Path) -> Iterator[dict[str, str]]:
    queue = f"test-{uuid.uuid4().hex[:10]}"
    with templates.pg_copy() as url:
        env = {k: v for k, v in os.environ.items() if k != "PROMETHEUS_MULTIPROC_DIR"}
        yield env | {
            "PYTHONPATH": str(ROOT),
            "DATABASE_URL": url,
            "REDIS_URL": REDIS_URL,
            "MRR_QUEUE": queue,
            "MRR_WORKER_METRICS_PORT": str(free_port()),
            "MRR_WORKER_METRICS_ADDR": "127.0.0.1",
        }
    Queue(queue, connection=redis.Redis.from_url(REDIS_URL)).delete(delete_jobs=True)


@pytest.mark.parametrize("mode", ["own registry", "multiprocess"])
def test_a_worker_serves_its_processing_counters(
    worker_env: dict[str, str], tmp_path: Path, mode: str
) -> None:
    if mode == "multiprocess":
        shared = tmp_path / "prometheus"
        shared.mkdir()
        worker_env["PROMETHEUS_MULTIPROC_DIR"] = str(shared)
    port = int(worker_env["MRR_WORKER_METRICS_PORT"])
    engine = make_engine(worker_env["DATABASE_URL"])
    bodies = [
        subscription_event("evt_1", CREATED, NOW, customer="cus_1"),
        subscription_event("evt_2", CREATED, NOW, customer="cus_2"),
        customer_event("evt_3", "cus_1", "Ann", "ann@example.com", NOW),
    ]
    with engine.begin() as conn:
        stored = inbox.store_events(conn, [(json.dumps(b), b) for b in bodies])
    engine.dispose()
    worker = subprocess.Popen(
        [sys.executable, "-m", "scripts.cli", "worker"],
        cwd=ROOT,
        env=worker_env,
        stdout=subprocess.DEVNULL,
        stderr=(tmp_path / "worker.log").open("wb"),
    )
    try:
        deadline = time.monotonic() + 60
        while processed(port, CREATED, "processed") < 0 and time.monotonic() < deadline:
            time.sleep(0.2)
        assert processed(port, CREATED, "processed") == 0, (tmp_path / "worker.log").read_text()
        queue = Queue(worker_env["MRR_QUEUE"], connection=redis.Redis.from_url(REDIS_URL))
        enqueue_batches(queue, [s.inbox_id for s in stored])
        while processed(port, CREATED, "processed") < 2 and time.monotonic() < deadline:
            time.sleep(0.2)
        samples = scrape(port)
    finally:
        worker.terminate()
        worker.wait(timeout=30)
    labels = frozenset({"event_type": "customer.created", "outcome": "ignored"}.items())
    assert processed(port, CREATED, "processed") == -1  # stopped with the worker
    assert (
        samples[
            ("mrr_events_total", frozenset({"event_type": CREATED, "outcome": "processed"}.items()))
        ]
        == 2
    )
    assert samples[("mrr_events_total", labels)] == 1
    assert samples[("mrr_ledger_entries_appended_total", frozenset())] == 2
    assert samples[("mrr_batch_rows_sum", frozenset())] >= 3
