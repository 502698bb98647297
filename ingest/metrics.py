"""GET /metrics (Prometheus text format, behind the API token) and the webhook's own metrics.

Counters and histograms are counted where things happen (here for the webhook,
workers.metrics for processing); in multiprocess mode (PROMETHEUS_MULTIPROC_DIR) a scrape adds
up every process's files. Inbox, projector and queue figures are read from the database and
Redis at scrape time, so they are right whichever process answers.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from functools import wraps
from typing import Any, TypeVar

import redis
from flask import Blueprint, Response
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
)
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.registry import Collector
from sqlalchemy.exc import SQLAlchemyError

from ingest.api import ApiError, _api_error, authorized
from ingest.services import Services, services
from ledger.backfill import reconcile_store
from ledger.reporting import projector
from ledger.storage.inbox_stats import backlog
from ledger.storage.schema import InboxStatus
from workers.seen import queue_depth, workers_on

log = logging.getLogger(__name__)

WEBHOOK_REQUESTS = Counter(
    "mrr_webhook_requests_total",
    "Webhook deliveries answered, by outcome (accepted, duplicate, or the error code) and status",
    ["outcome", "status"],
)
WEBHOOK_SECONDS = Histogram(
    "mrr_webhook_request_duration_seconds",
    "Time to answer a webhook delivery",
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
)

metrics = Blueprint("metrics", __name__)
metrics.register_error_handler(ApiError, _api_error)

_F = TypeVar("_F", bound=Callable[..., tuple[Response, int]])


def timed(view: _F) -> _F:
    """Observe the view's time in the webhook latency histogram."""

    @wraps(view)
    def observed(*args: Any, **kwargs: Any) -> tuple[Response, int]:
        began = time.perf_counter()
        try:
            return view(*args, **kwargs)
        finally:
            WEBHOOK_SECONDS.observe(time.perf_counter() - began)

    return observed  # type: ignore[return-value]


def count_webhook(outcome: str, status: int) -> None:
    WEBHOOK_REQUESTS.labels(outcome=outcome, status=str(status)).inc()


class StateCollector(Collector):
    """Inbox, projector and queue state, read when Prometheus scrapes."""

    def __init__(self, found: Services) -> None:
        self.found = found

    def collect(self) -> Iterator[Metric]:
        up = GaugeMetricFamily(
            "mrr_state_source_up", "Whether the scrape could read this source", labels=["source"]
        )
        try:
            yield from self._database()
            up.add_metric(["database"], 1)
        except SQLAlchemyError as problem:
            log.warning("metrics: database unreadable (%s)", type(problem).__name__)
            up.add_metric(["database"], 0)
        try:
            yield from self._queue()
            up.add_metric(["redis"], 1)
        except (redis.exceptions.RedisError, OSError) as problem:
            log.warning("metrics: Redis unreadable (%s)", type(problem).__name__)
            up.add_metric(["redis"], 0)
        yield up

    def _database(self) -> list[Metric]:
        with self.found.engine.connect() as conn:
            found = backlog(conn)
            lag = projector.lag(conn)
            reconciled = reconcile_store.last_finished(conn, succeeded=True)
        now = datetime.now(UTC)
        rows = GaugeMetricFamily("mrr_inbox_rows", "Inbox rows by status", labels=["status"])
        for status in InboxStatus:
            rows.add_metric([status.value], found.counts.get(status, 0))
        oldest = found.oldest_pending_at
        age = (now - oldest).total_seconds() if oldest is not None else 0.0
        last = found.last_received_at
        return [
            *self._reconcile(reconciled),
            rows,
            GaugeMetricFamily(
                "mrr_inbox_oldest_pending_age_seconds",
                "Age of the oldest pending inbox row (0 when none is pending)",
                value=max(0.0, age),
            ),
            GaugeMetricFamily(
                "mrr_inbox_last_received_timestamp_seconds",
                "When the newest inbox row was stored (Unix time; 0 for an empty inbox)",
                value=last.timestamp() if last is not None else 0.0,
            ),
            GaugeMetricFamily(
                "mrr_projector_lag_entries",
                "Ledger entries not yet in the stored monthly totals",
                value=lag,
            ),
        ]

    def _reconcile(self, run: reconcile_store.Run | None) -> list[Metric]:
        """The last successful reconcile; nothing before the first."""
        if run is None or run.finished_at is None:
            return []
        return [
            GaugeMetricFamily(
                "mrr_reconcile_differences",
                "Subscriptions whose ledger MRR differed from Stripe's live object at the last "
                "successful reconcile",
                value=run.differences or 0,
            ),
            GaugeMetricFamily(
                "mrr_reconcile_last_success_timestamp_seconds",
                "When the last successful reconcile finished (Unix time)",
                value=run.finished_at.timestamp(),
            ),
        ]

    def _queue(self) -> list[Metric]:
        seen = workers_on(self.found.queue)
        depth = queue_depth(self.found.queue)
        now = datetime.now(UTC)
        ages = [(now - w.last_heartbeat).total_seconds() for w in seen if w.last_heartbeat]
        found: list[Metric] = [
            GaugeMetricFamily("mrr_queue_jobs", "Jobs waiting on the RQ queue", value=depth),
            GaugeMetricFamily(
                "mrr_rq_workers", "RQ workers registered on the queue", value=len(seen)
            ),
        ]
        if ages:
            found.append(
                GaugeMetricFamily(
                    "mrr_rq_worker_heartbeat_age_seconds",
                    "Age of the stalest heartbeat among the registered RQ workers",
                    value=max(ages),
                )
            )
        return found


def multiprocess_dir() -> str | None:
    return os.environ.get("PROMETHEUS_MULTIPROC_DIR") or None


@metrics.get("/metrics")
@authorized
def scrape() -> Response:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(StateCollector(services()))
    body = generate_latest(registry)
    if multiprocess_dir():
        shared = CollectorRegistry(auto_describe=False)
        MultiProcessCollector(shared)  # type: ignore[no-untyped-call]
        body += generate_latest(shared)
    else:
        body += generate_latest(REGISTRY)
    return Response(body, mimetype=CONTENT_TYPE_LATEST)
