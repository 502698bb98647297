"""Stripe API metrics: every attempt counted by endpoint and answer, and the retries by reason."""

from __future__ import annotations

from collections.abc import Callable

from prometheus_client import REGISTRY

from ledger.settings import Settings
from tests.support.stripe_transport import Answer, FakeTransport, error, ok, scripted
from workers.stripe_client import connect

SETTINGS = Settings("sqlite://", None, (), "sk_test_fake", "https://stripe.fake.test", None)
COUPON = {"id": "SPRING", "object": "coupon", "percent_off": 25, "duration": "forever"}
WHERE = "GET /v1/coupons/{id}"


def sample(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def figures() -> tuple[float, ...]:
    return (
        sample("mrr_stripe_requests_total", endpoint=WHERE, status="429"),
        sample("mrr_stripe_requests_total", endpoint=WHERE, status="503"),
        sample("mrr_stripe_requests_total", endpoint=WHERE, status="200"),
        sample("mrr_stripe_retries_total", reason="throttled"),
        sample("mrr_stripe_retries_total", reason="library"),
    )


def test_429s_5xx_and_retries_move_the_stripe_metrics() -> None:
    answers: list[Callable[[], Answer]] = [
        lambda: error(429, "Too many requests"),
        lambda: error(429, "Too many requests"),
        lambda: error(503, "injected fault"),
        lambda: ok(COUPON),
    ]
    api = connect(
        SETTINGS,
        transport=FakeTransport(scripted(answers)),
        rps=0,
        backoff_base=0.001,
        sleep=lambda _: None,
    )
    before = figures()
    assert api is not None and api.reference("coupon", "SPRING") == COUPON
    moved = [after - was for after, was in zip(figures(), before, strict=True)]
    # Two 429s retried by our loop, a 503 retried by the library, then the answer.
    assert moved == [2, 1, 1, 2, 1]
