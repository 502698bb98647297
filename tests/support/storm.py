"""The storm: signed deliveries through gunicorn, duplicated and shuffled, while a worker is
SIGKILLed mid-batch and Redis restarts with its data lost; then the ledger is checked against
in-order processing of the same events. Used by tests/test_storm.py (small) and bench/storm.py.
"""

from __future__ import annotations

import http.client
import json
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, func, select, text
from sqlalchemy.engine import make_url

from ledger.processing import apply_event
from ledger.rules.entries import EntryKey
from ledger.rules.events import parse_event
from ledger.storage import inbox, store
from ledger.storage.db import make_engine
from ledger.storage.schema import inbox as inbox_table
from ledger.storage.schema import ledger_entries
from tests.support.histories import histories, storm_order
from tests.support.ledger import all_entries
from tests.support.redis_server import PrivateRedis, free_port
from tests.support.stripe_sign import signature_header
from tests.support.web import answers_health

ROOT = Path(__file__).resolve().parents[2]
PYTHON = sys.executable
SECRET = "whsec_storm"
MonthKey = tuple[str, str, str]  # (YYYY-MM, category, currency)


@dataclass
class StormReport:
    events: int
    deliveries: int
    backend: str
    post_seconds: float = 0.0
    drain_seconds: float = 0.0
    killed_in_transaction: bool | None = None
    worker_restarts: int = 0
    posted_while_redis_down: int = 0
    statuses: dict[str, int] = field(default_factory=dict)
    ledger_rows: int = 0
    in_effect: int = 0
    problems: list[str] = field(default_factory=list)

    def as_json(self) -> dict[str, Any]:
        return dict(self.__dict__)


class Processes:
    """Gunicorn and `mrr worker` subprocesses, run from the worktree with our environment."""

    def __init__(self, env: dict[str, str], logdir: Path) -> None:
        self.env = env
        self.logdir = logdir
        self.workers: dict[str, subprocess.Popen[bytes]] = {}
        self.web: subprocess.Popen[bytes] | None = None
        self.restarts = 0

    def _spawn(self, name: str, argv: list[str], env: dict[str, str]) -> subprocess.Popen[bytes]:
        log = (self.logdir / f"{name}.log").open("ab")
        return subprocess.Popen(argv, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)

    def start_web(self, port: int) -> None:
        argv = [PYTHON, "-m", "gunicorn", "--workers", "2", "--worker-class", "gthread"]
        argv += ["--threads", "4", "--bind", f"127.0.0.1:{port}", "--log-level", "warning"]
        self.web = self._spawn("web", [*argv, "ingest.app:create_app()"], self.env)
        if not answers_health(port):
            raise RuntimeError("gunicorn did not answer /healthz")

    def start_worker(self, name: str) -> None:
        env = dict(self.env)
        url = make_url(env["DATABASE_URL"])
        if url.get_backend_name() == "postgresql":
            named = url.update_query_dict({"application_name": name})
            env["DATABASE_URL"] = named.render_as_string(hide_password=False)
        argv = [PYTHON, "-m", "scripts.cli", "worker"]
        self.workers[name] = self._spawn(name, argv, env)

    def supervise(self) -> None:
        """Restart a worker that exited, as a process manager would."""
        for name, process in list(self.workers.items()):
            if process.poll() is not None:
                self.restarts += 1
                self.start_worker(name)

    def kill(self, name: str) -> None:
        process = self.workers.pop(name)
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=10)

    def stop(self) -> None:
        for process in [*self.workers.values(), *([self.web] if self.web else [])]:
            if process.poll() is None:
                process.terminate()
        for process in [*self.workers.values(), *([self.web] if self.web else [])]:
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=5)
        self.workers.clear()
        self.web = None


class Poster:
    """Posts deliveries from several threads, each on its own keep-alive connection."""

    def __init__(self, port: int, payloads: Sequence[str], threads: int = 4) -> None:
        self.port = port
        self.payloads = payloads
        self.threads = threads
        self.done = 0
        self._lock = threading.Lock()
        self._next = 0
        self._limit = len(payloads)
        self.errors: list[str] = []

    def hold_at(self, count: int) -> None:
        """Take no delivery past the first `count` until `release`: the storm's outages then
        happen with deliveries still to post, however fast this machine is."""
        with self._lock:
            self._limit = count

    def release(self) -> None:
        with self._lock:
            self._limit = len(self.payloads)

    def _take(self) -> str | None:
        while True:
            with self._lock:
                if self._next >= len(self.payloads):
                    return None
                if self._next < self._limit:
                    self._next += 1
                    return self.payloads[self._next - 1]
            time.sleep(0.01)

    def _post(self, conn: http.client.HTTPConnection, payload: str) -> None:
        headers = {
            "Stripe-Signature": signature_header(payload, SECRET),
            "Content-Type": "application/json",
        }
        conn.request("POST", "/webhooks/stripe", body=payload.encode(), headers=headers)
        response = conn.getresponse()
        body = response.read()
        if response.status != 200:
            raise RuntimeError(f"HTTP {response.status}: {body[:200]!r}")
        if json.loads(body).get("received") is not True:
            raise RuntimeError(f"not received: {body[:200]!r}")

    def _run(self) -> None:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        while (payload := self._take()) is not None:
            for attempt in range(20):
                try:
                    self._post(conn, payload)
                    break
                except (OSError, http.client.HTTPException, RuntimeError) as problem:
                    conn.close()
                    conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
                    time.sleep(0.05 * (attempt + 1))
                    last = problem
            else:
                self.errors.append(f"gave up on a delivery: {last}")
                continue
            with self._lock:
                self.done += 1
        conn.close()

    def start(self) -> list[threading.Thread]:
        started = [threading.Thread(target=self._run, daemon=True) for _ in range(self.threads)]
        for thread in started:
            thread.start()
        return started


def _wait(condition: Callable[[], bool], timeout: float, tick: Callable[[], None]) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        tick()
        time.sleep(0.05)
    return condition()


def _in_batch(engine: Engine, name: str) -> bool:
    """Whether the worker's connection is inside a batch transaction right now (PostgreSQL)."""
    query = text(
        "SELECT count(*) FROM pg_stat_activity WHERE application_name = :name "
        "AND datname = current_database() AND xact_start IS NOT NULL "
        "AND (query ILIKE '%FOR UPDATE%' OR query ILIKE '%ledger_entries%' "
        "OR query ILIKE '%customers%')"
    )
    with engine.connect() as conn:
        return bool(conn.execute(query, {"name": name}).scalar_one())


def status_counts(engine: Engine) -> dict[str, int]:
    with engine.connect() as conn:
        return inbox.status_counts(conn)


def entry_keys(engine: Engine) -> Counter[EntryKey]:
    with engine.connect() as conn:
        return Counter(e.key() for e in store.in_effect(conn))


def monthly_sums(engine: Engine) -> dict[MonthKey, int]:
    """Sum of every ledger row (reversals included) per month, category and currency."""
    sums: Counter[MonthKey] = Counter()
    with engine.connect() as conn:
        for entry in all_entries(conn):
            sums[(entry.effective_at.strftime("%Y-%m"), entry.category.value, entry.currency)] += (
                entry.amount
            )
    return {key: value for key, value in sums.items() if value}


def in_order(engine: Engine, bodies: Sequence[dict[str, Any]]) -> None:
    """Each event stored and applied before the next arrives: the reference ledger.

    One transaction for speed; each event still sees only the events before it.
    """
    with engine.begin() as conn:
        for body in sorted(bodies, key=lambda b: (b["created"], b["id"])):
            (stored,) = inbox.store_events(conn, [(inbox.dumps(body), body)])
            outcome = apply_event(conn, parse_event(body))
            inbox.mark(conn, [stored.inbox_id], outcome.status)


@contextmanager
def _services(
    db_url: str, workdir: Path, workers: int, checkpoint_every: int | None
) -> Iterator[tuple[Processes, PrivateRedis, int]]:
    redis_server = PrivateRedis(workdir)
    redis_server.start()
    port = free_port()
    env = {
        **os.environ,
        "DATABASE_URL": db_url,
        "REDIS_URL": redis_server.url,
        "MRR_QUEUE": f"storm-{uuid.uuid4().hex[:10]}",
        "STRIPE_WEBHOOK_SECRET": SECRET,
        "MRR_SWEEP_EVERY": "1",
        "MRR_SWEEP_AFTER": "3",
        "PYTHONPATH": str(ROOT),
    }
    if checkpoint_every is not None:
        env["MRR_CHECKPOINT_EVERY"] = str(checkpoint_every)
    processes = Processes(env, workdir)
    try:
        processes.start_web(port)
        for n in range(workers):
            processes.start_worker(f"storm-w{n}")
        yield processes, redis_server, port
    finally:
        processes.stop()
        redis_server.stop()


def run_storm(
    db_url: str,
    reference_url: str,
    workdir: Path,
    *,
    events: int,
    customers: int,
    duplicates: float = 0.2,
    workers: int = 2,
    seed: int = 7,
    drain_timeout: float = 120.0,
    checkpoint_every: int | None = None,
) -> StormReport:
    bodies = histories(events, customers, seed=seed)
    shuffled = storm_order(bodies, duplicates=duplicates)
    deliveries = [json.dumps(b, separators=(",", ":")) for b in shuffled]
    backend = make_url(db_url).get_backend_name()
    report = StormReport(events=len(bodies), deliveries=len(deliveries), backend=backend)
    engine = make_engine(db_url)
    with ExitStack() as stack:
        stack.callback(engine.dispose)
        processes, redis_server, port = stack.enter_context(
            _services(db_url, workdir, workers, checkpoint_every)
        )
        started = time.monotonic()
        poster = Poster(port, deliveries)
        redis_outage_at = int(len(deliveries) * 0.6)
        poster.hold_at(redis_outage_at)
        threads = poster.start()
        tick = processes.supervise

        # 1. SIGKILL a worker while it is inside a batch, then start a new one.
        _wait(lambda: poster.done >= len(deliveries) * 0.3, 120, tick)
        victim = "storm-w0"
        if backend == "postgresql":
            report.killed_in_transaction = _wait(lambda: _in_batch(engine, victim), 20, tick)
        processes.kill(victim)
        processes.start_worker("storm-w0b")

        # 2. Restart Redis with its data lost (no persistence): queued jobs vanish.
        _wait(lambda: poster.done >= redis_outage_at, 120, tick)
        redis_server.stop()
        before = poster.done
        poster.release()
        _wait(lambda: poster.done >= before + 20, 60, tick)
        report.posted_while_redis_down = poster.done - before
        redis_server.start()

        for thread in threads:
            while thread.is_alive():
                tick()
                thread.join(timeout=0.2)
        report.post_seconds = round(time.monotonic() - started, 2)
        report.problems += poster.errors

        def drained() -> bool:
            counts = status_counts(engine)
            return sum(counts.values()) >= len(bodies) and not counts.get("pending")

        if not _wait(drained, drain_timeout, tick):
            report.problems.append(f"not drained after {drain_timeout}s: {status_counts(engine)}")
        report.drain_seconds = round(time.monotonic() - started - report.post_seconds, 2)
        report.worker_restarts = processes.restarts
    check(report, engine, reference_url, bodies)
    return report


def check(
    report: StormReport, engine: Engine, reference_url: str, bodies: Sequence[dict[str, Any]]
) -> None:
    report.statuses = status_counts(engine)
    if report.statuses != {"processed": len(bodies)}:
        report.problems.append(f"inbox statuses {report.statuses}, want all processed")
    with engine.connect() as conn:
        ids = conn.execute(select(inbox_table.c.event_id)).scalars().all()
        report.ledger_rows = int(
            conn.execute(select(func.count()).select_from(ledger_entries)).scalar_one()
        )
    if len(ids) != len(set(ids)) or set(ids) != {b["id"] for b in bodies}:
        report.problems.append("inbox event ids are not exactly the unique events")
    reference = make_engine(reference_url)
    try:
        in_order(reference, bodies)
        got, want = entry_keys(engine), entry_keys(reference)
        report.in_effect = sum(got.values())
        if got != want:
            extra, missing = got - want, want - got
            report.problems.append(
                f"ledger in effect differs: {sum(extra.values())} extra, "
                f"{sum(missing.values())} missing (e.g. {list(extra)[:2]} / {list(missing)[:2]})"
            )
        if monthly_sums(engine) != monthly_sums(reference):
            report.problems.append("per-month per-category sums differ from in-order delivery")
    finally:
        reference.dispose()
