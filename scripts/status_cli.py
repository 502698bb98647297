"""`mrr status`: the screen an operator reads first; exits 1 when something needs a person."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

import click
import redis
from sqlalchemy.exc import SQLAlchemyError

from ledger.backfill import reconcile_store
from ledger.backfill import store as backfill_store
from ledger.logs import mask
from ledger.reporting import projector
from ledger.settings import Settings
from ledger.storage.db import make_engine
from ledger.storage.inbox_stats import backlog, failure_reasons, last_processed_at
from ledger.storage.schema import InboxStatus
from scripts.settings_cli import load_settings
from workers.queue import connect, make_queue
from workers.seen import WorkerSeen, queue_depth, workers_on

FAILED_WINDOW = timedelta(days=1)
MAX_PENDING_AGE = 600.0
MAX_FAILED = 0
MIN_WORKERS = 1
# An idle RQ worker renews its heartbeat when its blocking dequeue times out: every ~405s.
MAX_HEARTBEAT_AGE = 600.0
MAX_RECONCILE_DIFFERENCES = 0

F = TypeVar("F", bound=Callable[..., Any])


@dataclass(frozen=True, slots=True)
class Thresholds:
    max_pending_age: float = MAX_PENDING_AGE
    max_failed: int = MAX_FAILED
    min_workers: int = MIN_WORKERS
    max_heartbeat_age: float = MAX_HEARTBEAT_AGE
    max_reconcile_differences: int = MAX_RECONCILE_DIFFERENCES


@dataclass(slots=True)
class Status:
    """What the database and Redis say; None where a source could not be read."""

    checked_at: datetime
    inbox: dict[InboxStatus, int] | None = None
    oldest_pending_age_seconds: float | None = None
    failed_last_day: dict[str, int] | None = None
    last_received_at: datetime | None = None
    last_processed_at: datetime | None = None
    projector_lag_entries: int | None = None
    queue_depth: int | None = None
    workers: list[WorkerSeen] | None = None
    last_backfill: backfill_store.Run | None = None
    last_reconcile: reconcile_store.Run | None = None
    unreadable: list[str] = field(default_factory=list)


def gather(settings: Settings, now: datetime) -> Status:
    status = Status(checked_at=now)
    try:
        engine = make_engine(settings.database_url)
        with engine.connect() as conn:
            found = backlog(conn)
            status.inbox = found.counts
            oldest = found.oldest_pending_at
            status.oldest_pending_age_seconds = (now - oldest).total_seconds() if oldest else 0.0
            status.failed_last_day = _masked(failure_reasons(conn, now - FAILED_WINDOW))
            status.last_received_at = found.last_received_at
            status.last_processed_at = last_processed_at(conn)
            status.projector_lag_entries = projector.lag(conn)
            status.last_backfill = backfill_store.last_run(conn)
            status.last_reconcile = reconcile_store.last_finished(conn)
        engine.dispose()
    except SQLAlchemyError as problem:
        status.unreadable.append(f"database unreachable ({type(problem).__name__})")
    try:
        queue = make_queue(settings, connect(settings))
        status.queue_depth = queue_depth(queue)
        status.workers = workers_on(queue)
    except (redis.exceptions.RedisError, OSError) as problem:
        status.unreadable.append(f"Redis unreachable ({type(problem).__name__})")
    return status


def _masked(reasons: dict[str, int]) -> dict[str, int]:
    """Reasons with e-mails and secrets masked (an error may quote the payload)."""
    found: dict[str, int] = {}
    for reason, n in reasons.items():
        found[mask(reason)] = found.get(mask(reason), 0) + n
    return found


def problems(status: Status, limits: Thresholds) -> list[str]:
    """What needs a person, in words; empty when all is well."""
    found = list(status.unreadable)
    age = status.oldest_pending_age_seconds
    if age is not None and age > limits.max_pending_age:
        found.append(f"the oldest pending row waits for {age:.0f}s (> {limits.max_pending_age:g}s)")
    failed = sum((status.failed_last_day or {}).values())
    if failed > limits.max_failed:
        found.append(f"{failed} rows failed in the last day (> {limits.max_failed})")
    if status.workers is not None:
        if len(status.workers) < limits.min_workers:
            found.append(f"{len(status.workers)} RQ workers (< {limits.min_workers})")
        for seen in status.workers:
            beat = seen.last_heartbeat
            since = (status.checked_at - beat).total_seconds() if beat else None
            if since is None or since > limits.max_heartbeat_age:
                said = "never" if since is None else f"{since:.0f}s ago"
                found.append(f"worker {seen.name}: last heartbeat {said}")
    run = status.last_reconcile
    if run is not None and (run.error or (run.differences or 0) > limits.max_reconcile_differences):
        found += run.problems()
    return found


def _when(moment: datetime | None, now: datetime) -> str:
    if moment is None:
        return "never"
    return f"{moment.isoformat(timespec='seconds')} ({(now - moment).total_seconds():.0f}s ago)"


def render(status: Status, found: list[str]) -> list[str]:
    now = status.checked_at
    lines = []
    if status.inbox is not None:
        counts = ", ".join(f"{n} {s}" for s, n in sorted(status.inbox.items())) or "empty"
        lines += [
            f"inbox:              {counts}",
            f"oldest pending:     {status.oldest_pending_age_seconds:.0f}s",
            f"last received:      {_when(status.last_received_at, now)}",
            f"last processed:     {_when(status.last_processed_at, now)}",
            f"projector lag:      {status.projector_lag_entries} entries",
            f"failed (last day):  {sum((status.failed_last_day or {}).values())}",
        ]
        failed = (status.failed_last_day or {}).items()
        lines += [f"  {n:>6}  {reason}" for reason, n in failed]
    if status.workers is not None:
        lines.append(f"queue depth:        {status.queue_depth} jobs")
        lines.append(f"RQ workers:         {len(status.workers)}")
        lines += [
            f"  {w.name}  {w.state}  heartbeat {_when(w.last_heartbeat, now)}"
            for w in status.workers
        ]
    lines += _runs(status)
    lines.append("needs attention:" if found else "all well")
    lines += [f"  - {problem}" for problem in found]
    return lines


def _runs(status: Status) -> list[str]:
    if status.inbox is None:
        return []
    now = status.checked_at
    lines = []
    backfill = status.last_backfill
    if backfill is None:
        lines.append("last backfill:      never")
    else:
        state = (
            f"completed {_when(backfill.completed_at, now)}"
            if backfill.completed_at
            else f"not completed, last progress {_when(backfill.updated_at, now)}"
        )
        lines.append(
            f"last backfill:      {backfill.scope}, {backfill.customers_done} customers, "
            f"started {_when(backfill.started_at, now)}, {state}"
        )
    run = status.last_reconcile
    if run is None:
        lines.append("last reconcile:     never")
    elif run.error is not None:
        lines.append(f"last reconcile:     failed {_when(run.finished_at, now)}: {run.error}")
    else:
        lines.append(
            f"last reconcile:     {_when(run.finished_at, now)} ({run.trigger}), "
            f"{run.subscriptions} subscriptions, {run.differences} differences"
        )
    return lines


def as_json(status: Status, found: list[str]) -> dict[str, Any]:
    def plain(value: Any) -> Any:
        return value.isoformat() if isinstance(value, datetime) else value

    fields = {name: plain(value) for name, value in asdict(status).items()}
    fields["last_reconcile"] = status.last_reconcile.fields() if status.last_reconcile else None
    if status.last_backfill is not None:
        fields["last_backfill"] = {k: plain(v) for k, v in asdict(status.last_backfill).items()}
    if status.workers is not None:
        fields["workers"] = [
            {k: plain(v) for k, v in asdict(seen).items()} for seen in status.workers
        ]
    return {**fields, "problems": found, "ok": not found}


def _threshold(name: str, default: float | int, help_text: str) -> Callable[[F], F]:
    """An option for one of the Thresholds fields, also read from MRR_STATUS_<NAME>."""
    kind = click.FloatRange(min=0) if isinstance(default, float) else click.IntRange(min=0)
    return click.option(
        f"--{name.replace('_', '-')}",
        type=kind,
        default=default,
        show_default=True,
        envvar=f"MRR_STATUS_{name.upper()}",
        help=help_text,
    )


@click.command("status")
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text")
@_threshold("max_pending_age", MAX_PENDING_AGE, "Seconds the oldest pending row may wait.")
@_threshold("max_failed", MAX_FAILED, "Rows that may fail in a day.")
@_threshold("min_workers", MIN_WORKERS, "RQ workers that must be registered.")
@_threshold("max_heartbeat_age", MAX_HEARTBEAT_AGE, "Seconds since a worker's last heartbeat.")
@_threshold(
    "max_reconcile_differences",
    MAX_RECONCILE_DIFFERENCES,
    "Subscriptions the last reconcile may have found different from Stripe.",
)
def status_cmd(
    fmt: str,
    max_pending_age: float,
    max_failed: int,
    min_workers: int,
    max_heartbeat_age: float,
    max_reconcile_differences: int,
) -> None:
    """Inbox, failures, queue, workers, projector, last backfill and reconcile at a glance;
    exit 1 if a person is needed."""
    limits = Thresholds(
        max_pending_age, max_failed, min_workers, max_heartbeat_age, max_reconcile_differences
    )
    status = gather(load_settings(), datetime.now(UTC))
    found = problems(status, limits)
    if fmt == "json":
        click.echo(json.dumps(as_json(status, found), indent=2))
    else:
        click.echo("\n".join(render(status, found)))
    sys.exit(1 if found else 0)
