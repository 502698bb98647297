"""Stripe's HTTP API answered in-process, through the `stripe` library's pluggable HTTP client.

`FakeTransport(answer)` is a `stripe.HTTPClient`: give it to `workers.stripe_client.connect`
(`transport=`) and every request the official client makes is answered by `answer(method,
url, headers)` instead of the network. An answer that raises `stripe.APIConnectionError` is a
network failure, as `stripe.RequestsClient` reports one.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import stripe
from requests.structures import CaseInsensitiveDict

Answer = tuple[int, Mapping[str, str], str]
Handler = Callable[[str, str, Mapping[str, str]], Answer]


class FakeTransport(stripe.HTTPClient):  # type: ignore[misc]
    name = "fake"

    def __init__(self, answer: Handler) -> None:
        super().__init__()
        self._answer = answer
        self.urls: list[str] = []

    def request(
        self,
        method: str,
        url: str,
        headers: Mapping[str, str] | None,
        post_data: Any = None,
        *,
        _usage: list[str] | None = None,
    ) -> tuple[bytes, int, Mapping[str, str]]:
        self.urls.append(url)
        status, answer_headers, body = self._answer(method, url, headers or {})
        return body.encode(), status, CaseInsensitiveDict(answer_headers)

    def close(self) -> None:
        pass


def error(status: int, message: str, **headers: str) -> Answer:
    kind = (
        "api_error"
        if status >= 500
        else "rate_limit_error"
        if status == 429
        else "invalid_request_error"
    )
    return (
        status,
        {"Content-Type": "application/json", **headers},
        json.dumps({"error": {"type": kind, "message": message}}),
    )


def ok(body: Mapping[str, Any]) -> Answer:
    return 200, {"Content-Type": "application/json"}, json.dumps(body)


def network_down() -> Answer:
    raise stripe.APIConnectionError("connection refused (fake)", should_retry=True)


def scripted(answers: Iterable[Callable[[], Answer]]) -> Handler:
    """Answers in this order, whatever is asked; the last one repeats."""
    queue = list(answers)

    def answer(method: str, url: str, headers: Mapping[str, str]) -> Answer:
        step = queue.pop(0) if len(queue) > 1 else queue[0]
        return step()

    return answer
