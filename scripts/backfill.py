"""The ops backfill: Stripe's objects and recent events into the inbox, then the ledger.

Stripe I/O goes through `workers.stripe_client` (rate-limited, retried, counted); the
history itself is rebuilt by the pure `ledger.backfill.history`, stored and processed by
`ledger.backfill.store`. Safe to re-run: every event has a fixed id and the inbox stores an id
once, so a second run, or a run next to live webhooks, stores and appends nothing new.
"""

from __future__ import annotations

import logging
import sys
import threading
import time
from collections import Counter, defaultdict
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
from ledger.rules.events import customer_of, parse_event
from ledger.rules.payloads import (
    PayloadError,
    is_old_shape,
    object_id,
    read_invoice_line,
    subscription_of,
)
from ledger.rules.profiles import ProfileVersion, read_profile
from ledger.rules.sources import Unit, key_mode, mode_name
from ledger.rules.timeline import RELEVANT_TYPES
from ledger.settings import Settings
from ledger.storage import profiles as profile_store
from ledger.storage.db import make_engine
from workers import stripe_client
from workers.stripe_client import DEFAULT_RPS, PAGE, REFERENCES, RateLimiter, StripeApi

log = logging.getLogger(__name__)

# The event types the rules read; Stripe's `types` filter takes at most 20 names a request.
EVENT_TYPES = sorted(RELEVANT_TYPES)
TYPES_PER_REQUEST = 20
READ_PERMISSIONS = "Customers, Subscriptions, Invoices, Prices and Events (Read)"
# Where discounts hang, as ids unless expanded (Stripe expands at most 4 levels deep).
SUBSCRIPTION_DISCOUNTS = ("discounts", "items.data.discounts")
INVOICE_DISCOUNTS = ("discounts", "lines.data.discounts")


class BackfillError(Exception):
    """Ends the backfill with one line saying what to do; nothing has been written."""


# --- Stripe I/O -----------------------------------------------------------------------------


class StripeSource:
    """The Stripe reads the backfill makes, each a paginated list where Stripe has one.

    Every request, the reference objects that processing fetches included, goes through one
    `StripeApi`: one rate limit (`--rps`), one request count.
    """

    def __init__(self, api: StripeApi) -> None:
        self.api = api
        # Discounts have no endpoint of their own: each one the listings expanded, by id.
        self.discounts: dict[str, dict[str, Any]] = {}
        self._lock = threading.Lock()

    @property
    def requests(self) -> int:
        return self.api.requests

    def reference(self, kind: str, object_id: str) -> dict[str, Any] | None:
        """A reference object the rules ask for (a `ledger.processing.Fetcher`): prices and
        coupons from the API, discounts from what the listings expanded (None if none did)."""
        if kind == "discount":
            with self._lock:
                return self.discounts.get(object_id)
        if kind not in REFERENCES:
            return None
        return self.api.reference(kind, object_id)

    def price(self, price_id: str) -> dict[str, Any] | None:
        """One price by id, archived ones included (the price list holds only active ones);
        None if Stripe has no such price."""
        try:
            return self.api.reference("price", price_id)
        except stripe.InvalidRequestError as problem:
            if problem.http_status == 404:
                return None
            raise

    def known_discounts(self) -> dict[str, dict[str, Any]]:
        with self._lock:
            return dict(self.discounts)

    def _keep_discounts(self, objects: Sequence[dict[str, Any]], paths: Sequence[str]) -> None:
        found: dict[str, dict[str, Any]] = {}
        for obj in objects:
            for discount in _expanded(obj, paths):
                found[str(discount["id"])] = discount
        with self._lock:
            self.discounts.update(found)

    def preflight(self) -> None:
        """One cheap read per resource, so a key without access fails before any write."""
        self.api.get("/v1/customers", limit=1)
        self.api.get("/v1/subscriptions", limit=1, status="all")
        self.api.get("/v1/invoices", limit=1)
        self.api.get("/v1/prices", limit=1)
        self.api.get("/v1/events", limit=1)

    def account_id(self) -> str:
        """The key's Stripe account (`GET /v1/account`)."""
        return str(self.api.get("/v1/account").get("id") or "")

    def prices(self) -> dict[str, dict[str, Any]]:
        return {str(p["id"]): p for p in self.api.paginate("/v1/prices", expand=["data.tiers"])}

    def customers(self, starting_after: str | None) -> Iterator[list[dict[str, Any]]]:
        """Customer objects, one page at a time, in Stripe's order (newest first)."""
        params: dict[str, Any] = {"limit": PAGE}
        if starting_after:
            params["starting_after"] = starting_after
        while True:
            page = self.api.get("/v1/customers", **params)
            found = [dict(c) for c in page.get("data") or []]
            if found:
                yield found
            if not page.get("has_more") or not found:
                return
            params["starting_after"] = str(found[-1]["id"])

    def customer_exists(self, customer_id: str) -> bool:
        try:
            found = self.api.get(f"/v1/customers/{customer_id}")
        except stripe.InvalidRequestError as problem:
            if problem.http_status == 404:
                return False
            raise
        return not found.get("deleted", False)

    def subscriptions(self, customer_id: str) -> list[dict[str, Any]]:
        found = list(
            self.api.paginate(
                "/v1/subscriptions",
                customer=customer_id,
                status="all",
                expand=[f"data.{path}" for path in SUBSCRIPTION_DISCOUNTS],
            )
        )
        self._keep_discounts(found, SUBSCRIPTION_DISCOUNTS)
        return found

    def invoices(self, customer_id: str) -> list[dict[str, Any]]:
        found = list(
            self.api.paginate(
                "/v1/invoices",
                customer=customer_id,
                expand=[f"data.{path}" for path in INVOICE_DISCOUNTS],
            )
        )
        for invoice in found:
            lines = invoice.get("lines") or {}
            if lines.get("has_more"):
                lines["data"] = list(
                    self.api.paginate(
                        f"/v1/invoices/{invoice['id']}/lines", expand=["data.discounts"]
                    )
                )
                lines["has_more"] = False
        self._keep_discounts(found, INVOICE_DISCOUNTS)
        return found

    def events(self, created_from: int) -> list[dict[str, Any]]:
        found: list[dict[str, Any]] = []
        for start in range(0, len(EVENT_TYPES), TYPES_PER_REQUEST):
            types = EVENT_TYPES[start : start + TYPES_PER_REQUEST]
            found.extend(
                self.api.paginate("/v1/events", types=types, created={"gte": created_from})
            )
        return found


def make_source(
    settings: Settings,
    *,
    rps: float = DEFAULT_RPS,
    backoff_base: float = 0.5,
    sleep: Callable[[float], None] = time.sleep,
    limiter: RateLimiter | None = None,
    transport: stripe.HTTPClient | None = None,
) -> StripeSource:
    if not settings.stripe_api_key:
        raise BackfillError(
            "STRIPE_API_KEY is not set: export a secret or restricted key with read access "
            f"to {READ_PERMISSIONS} and run again"
        )
    api = stripe_client.connect(
        settings,
        rps=rps,
        backoff_base=backoff_base,
        sleep=sleep,
        limiter=limiter,
        transport=transport,
    )
    return StripeSource(api)


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
    if isinstance(status, int) and status >= 500:
        return (
            f"Stripe kept failing ({status}: {message}) after retries with backoff: "
            "Stripe may be down, try again later"
        ).replace("\n", " ")
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
    mode: str | None = None  # "live" or "test" when said explicitly (--mode)

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
    guesses: Counter[str] = field(default_factory=Counter)
    archived_prices: int = 0
    without_discount_terms: set[str] = field(default_factory=set)  # customers

    def add(self, processed: backfill_store.Processed) -> None:
        self.appended += processed.appended
        self.reversed += processed.reversed
        self.warnings.extend(processed.failed)

    def lines(self, dry_run: bool) -> list[str]:
        verb = "would store" if dry_run else "stored"
        unknown = sorted(self.without_discount_terms)
        return [
            f"customers: {self.customers}  subscriptions: {self.subscriptions}  "
            f"invoices: {self.invoices}  events (last 30 days): {self.events}",
            f"events synthesized from objects: {self.synthesized}; {verb}: {self.stored}; "
            f"already present: {self.present}",
            f"guessed: {sum(self.guesses.values())} of the synthesized events "
            "(each one's explanation says why)",
            *(
                f"  {self.guesses[kind]} {text}"
                for kind, text in history.GUESSES.items()
                if self.guesses[kind]
            ),
            *(
                [
                    f"discounts whose terms Stripe did not give (MRR counted without them): "
                    f"customers {', '.join(unknown[:20])}" + (" ..." if len(unknown) > 20 else "")
                ]
                if unknown
                else []
            ),
            *([f"archived prices fetched: {self.archived_prices}"] if self.archived_prices else []),
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
    guesses: Counter[str] = field(default_factory=Counter)
    unknown_discounts: bool = False


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
    ) -> None:
        self.settings = settings
        self.source = source
        self.options = options
        self.engine = engine or make_engine(settings.database_url)
        self.out = out
        self.progress_stream = progress_stream or sys.stderr
        self.after_customer = after_customer
        self.now = options.now or int(time.time())
        self.prices: dict[str, dict[str, Any]] = {}
        self.events_by_customer: dict[str, list[dict[str, Any]]] = defaultdict(list)
        self.summary = Summary()
        self._lock = threading.Lock()
        self._processed: set[str] = set()
        self._profiles: list[ProfileVersion] = []
        # The source the events are stored in: the key's mode, and its account (see _source).
        self.account = ""
        self.livemode = False

    # Reads only, until every Stripe resource answered: a bad key writes nothing.
    def run(self) -> Summary:
        started = time.monotonic()
        checkpoint = self._checkpoint()
        try:
            self.source.preflight()
            self._source(self.source.account_id())
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
        self._store_profiles()
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

    def _source(self, key_account: str) -> None:
        """The key's mode, checked against --mode and the ledger; its account id is kept only
        where the ledger already names it (a bound webhook secret, an earlier backfill):
        otherwise the events are the endpoint's own account's (""), as unbound webhooks'."""
        try:
            self.livemode = key_mode(self.settings.stripe_api_key or "")
        except ValueError as problem:
            raise BackfillError(str(problem)) from None
        mode = mode_name(self.livemode)
        if self.options.mode is not None and self.options.mode != mode:
            raise BackfillError(f"--mode {self.options.mode} but STRIPE_API_KEY is a {mode} key")
        with self.engine.connect() as conn:
            held = backfill_store.source_held(conn, key_account)
        if not self.livemode and self.options.mode is None and held.live:
            raise BackfillError(
                "STRIPE_API_KEY is a test-mode key and the ledger holds live data: test "
                "events never count in live figures, but say so with --mode test to go on"
            )
        self.account = key_account if held.named else ""

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
            inserted, present = backfill_store.store_bodies(conn, events, self.account)
        self.summary.stored += inserted
        self.summary.present += present

    def _customer_ids(self, checkpoint: backfill_store.Checkpoint | None) -> list[list[str]]:
        if self.options.customer:
            return [[self.options.customer]]
        cursor = checkpoint.cursor if checkpoint else None
        pages = list(self.source.customers(cursor))
        self._profiles = _listed_profiles(pages, self.now)
        return [[str(c["id"]) for c in page] for page in pages]

    def _store_profiles(self) -> None:
        """Names and emails of the listed customers, for the workspace (never logged)."""
        if self.options.dry_run or not self._profiles:
            return
        with self.engine.begin() as conn:
            profile_store.keep(conn, self._profiles)

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
        s.guesses.update(result.guesses)
        if result.unknown_discounts:
            s.without_discount_terms.add(result.customer_id)
        for line in result.lines:
            self.out(line)

    def _one_customer(self, customer_id: str) -> _CustomerResult:
        result = _CustomerResult(customer_id)
        subscriptions = self.source.subscriptions(customer_id)
        invoices = self.source.invoices(customer_id)
        result.subscriptions, result.invoices = len(subscriptions), len(invoices)
        prices = self._prices_for(customer_id, invoices, result)
        discounts = self.source.known_discounts()
        synthetic: list[dict[str, Any]] = []
        for sub in subscriptions:
            try:
                made = history.synthesize(
                    sub,
                    invoices,
                    prices,
                    now=self.now,
                    api_version=_api_version(sub),
                    discounts=discounts,
                )
            except PayloadError as problem:
                result.warnings.append(
                    f"{customer_id}: subscription {object_id(sub.get('id'))} refused, "
                    f"left out: {problem}"
                )
                continue
            synthetic.extend(made.events)
            result.warnings.extend(f"{customer_id}: {w}" for w in made.warnings)
            result.unknown_discounts = result.unknown_discounts or bool(made.unknown_discounts)
        with self.engine.connect() as conn:
            real = backfill_store.real_events(conn, Unit(customer_id, self.account, self.livemode))
        real += self.events_by_customer.get(customer_id, [])
        synthetic = history.drop_overlapping(synthetic, history.cutoffs_from_real_events(real))
        if self.options.since is not None:
            synthetic = _since(synthetic, self.options.since)
        result.synthesized = len(synthetic)
        result.guesses.update(
            guess.kind for guess in map(history.guess_of, synthetic) if guess is not None
        )
        if self.options.dry_run:
            self._dry_run(customer_id, synthetic, result)
        else:
            self._store_and_process(customer_id, synthetic, result)
        return result

    def _prices_for(
        self, customer_id: str, invoices: Sequence[dict[str, Any]], result: _CustomerResult
    ) -> dict[str, dict[str, Any]]:
        """The price list, plus each price an invoice line names by id that it lacks: an
        archived price is not listed, but Stripe still retrieves it by id."""
        with self._lock:
            known = set(self.prices)
        missing = sorted(set(_line_price_ids(invoices)) - known)
        fetched = {}
        for price_id in missing:
            found = self.source.price(price_id)
            if found is None:
                result.warnings.append(
                    f"{customer_id}: an invoice line names price {price_id}, which Stripe does "
                    "not have: the invoice is left out"
                )
            else:
                fetched[price_id] = found
        with self._lock:
            self.prices.update(fetched)
            self.summary.archived_prices += len(fetched)
            return dict(self.prices)

    def _dry_run(
        self, customer_id: str, synthetic: list[dict[str, Any]], result: _CustomerResult
    ) -> None:
        recent = self.events_by_customer.get(customer_id, [])
        with self.engine.connect() as conn:
            present = backfill_store.present_ids(conn, [str(e["id"]) for e in synthetic])
            new = [e for e in synthetic if e["id"] not in present]
            unstored = backfill_store.present_ids(conn, [str(e["id"]) for e in recent])
            entries = backfill_store.would_append(
                conn,
                Unit(customer_id, self.account, self.livemode),
                new + [e for e in recent if e["id"] not in unstored],
            )
        result.stored, result.present = len(new), len(present)
        result.appended = len(entries)
        for event in new:
            at = datetime.fromtimestamp(event["created"], UTC).isoformat()
            line = f"would store {event['id']} {event['type']} {at} {customer_id}"
            guess = history.guess_of(event)
            if guess is not None:
                line += f" (guessed: {guess.why})"
            result.lines.append(line)
        for category, amount, currency, effective, source in entries:
            result.lines.append(
                f"would append {customer_id} {category} {amount} {currency} {effective} "
                f"from {source}"
            )

    def _store_and_process(
        self, customer_id: str, synthetic: list[dict[str, Any]], result: _CustomerResult
    ) -> None:
        with self.engine.begin() as conn:
            result.stored, result.present = backfill_store.store_bodies(
                conn, synthetic, self.account
            )
        if self.options.via_queue:
            self._enqueue(customer_id, synthetic)
            return
        processed = backfill_store.process_customer(
            self.engine,
            customer_id,
            max_attempts=self.settings.max_attempts,
            fetch=self.source.reference,
        )
        result.appended, result.reversed = processed.appended, processed.reversed
        result.warnings.extend(f"{customer_id}: {failed}" for failed in processed.failed)
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
                self.engine,
                customer_id,
                max_attempts=self.settings.max_attempts,
                fetch=self.source.reference,
            )
            self.summary.add(batch)
        orphans = [str(e["id"]) for e in events if customer_of(parse_event(e)) is None]
        if orphans:
            with self.engine.connect() as conn:
                ids = backfill_store.pending_ids_of(conn, orphans)
            done = backfill_store.process_rows(
                self.engine,
                ids,
                max_attempts=self.settings.max_attempts,
                fetch=self.source.reference,
            )
            self.summary.add(done)


def _expanded(obj: Mapping[str, Any], paths: Sequence[str]) -> list[dict[str, Any]]:
    """The objects (not ids) found at each dotted path, `data` stepping through a list."""
    found: list[dict[str, Any]] = []
    for path in paths:
        level: list[Any] = [obj]
        for name in path.split("."):
            nxt: list[Any] = []
            for value in level:
                inner = value.get(name) if isinstance(value, Mapping) else None
                nxt.extend(inner if isinstance(inner, list) else [inner])
            level = nxt
        found += [v for v in level if isinstance(v, dict) and isinstance(v.get("id"), str)]
    return found


def _line_price_ids(invoices: Sequence[Mapping[str, Any]]) -> list[str]:
    """Price ids that invoice lines name without carrying the price (the current API shape)."""
    found = []
    for invoice in invoices:
        for line in (invoice.get("lines") or {}).get("data") or []:
            if isinstance(line.get("price"), dict) or isinstance(line.get("plan"), dict):
                continue
            try:
                price_id = read_invoice_line(line).price_id
            except PayloadError:
                continue  # the invoice is refused, with a warning, when it is read
            if price_id is not None:
                found.append(price_id)
    return found


def _listed_profiles(
    pages: Sequence[Sequence[Mapping[str, Any]]], now: int
) -> list[ProfileVersion]:
    """As of the run's start: newer than the customer events before it, older than those after."""
    found = (read_profile(customer) for page in pages for customer in page)
    return [ProfileVersion(p, now, "/v1/customers") for p in found if p is not None]


def _api_version(sub: Mapping[str, Any]) -> str | None:
    """The API shape of a payload, named by the version that introduced it."""
    return "2025-02-24.acacia" if is_old_shape(sub) else "2025-03-31.basil"


def _since(events: list[dict[str, Any]], since: int) -> list[dict[str, Any]]:
    by_sub: dict[str | None, list[dict[str, Any]]] = defaultdict(list)
    for event in events:
        by_sub[subscription_of(event["data"]["object"])].append(event)
    kept: list[dict[str, Any]] = []
    for group in by_sub.values():
        kept.extend(history.start_at(group, since))
    return sorted(kept, key=lambda e: (e["created"], e["id"]))
