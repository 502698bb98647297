"""The Stripe client: rate limit, retries, counting, over the library's pluggable HTTP client."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import pytest
import stripe

from ledger.settings import ConfigError, Settings
from tests.support.stripe_transport import (
    Answer,
    FakeTransport,
    error,
    network_down,
    ok,
    scripted,
)
from workers.stripe_client import (
    NETWORK_ERROR,
    RateLimiter,
    StripeApi,
    connect,
    endpoint,
)

SETTINGS = Settings("sqlite://", None, (), "sk_test_fake", "https://stripe.fake.test", None)
COUPON = {"id": "SPRING", "object": "coupon", "percent_off": 25, "duration": "forever"}
WHERE = "GET /v1/coupons/{id}"


def api_over(
    answers: list[Callable[[], Answer]], **options: Any
) -> tuple[StripeApi, FakeTransport, list[float]]:
    transport = FakeTransport(scripted(answers))
    slept: list[float] = []
    options = {"rps": 0, "backoff_base": 0.001, "sleep": slept.append, **options}
    return connect(SETTINGS, transport=transport, **options), transport, slept


def throttled(**headers: str) -> Callable[[], Answer]:
    return lambda: error(429, "Too many requests", **headers)


def failing(status: int) -> Callable[[], Answer]:
    return lambda: error(status, "injected fault")


def coupon() -> Answer:
    return ok(COUPON)


def test_an_endpoint_is_named_for_the_operation_not_the_object() -> None:
    assert endpoint("get", "https://api.stripe.com/v1/events?limit=100") == "GET /v1/events"
    assert endpoint("get", "https://x.test/v1/invoices/in_1/lines") == "GET /v1/invoices/{id}/lines"
    assert endpoint("GET", "http://127.0.0.1:12111/stripe/v1/customers/cus_9") == (
        "GET /v1/customers/{id}"
    )


def test_the_rate_limiter_spaces_requests() -> None:
    now = [0.0]
    waits: list[float] = []
    limiter = RateLimiter(25, clock=lambda: now[0], sleep=waits.append)
    for _ in range(5):
        limiter.acquire()
    assert waits == pytest.approx([0.04, 0.08, 0.12, 0.16])


def test_threads_share_one_rate_limit_and_every_request_waits_its_turn() -> None:
    waits: list[float] = []
    limiter = RateLimiter(10, clock=lambda: 0.0, sleep=waits.append)
    api, transport, _ = api_over([coupon], limiter=limiter)

    def fetch_five() -> None:
        for _ in range(5):
            api.reference("coupon", "SPRING")

    threads = [threading.Thread(target=fetch_five) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(transport.urls) == api.requests == 20
    assert sorted(waits) == pytest.approx([n / 10 for n in range(1, 20)])
    assert api.counts.snapshot() == {(WHERE, "200"): 20}


def test_a_429_is_retried_with_growing_backoff_then_succeeds() -> None:
    api, _, slept = api_over([throttled(), throttled(), throttled(), coupon], backoff_base=1.0)
    assert api.reference("coupon", "SPRING") == COUPON
    # Attempt n waits base x 2^(n-1), less up to half of it (jitter).
    assert [0.5 <= slept[0] <= 1, 1 <= slept[1] <= 2, 2 <= slept[2] <= 4] == [True] * 3
    assert api.counts.snapshot() == {(WHERE, "429"): 3, (WHERE, "200"): 1}


def test_429s_give_up_after_the_retries_with_a_rate_limit_error() -> None:
    api, transport, slept = api_over([throttled()], max_429_retries=3)
    with pytest.raises(stripe.RateLimitError, match="Too many requests"):
        api.reference("coupon", "SPRING")
    assert len(transport.urls) == 4 and len(slept) == 3
    assert api.counts.answered("429") == 4


def test_a_429_stripe_says_not_to_retry_is_not_retried() -> None:
    api, transport, slept = api_over([throttled(**{"Stripe-Should-Retry": "false"}), coupon])
    with pytest.raises(stripe.RateLimitError):
        api.reference("coupon", "SPRING")
    assert len(transport.urls) == 1 and slept == []


def test_a_429_stripe_says_to_retry_is_retried_once_by_the_library_alone() -> None:
    api, transport, slept = api_over([throttled(**{"Stripe-Should-Retry": "true"}), coupon])
    assert api.reference("coupon", "SPRING") == COUPON
    assert len(transport.urls) == 2 and slept == []  # no second loop on top of the library's


def test_5xx_answers_are_retried_then_succeed() -> None:
    api, _, _ = api_over([failing(500), failing(503), coupon])
    assert api.reference("coupon", "SPRING") == COUPON
    assert api.counts.snapshot() == {(WHERE, "500"): 1, (WHERE, "503"): 1, (WHERE, "200"): 1}


def test_5xx_answers_give_up_after_the_network_retries_with_an_api_error() -> None:
    api, transport, _ = api_over([failing(503)], network_retries=2)
    with pytest.raises(stripe.APIError) as raised:
        api.reference("coupon", "SPRING")
    assert raised.value.http_status == 503 and "injected fault" in str(raised.value)
    assert len(transport.urls) == 3 and api.counts.answered("503") == 3


def test_network_errors_are_retried_counted_and_then_reported() -> None:
    api, _, _ = api_over([network_down, coupon])
    assert api.reference("coupon", "SPRING") == COUPON
    assert api.counts.snapshot() == {(WHERE, NETWORK_ERROR): 1, (WHERE, "200"): 1}
    down, transport, _ = api_over([network_down], network_retries=2)
    with pytest.raises(stripe.APIConnectionError):
        down.reference("coupon", "SPRING")
    assert len(transport.urls) == 3 and down.counts.answered(NETWORK_ERROR) == 3


def test_errors_that_retrying_cannot_fix_are_not_retried() -> None:
    api, transport, _ = api_over([lambda: error(404, "No such coupon: 'GONE'"), coupon])
    with pytest.raises(stripe.InvalidRequestError, match="No such coupon"):
        api.reference("coupon", "GONE")
    assert len(transport.urls) == 1 and api.counts.snapshot() == {(WHERE, "404"): 1}


def test_references_are_read_from_their_endpoints_as_plain_json() -> None:
    price = {"id": "price_seats", "object": "price", "tiers": [{"up_to": None}]}
    api, transport, _ = api_over([lambda: ok(price), coupon])
    assert api.reference("price", "price_seats") == price
    assert api.reference("coupon", "25% off/ever") == COUPON
    assert api.reference("discount", "di_1") is None  # no endpoint serves a discount alone
    price_url, coupon_url = (urlsplit(u) for u in transport.urls)
    assert price_url.path == "/v1/prices/price_seats"
    assert parse_qsl(price_url.query) == [("expand[0]", "tiers")]
    assert coupon_url.path == "/v1/coupons/25%25%20off%2Fever"
    assert api.counts.snapshot() == {
        ("GET /v1/prices/{id}", "200"): 1,
        ("GET /v1/coupons/{id}", "200"): 1,
    }


def test_pages_are_followed_and_every_page_is_a_counted_request() -> None:
    pages = iter(
        [
            {"object": "list", "data": [{"id": "cus_1"}, {"id": "cus_2"}], "has_more": True},
            {"object": "list", "data": [{"id": "cus_3"}], "has_more": False},
        ]
    )
    api, transport, _ = api_over([lambda: ok(next(pages))])
    assert [c["id"] for c in api.paginate("/v1/customers", limit=2)] == ["cus_1", "cus_2", "cus_3"]
    assert dict(parse_qsl(urlsplit(transport.urls[1]).query))["starting_after"] == "cus_2"
    assert api.counts.snapshot() == {("GET /v1/customers", "200"): 2}


def test_without_a_key_there_is_no_api() -> None:
    with pytest.raises(ConfigError, match="STRIPE_API_KEY is not set"):
        connect(Settings("sqlite://", None, (), None, None, None))
