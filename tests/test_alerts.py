"""docs/alerts.yml: valid Prometheus rules over metrics the app really exposes."""

from __future__ import annotations

import re
import shutil
import subprocess
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import yaml
from flask.testing import FlaskClient
from rq import Queue, SimpleWorker

from ingest.app import create_app
from ledger.backfill import reconcile_store
from ledger.settings import Settings

ALERTS = Path(__file__).resolve().parent.parent / "docs" / "alerts.yml"
METRIC = re.compile(r"\bmrr_[a-z_]+")
DURATION = re.compile(r"^\d+[smhd]$")


def rules() -> list[dict[str, Any]]:
    document = yaml.safe_load(ALERTS.read_text())
    return [rule for group in document["groups"] for rule in group["rules"]]


def exposed(client: FlaskClient, token: str) -> set[str]:
    text = client.get("/metrics", headers={"Authorization": f"Bearer {token}"}).get_data(
        as_text=True
    )
    return {line.split()[2] for line in text.splitlines() if line.startswith("# TYPE ")}


def test_the_example_alerts_are_well_formed_rules() -> None:
    found = rules()
    names = [rule["alert"] for rule in found]
    assert len(names) == len(set(names))
    for wanted in ("MrrWebhooksStopped", "MrrOldestPendingTooOld", "MrrFailedRowsGrowing"):
        assert wanted in names
    assert {"MrrWorkersGone", "MrrWorkerHeartbeatStale"} <= set(names)
    for rule in found:
        assert set(rule) <= {"alert", "expr", "for", "labels", "annotations"}, rule["alert"]
        assert rule["labels"]["severity"] in ("warning", "critical")
        assert rule["annotations"]["summary"] and rule["annotations"]["description"]
        assert "for" not in rule or DURATION.match(rule["for"])
        expr = rule["expr"]
        assert expr.count("(") == expr.count(")") and expr.count("{") == expr.count("}")
    pending = next(r for r in found if r["alert"] == "MrrOldestPendingTooOld")
    assert pending["expr"] == "max(mrr_inbox_oldest_pending_age_seconds) > 600"
    promtool = shutil.which("promtool")
    if promtool:  # the Debian package `prometheus`, when installed
        checked = subprocess.run([promtool, "check", "rules", str(ALERTS)], capture_output=True)
        assert checked.returncode == 0, checked.stdout + checked.stderr


def test_every_metric_an_alert_uses_is_exposed(settings: Settings, queue: Queue) -> None:
    app = create_app(settings)
    # The reconcile gauges exist once a reconcile has run.
    with app.extensions["mrr"].engine.begin() as conn:
        run_id = reconcile_store.start_run(conn, "cli", datetime.now(UTC))
        reconcile_store.finish_run(
            conn, run_id, datetime.now(UTC), subscriptions=0, differences=[], fixed=0
        )
    worker = SimpleWorker([queue], connection=queue.connection)
    worker.register_birth()  # the heartbeat gauge exists while a worker is registered
    try:
        names = exposed(app.test_client(), settings.api_token or "")
    finally:
        worker.register_death()
    # A histogram's or counter's samples carry a suffix its TYPE line does not.
    base = {re.sub(r"_(count|sum|bucket|total)$", "", name) for name in names}
    used = {name for rule in rules() for name in METRIC.findall(rule["expr"])}
    assert used and {re.sub(r"_total$", "", name) for name in used} <= base | names
