"""The one way to Stripe's API: the official client, rate-limited, retried and counted.

The workers (reference objects) and the backfill (lists) both read through `StripeApi`:

- the official `stripe` library makes each call (auth, API version, error types) and retries,
  by its own rules (`max_network_retries`), 5xx answers, 409s, network errors and any answer
  that says `Stripe-Should-Retry: true`, with exponential backoff and jitter;
- `LimitedHttpClient`, plugged in as the library's HTTP client, adds what the library leaves
  out: a rate limit shared by every thread, retries of 429 answers (the library retries one
  only when Stripe asks it to), and a count of requests by endpoint and answer. Every attempt,
  retries included, waits its turn at the limiter and is counted;
- under it, any `stripe.HTTPClient` carries the bytes: `stripe.RequestsClient` by default, an
  in-process fake in tests.
"""

from __future__ import annotations

import random
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator, Mapping
from typing import Any
from urllib.parse import quote, urlsplit

import stripe

from ledger.rules.sources import key_mode
from ledger.settings import ConfigError, Settings
from workers.metrics import STRIPE_REQUESTS, STRIPE_RETRIES

__all__ = [
    "DEFAULT_RPS",
    "NETWORK_ERROR",
    "PAGE",
    "LimitedHttpClient",
    "RateLimiter",
    "RequestCounts",
    "StripeApi",
    "backoff_seconds",
    "connect",
    "endpoint",
]

DEFAULT_RPS = 25.0  # Stripe's test-mode limit; live mode allows more
PAGE = 100
NETWORK_ERROR = "network_error"  # the answer counted for a request that got no HTTP answer
# Kinds of reference object the rules may ask for, and how Stripe serves each. A discount has
# no endpoint of its own: it is only ever read inside its subscription or customer.
REFERENCES: Mapping[str, tuple[str, Mapping[str, Any]]] = {
    "price": ("prices", {"expand": ["tiers"]}),  # tiers come only when expanded
    "coupon": ("coupons", {}),
}


class RateLimiter:
    """A token bucket holding one token: requests leave at most `rate` per second, evenly.

    One limiter serves every thread of the process; a rate of 0 or less means no limit.
    """

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


def endpoint(method: str, url: str) -> str:
    """`GET /v1/invoices/{id}/lines`: one name per API operation, whatever the object id.

    Stripe limits and reports by operation the same way. Paths alternate resource and id after
    the version (`/v1/<resource>/<id>/<sub-resource>/<id>`); a prefix before it is dropped.
    """
    parts = urlsplit(url).path.strip("/").split("/")
    start = next((n for n, part in enumerate(parts) if part in ("v1", "v2")), 0)
    named = ["{id}" if n % 2 == 0 and n > 0 else part for n, part in enumerate(parts[start:])]
    return f"{method.upper()} /{'/'.join(named)}"


class RequestCounts:
    """Requests made, by endpoint and answer (an HTTP status, or `network_error`); thread-safe."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counts: Counter[tuple[str, str]] = Counter()

    def add(self, where: str, answer: str) -> None:
        with self._lock:
            self._counts[(where, answer)] += 1
        STRIPE_REQUESTS.labels(endpoint=where, status=answer).inc()

    def snapshot(self) -> dict[tuple[str, str], int]:
        """{(endpoint, answer): requests}, as of now."""
        with self._lock:
            return dict(self._counts)

    @property
    def total(self) -> int:
        with self._lock:
            return sum(self._counts.values())

    def answered(self, answer: str) -> int:
        """Requests that got this answer (`"429"`, `network_error`), at any endpoint."""
        with self._lock:
            return sum(n for (_, got), n in self._counts.items() if got == answer)


def _header(headers: Mapping[str, str] | None, name: str) -> str | None:
    for key, value in (headers or {}).items():
        if key.lower() == name:
            return value
    return None


class LimitedHttpClient(stripe.HTTPClient):  # type: ignore[misc]
    """The library's HTTP client with a rate limit, 429 retries and counting over a transport.

    The library calls `request` once per attempt of its own retry loop and waits between its
    attempts `_sleep_time_seconds`, which this client sets to the same backoff as for 429s.
    """

    name = "limited"  # reported in the library's user agent, where it names the HTTP library

    def __init__(
        self,
        transport: stripe.HTTPClient | None = None,
        *,
        limiter: RateLimiter | None = None,
        counts: RequestCounts | None = None,
        max_429_retries: int = 8,
        backoff_base: float = 0.5,
        sleep: Callable[[float], None] = time.sleep,
        timeout: float = 30,
    ) -> None:
        super().__init__()
        self.transport = transport or stripe.RequestsClient(timeout=timeout)
        self.limiter = limiter or RateLimiter(DEFAULT_RPS)
        self.counts = counts or RequestCounts()
        self.max_429_retries = max_429_retries
        self.backoff_base = backoff_base
        self._sleep = sleep

    def request(
        self,
        method: str,
        url: str,
        headers: Mapping[str, str] | None,
        post_data: Any = None,
        *,
        _usage: list[str] | None = None,
    ) -> tuple[Any, int, Mapping[str, str]]:
        where = endpoint(method, url)
        attempt = 0
        while True:
            self.limiter.acquire()
            try:
                answer: tuple[Any, int, Mapping[str, str]] = self.transport.request(
                    method, url, headers, post_data
                )
            except stripe.APIConnectionError:
                self.counts.add(where, NETWORK_ERROR)
                raise
            self.counts.add(where, str(answer[1]))
            if not self._retry_throttled(answer, attempt):
                return answer
            attempt += 1
            STRIPE_RETRIES.labels(reason="throttled").inc()
            self._sleep(backoff_seconds(attempt, self.backoff_base))

    def _retry_throttled(self, answer: tuple[Any, int, Mapping[str, str]], attempt: int) -> bool:
        _, status, headers = answer
        if status != 429 or attempt >= self.max_429_retries:
            return False
        # Stripe's word wins: "false" means a retry would fail the same way, and "true" (a lock
        # timeout) is retried by the library itself, which must not retry on top of this loop.
        return _header(headers, "stripe-should-retry") is None

    def _sleep_time_seconds(self, num_retries: int) -> float:
        STRIPE_RETRIES.labels(reason="library").inc()  # the library calls this before a retry
        return backoff_seconds(num_retries, self.backoff_base)

    def close(self) -> None:
        self.transport.close()  # type: ignore[no-untyped-call]


class StripeApi:
    """Stripe's read API as plain dicts, through the official client's `raw_request`.

    Plain dicts, not the library's objects: building those for every invoice line cost more
    than the rest of the backfill together, and plain dicts (decimal strings kept as strings)
    are what the stored references and the payload readers take.
    """

    def __init__(
        self, client: stripe.StripeClient, http: LimitedHttpClient, livemode: bool = False
    ) -> None:
        self.client = client
        self.http = http
        self.livemode = livemode  # the key's mode (sk_live_/rk_live_): what it reads

    def account_id(self) -> str:
        """The key's Stripe account (`GET /v1/account`)."""
        return str(self.get("/v1/account").get("id") or "")

    @property
    def counts(self) -> RequestCounts:
        return self.http.counts

    @property
    def requests(self) -> int:
        return self.http.counts.total

    def get(self, path: str, **params: Any) -> dict[str, Any]:
        return dict(self.client.raw_request("get", path, **params).data)

    def paginate(self, path: str, **params: Any) -> Iterator[dict[str, Any]]:
        """Every item of a Stripe list, page by page (`has_more`, `starting_after`)."""
        params = {"limit": PAGE, **params}
        while True:
            page = self.get(path, **params)
            data: list[dict[str, Any]] = page.get("data") or []
            yield from data
            if not page.get("has_more") or not data:
                return
            params["starting_after"] = data[-1]["id"]

    def reference(self, kind: str, object_id: str) -> dict[str, Any] | None:
        """A reference object the rules need (a `ledger.processing.Fetcher`); None if no kind."""
        found = REFERENCES.get(kind)
        if found is None:
            return None
        resource, params = found
        return self.get(f"/v1/{resource}/{quote(object_id, safe='')}", **params)


def connect(
    settings: Settings,
    *,
    rps: float = DEFAULT_RPS,
    network_retries: int = 4,
    max_429_retries: int = 8,
    backoff_base: float = 0.5,
    sleep: Callable[[float], None] = time.sleep,
    limiter: RateLimiter | None = None,
    transport: stripe.HTTPClient | None = None,
) -> StripeApi:
    """The API for the configured key and base; `limiter` replaces the one `rps` would make."""
    if not settings.stripe_api_key:
        raise ConfigError("STRIPE_API_KEY is not set: no Stripe API to read")
    http = LimitedHttpClient(
        transport,
        limiter=limiter or RateLimiter(rps),
        max_429_retries=max_429_retries,
        backoff_base=backoff_base,
        sleep=sleep,
    )
    base: dict[str, str] = {"api": settings.stripe_api_base} if settings.stripe_api_base else {}
    client = stripe.StripeClient(
        settings.stripe_api_key,
        base_addresses=base,  # type: ignore[arg-type]
        max_network_retries=network_retries,
        http_client=http,
    )
    return StripeApi(client, http, _livemode(settings.stripe_api_key))


def _livemode(api_key: str) -> bool:
    """A live key's mode; any key not named live (sk_test_, or a stand-in server's) is test."""
    try:
        return key_mode(api_key)
    except ValueError:
        return False
