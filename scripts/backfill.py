"""The ops backfill: Stripe's objects and recent events into the inbox, then the ledger.

Stripe I/O lives here (a rate-limited, retrying client over the official library); the
history itself is rebuilt by the pure `ledger.backfill.history`, stored and processed by
`ledger.backfill.store`. Safe to re-run: every event has a fixed id and the inbox stores an id
once, so a second run, or a run next to live webhooks, stores and appends nothing new.
"""

from __future__ import annotations

import logging
import random
import sys
import threading
import time
from collections import defaultdict
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import IO, Any

import stripe
from sqlalchemy import Engine
from sqlalchemy.exc import SQLAlchemyError

from ledger.backfill import history
from ledger.backfill import store as backfill_store
from ledger.processing import Fetcher
from ledger.rules.events import customer_of, parse_event
from ledger.rules.timeline import RELEVANT_TYPES
from ledger.settings import Settings
from ledger.storage.db import make_engine

log = logging.getLogger(__name__)

DEFAULT_RPS = 25.0  # Stripe's test-mode limit; live mode allows more
PAGE = 100
# The event types the rules read; Stripe's `types` filter takes at most 20 names a request.
EVENT_TYPES = sorted(RELEVANT_TYPES)
TYPES_PER_REQUEST = 20
READ_PERMISSIONS = "Customers, Subscriptions, Invoices, Prices and Events (Read)"


class BackfillError(Exception):
    """Ends the backfill with one line saying what to do; nothing has been written."""


# --- Stripe I/O -----------------------------------------------------------------------------


class RateLimiter:
    """A token bucket holding one token: requests leave at most `rate` per second, evenly."""

    def __init__(
        self,
        rate: float,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.rate = rate
        self._clock = clock
        self._sleep = sleep
        self._lock = threading.Lock()
        self._next = clock()

    def acquire(self) -> None:
        if self.rate <= 0:
            return
        with self._lock:
            now = self._clock()
            start = max(now, self._next)
            self._next = start + 1.0 / self.rate
        if start > now:
            self._sleep(start - now)


def backoff_seconds(attempt: int, base: float) -> float:
    """Exponential backoff with jitter: attempt 1 waits about `base`, capped at 32 x base."""
    return float(base * min(2 ** (attempt - 1), 32) * (0.5 + random.random() / 2))


class LimitedHttpClient(stripe.RequestsClient):  # type: ignore[misc]
    """Every request waits for the rate limiter and is counted; a 429 is retried with backoff.

    5xx answers and network errors are retried by the library itself (`max_network_retries`),
    through this client again, with the same backoff.
    """

    def __init__(
        self,
        limiter: RateLimiter,
        *,
        max_429_retries: int = 8,
        backoff_base: float = 0.5,
        sleep: Callable[[float], None] = time.sleep,
        timeout: float = 30,
    ) -> None:
        super().__init__(timeout=timeout)
        self.limiter = limiter
        self.max_429_retries = max_429_retries
        self.backoff_base = backoff_base
        self._sleep = sleep
        self._lock = threading.Lock()
        self.request_count = 0  # `requests` is the requests module in the base class
        self.throttled = 0

    def request(
        self,
        method: str,
        url: str,
        headers: Mapping[str, str] | None,
        post_data: Any = None,
        *,
        _usage: list[str] | None = None,
    ) -> tuple[Any, int, Mapping[str, str]]:
        attempt = 0
        while True:
            self.limiter.acquire()
            with self._lock:
                self.request_count += 1
            answer: tuple[Any, int, Mapping[str, str]] = super().request(
                method, url, headers, post_data
            )
            if answer[1] != 429 or attempt >= self.max_429_retries:
                return answer
            attempt += 1
            with self._lock:
                self.throttled += 1
            self._sleep(backoff_seconds(attempt, self.backoff_base))

    def _sleep_time_seconds(self, num_retries: int) -> float:
        return backoff_seconds(num_retries, self.backoff_base)


class StripeSource:
    """The Stripe reads the backfill makes, each a paginated list where Stripe has one.

    Requests go through the official client (auth, API version, retries, error types) with
    `raw_request`: building the library's objects for every invoice line cost more than the
    rest of the backfill together, and plain dicts are what the rules read anyway.
    """

    def __init__(self, client: stripe.StripeClient, http: LimitedHttpClient) -> None:
        self.client = client
        self.http = http

    @property
    def requests(self) -> int:
        return int(self.http.request_count)

    def _get(self, path: str, **params: Any) -> dict[str, Any]:
        return dict(self.client.raw_request("get", path, **params).data)

    def _list(self, path: str, **params: Any) -> Iterator[dict[str, Any]]:
        """Every item of a Stripe list, page by page (`has_more`, `starting_after`)."""
        params = {"limit": PAGE, **params}
        while True:
            page = self._get(path, **params)
            data: list[dict[str, Any]] = page.get("data") or []
            yield from data
            if not page.get("has_more") or not data:
                return
            params["starting_after"] = data[-1]["id"]

    def preflight(self) -> None:
        """One cheap read per resource, so a key without access fails before any write."""
        self._get("/v1/customers", limit=1)
        self._get("/v1/subscriptions", limit=1, status="all")
        self._get("/v1/invoices", limit=1)
        self._get("/v1/prices", limit=1)
        self._get("/v1/events", limit=1)

    def prices(self) -> dict[str, dict[str, Any]]:
        return {str(p["id"]): p for p in self._list("/v1/prices", expand=["data.tiers"])}

    def customer_ids(self, starting_after: str | None) -> Iterator[list[str]]:
        """Customer ids, one page at a time, in Stripe's order (newest first)."""
        params: dict[str, Any] = {"limit": PAGE}
        if starting_after:
            params["starting_after"] = starting_after
        while True:
            page = self._get("/v1/customers", **params)
            ids = [str(c["id"]) for c in page.get("data") or []]
            if ids:
                yield ids
            if not page.get("has_more") or not ids:
                return
            params["starting_after"] = ids[-1]

    def customer_exists(self, customer_id: str) -> bool:
        try:
            found = self._get(f"/v1/customers/{customer_id}")
        except stripe.InvalidRequestError as problem:
            if problem.http_status == 404:
                return False
            raise
        return not found.get("deleted", False)

    def subscriptions(self, customer_id: str) -> list[dict[str, Any]]:
        return list(self._list("/v1/subscriptions", customer=customer_id, status="all"))

    def invoices(self, customer_id: str) -> list[dict[str, Any]]:
        found = list(self._list("/v1/invoices", customer=customer_id))
        for invoice in found:
            lines = invoice.get("lines") or {}
            if lines.get("has_more"):
                lines["data"] = list(self._list(f"/v1/invoices/{invoice['id']}/lines"))
                lines["has_more"] = False
        return found

    def events(self, created_from: int) -> list[dict[str, Any]]:
        found: list[dict[str, Any]] = []
        for start in range(0, len(EVENT_TYPES), TYPES_PER_REQUEST):
            types = EVENT_TYPES[start : start + TYPES_PER_REQUEST]
            found.extend(self._list("/v1/events", types=types, created={"gte": created_from}))
        return found


def make_source(
    settings: Settings,
    *,
    rps: float = DEFAULT_RPS,
    network_retries: int = 4,
    backoff_base: float = 0.5,
    sleep: Callable[[float], None] = time.sleep,
) -> StripeSource:
    if not settings.stripe_api_key:
        raise BackfillError(
            "STRIPE_API_KEY is not set: export a secret or restricted key with read access "
            f"to {READ_PERMISSIONS} and run again"
        )
    http = LimitedHttpClient(RateLimiter(rps), backoff_base=backoff_base, sleep=sleep)
    base: dict[str, str] = {"api": settings.stripe_api_base} if settings.stripe_api_base else {}
    client = stripe.StripeClient(
        settings.stripe_api_key,
        base_addresses=base,  # type: ignore[arg-type]
        max_network_retries=network_retries,
        http_client=http,
    )
    return StripeSource(client, http)


def explain(problem: stripe.StripeError, settings: Settings) -> str:
    """One line saying what went wrong with Stripe and what to do about it."""
    if isinstance(problem, stripe.AuthenticationError):
        return (
            "the API key was rejected by Stripe (401): check STRIPE_API_KEY "
            "(a live key for live data, a test key for test data; not revoked)"
        )
    if isinstance(problem, stripe.PermissionError):
        return (
            "the API key may not read everything the backfill needs (403): give the restricted "
            f"key read access to {READ_PERMISSIONS}, or use a secret key"
        )
    if isinstance(problem, stripe.APIConnectionError):
        where = settings.stripe_api_base or "https://api.stripe.com"
        return (
            f"cannot reach the Stripe API at {where}: check STRIPE_API_BASE and the network "
            "(retried with backoff before giving up)"
        )
    if isinstance(problem, stripe.RateLimitError):
        return (
            "Stripe kept answering 429 (rate limited) after retries: run again with a lower --rps"
        )
    status = getattr(problem, "http_status", None)
    message = getattr(problem, "user_message", None) or str(problem)
    return f"Stripe answered {status}: {message}".replace("\n", " ")


# --- the run ----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Options:
    since: int | None = None
    customer: str | None = None
    dry_run: bool = False
    resume: bool = False
    concurrency: int = 4
    rps: float = DEFAULT_RPS
    via_queue: bool = False
    now: int | None = None

    @property
    def scope(self) -> str:
        who = f"customer:{self.customer}" if self.customer else "all"
        return who if self.since is None else f"{who}:since:{self.since}"


@dataclass(slots=True)
class Summary:
    customers: int = 0
    subscriptions: int = 0
    invoices: int = 0
    events: int = 0
    synthesized: int = 0
    stored: int = 0
    present: int = 0
    appended: int = 0
    reversed: int = 0
    requests: int = 0
    seconds: float = 0.0
    resumed_after: int = 0
    warnings: list[str] = field(default_factory=list)

    def lines(self, dry_run: bool) -> list[str]:
        verb = "would store" if dry_run else "stored"
        return [
            f"customers: {self.customers}  subscriptions: {self.subscriptions}  "
            f"invoices: {self.invoices}  events (last 30 days): {self.events}",
            f"events synthesized from objects: {self.synthesized}; {verb}: {self.stored}; "
            f"already present: {self.present}",
            f"entries {'that would be ' if dry_run else ''}appended: {self.appended} "
            f"(reversals: {self.reversed})",
            f"requests: {self.requests} in {self.seconds:.1f}s; warnings: {len(self.warnings)}",
            *(f"warning: {w}" for w in self.warnings[:50]),
        ]


@dataclass(slots=True)
class _CustomerResult:
    customer_id: str
    subscriptions: int = 0
    invoices: int = 0
    synthesized: int = 0
    stored: int = 0
    present: int = 0
    appended: int = 0
    reversed: int = 0
    warnings: list[str] = field(default_factory=list)
    lines: list[str] = field(default_factory=list)


class Progress:
    """A progress bar on a terminal, a plain log line every few seconds otherwise."""

    def __init__(self, total: int, stream: IO[str], requests: Callable[[], int]) -> None:
        self.total = total
        self.done = 0
        self.objects = 0
        self._stream = stream
        self._requests = requests
        self._tty = stream.isatty()
        self._start = time.monotonic()
        self._last = 0.0

    def advance(self, objects: int) -> None:
        self.done += 1
        self.objects += objects
        now = time.monotonic()
        if self._tty or now - self._last >= 5 or self.done == self.total:
            self._last = now
            self._show(now)

    def _show(self, now: float) -> None:
        elapsed = max(now - self._start, 1e-6)
        left = (self.total - self.done) * elapsed / self.done if self.done else 0.0
        text = (
            f"{self.done}/{self.total} customers, {self.objects} objects, "
            f"{self._requests() / elapsed:.1f} req/s, {left:.0f}s left"
        )
        if self._tty:
            width = 24
            filled = width * self.done // max(self.total, 1)
            bar = "#" * filled + "-" * (width - filled)
            end = "\n" if self.done == self.total else ""
            self._stream.write(f"\r[{bar}] {text}{end}")
        else:
            self._stream.write(f"backfill: {text}\n")
        self._stream.flush()


Hook = Callable[[str], None]


class Backfill:
    def __init__(
        self,
        settings: Settings,
        source: StripeSource,
        options: Options,
        *,
        engine: Engine | None = None,
        out: Callable[[str], None] = print,
        progress_stream: IO[str] | None = None,
        after_customer: Hook | None = None,
        fetch: Fetcher | None = None,
    ) -> None:
        self.settings = settings
        self.source = source
        self.options = options
        self.engine = engine or make_engine(settings.database_url)
        self.out = out
        self.progress_stream = progress_stream or sys.stderr
        self.after_customer = after_customer
        self.fetch = fetch
        self.now = options.now or int(time.time())
        self.prices: dict[str, dict[str, Any]] = {}
        self.events_by_customer: dict[str, list[dict[str, Any]]] = defaultdict(list)
        self.summary = Summary()
        self._lock = threading.Lock()
        self._processed: set[str] = set()

    # Reads only, until every Stripe resource answered: a bad key writes nothing.
    def run(self) -> Summary:
        started = time.monotonic()
        checkpoint = self._checkpoint()
        try:
            self.source.preflight()
            if self.options.customer and not self.source.customer_exists(self.options.customer):
                raise BackfillError(
                    f"no customer {self.options.customer} in this Stripe account "
                    "(check --customer and that the key is for the right account and mode)"
                )
            self.prices = self.source.prices()
            events = self._recent_events()
            ids = self._customer_ids(checkpoint)
        except stripe.StripeError as problem:
            raise BackfillError(explain(problem, self.settings)) from None
        self._store_recent(events)
        try:
            self._customers(ids, checkpoint)
            self._leftovers(events)
        except stripe.StripeError as problem:
            raise BackfillError(
                explain(problem, self.settings) + "; run again with --resume to continue"
            ) from None
        self.summary.requests = self.source.requests
        self.summary.seconds = time.monotonic() - started
        return self.summary

    def _checkpoint(self) -> backfill_store.Checkpoint | None:
        try:
            with self.engine.connect() as conn:
                found = backfill_store.load_checkpoint(conn, self.options.scope)
        except SQLAlchemyError as problem:
            raise BackfillError(
                f"cannot read the database ({type(problem).__name__}): check DATABASE_URL and "
                "run `mrr db upgrade`"
            ) from None
        if not self.options.resume:
            return None
        if found is None or found.completed:
            what = "completed" if found else "no checkpoint"
            self.out(f"resume: {what} for {self.options.scope}; starting from the beginning")
            return None
        self.summary.resumed_after = found.customers_done
        self.out(f"resume: {found.customers_done} customers already done, continuing")
        return found

    def _recent_events(self) -> list[dict[str, Any]]:
        window = self.now - history.EVENT_RETENTION_SECONDS
        created_from = max(window, self.options.since or window)
        events = self.source.events(created_from)
        if self.options.customer:
            wanted = self.options.customer
            events = [e for e in events if customer_of(parse_event(e)) == wanted]
        for event in events:
            owner = customer_of(parse_event(event))
            if owner is not None:
                self.events_by_customer[owner].append(event)
        self.summary.events = len(events)
        return events

    def _store_recent(self, events: Sequence[dict[str, Any]]) -> None:
        if self.options.dry_run:
            with self.engine.connect() as conn:
                known = backfill_store.present_ids(conn, [str(e["id"]) for e in events])
            self.summary.present += len(known)
            self.summary.stored += len(events) - len(known)
            return
        with self.engine.begin() as conn:
            inserted, present = backfill_store.store_bodies(conn, events)
        self.summary.stored += inserted
        self.summary.present += present

    def _customer_ids(self, checkpoint: backfill_store.Checkpoint | None) -> list[list[str]]:
        if self.options.customer:
            return [[self.options.customer]]
        cursor = checkpoint.cursor if checkpoint else None
        return list(self.source.customer_ids(cursor))

    def _customers(
        self, pages: list[list[str]], checkpoint: backfill_store.Checkpoint | None
    ) -> None:
        done = checkpoint.customers_done if checkpoint else 0
        progress = Progress(
            sum(len(p) for p in pages), self.progress_stream, lambda: self.source.requests
        )
        if not self.options.dry_run:
            with self.engine.begin() as conn:
                cursor = checkpoint.cursor if checkpoint else None
                backfill_store.save_checkpoint(
                    conn, self.options.scope, cursor, done, completed=False
                )
        workers = max(1, self.options.concurrency)
        pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="backfill")
        try:
            for page in pages:
                for result in pool.map(self._one_customer, page):
                    self._count(result)
                    progress.advance(result.subscriptions + result.invoices + 1)
                    if self.after_customer is not None:
                        self.after_customer(result.customer_id)
                done += len(page)
                if not self.options.dry_run:
                    with self.engine.begin() as conn:
                        backfill_store.save_checkpoint(
                            conn, self.options.scope, page[-1], done, completed=False
                        )
        finally:
            # Ctrl-C or a crash: customers not started are dropped; those running finish
            # their own transaction. The checkpoint still names the last complete page.
            pool.shutdown(wait=True, cancel_futures=True)
        if not self.options.dry_run:
            with self.engine.begin() as conn:
                backfill_store.save_checkpoint(conn, self.options.scope, None, done, completed=True)

    def _count(self, result: _CustomerResult) -> None:
        s = self.summary
        s.customers += 1
        s.subscriptions += result.subscriptions
        s.invoices += result.invoices
        s.synthesized += result.synthesized
        s.stored += result.stored
        s.present += result.present
        s.appended += result.appended
        s.reversed += result.reversed
        s.warnings.extend(result.warnings)
        for line in result.lines:
            self.out(line)

    def _one_customer(self, customer_id: str) -> _CustomerResult:
        result = _CustomerResult(customer_id)
        subscriptions = self.source.subscriptions(customer_id)
        invoices = self.source.invoices(customer_id)
        result.subscriptions, result.invoices = len(subscriptions), len(invoices)
        synthetic: list[dict[str, Any]] = []
        for sub in subscriptions:
            made = history.synthesize(
                sub, invoices, self.prices, now=self.now, api_version=_api_version(sub)
            )
            synthetic.extend(made.events)
            result.warnings.extend(made.warnings)
        with self.engine.connect() as conn:
            real = backfill_store.real_events(conn, customer_id)
        real += self.events_by_customer.get(customer_id, [])
        synthetic = history.drop_overlapping(synthetic, history.cutoffs_from_real_events(real))
        if self.options.since is not None:
            synthetic = _since(synthetic, self.options.since)
        result.synthesized = len(synthetic)
        if self.options.dry_run:
            self._dry_run(customer_id, synthetic, result)
        else:
            self._store_and_process(customer_id, synthetic, result)
        return result

    def _dry_run(
        self, customer_id: str, synthetic: list[dict[str, Any]], result: _CustomerResult
    ) -> None:
        recent = self.events_by_customer.get(customer_id, [])
        with self.engine.connect() as conn:
            present = backfill_store.present_ids(conn, [str(e["id"]) for e in synthetic])
            new = [e for e in synthetic if e["id"] not in present]
            unstored = backfill_store.present_ids(conn, [str(e["id"]) for e in recent])
            entries = backfill_store.would_append(
                conn, customer_id, new + [e for e in recent if e["id"] not in unstored]
            )
        result.stored, result.present = len(new), len(present)
        result.appended = len(entries)
        for event in new:
            at = datetime.fromtimestamp(event["created"], UTC).isoformat()
            result.lines.append(f"would store {event['id']} {event['type']} {at} {customer_id}")
        for category, amount, currency, effective, source in entries:
            result.lines.append(
                f"would append {customer_id} {category} {amount} {currency} {effective} "
                f"from {source}"
            )

    def _store_and_process(
        self, customer_id: str, synthetic: list[dict[str, Any]], result: _CustomerResult
    ) -> None:
        with self.engine.begin() as conn:
            result.stored, result.present = backfill_store.store_bodies(conn, synthetic)
        if self.options.via_queue:
            self._enqueue(customer_id, synthetic)
            return
        processed = backfill_store.process_customer(
            self.engine, customer_id, max_attempts=self.settings.max_attempts, fetch=self.fetch
        )
        result.appended, result.reversed = processed.appended, processed.reversed
        result.warnings.extend(processed.failed)
        with self._lock:
            self._processed.add(customer_id)

    def _enqueue(self, customer_id: str, synthetic: list[dict[str, Any]]) -> None:
        from workers.queue import connect, enqueue_batches, make_queue

        ids = [str(e["id"]) for e in synthetic + self.events_by_customer.get(customer_id, [])]
        with self.engine.connect() as conn:
            pending = backfill_store.pending_ids_of(conn, ids)
        enqueue_batches(make_queue(self.settings, connect(self.settings)), pending)
        with self._lock:
            self._processed.add(customer_id)

    def _leftovers(self, events: Sequence[dict[str, Any]]) -> None:
        """Recent events of customers not listed (deleted ones) and of no customer (coupons)."""
        if self.options.dry_run:
            return
        for customer_id in sorted(set(self.events_by_customer) - self._processed):
            if self.options.customer and customer_id != self.options.customer:
                continue
            batch = backfill_store.process_customer(
                self.engine, customer_id, max_attempts=self.settings.max_attempts, fetch=self.fetch
            )
            self.summary.appended += batch.appended
            self.summary.reversed += batch.reversed
            self.summary.warnings.extend(batch.failed)
        orphans = [str(e["id"]) for e in events if customer_of(parse_event(e)) is None]
        if orphans:
            with self.engine.connect() as conn:
                ids = backfill_store.pending_ids_of(conn, orphans)
            done = backfill_store.process_rows(
                self.engine, ids, max_attempts=self.settings.max_attempts, fetch=self.fetch
            )
            self.summary.appended += done.appended
            self.summary.reversed += done.reversed
            self.summary.warnings.extend(done.failed)


def _api_version(sub: Mapping[str, Any]) -> str | None:
    """The API shape of a payload, named by the version that introduced it."""
    return (
        "2025-02-24.acacia" if sub.get("current_period_start") is not None else "2025-03-31.basil"
    )


def _since(events: list[dict[str, Any]], since: int) -> list[dict[str, Any]]:
    by_sub: dict[str | None, list[dict[str, Any]]] = defaultdict(list)
    for event in events:
        by_sub[history.subscription_of(event["data"]["object"])].append(event)
    kept: list[dict[str, Any]] = []
    for group in by_sub.values():
        kept.extend(history.start_at(group, since))
    return sorted(kept, key=lambda e: (e["created"], e["id"]))
