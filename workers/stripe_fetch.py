"""Reference objects fetched from Stripe's API when a key is configured."""

from __future__ import annotations

import json
from typing import Any

import stripe
from stripe._base_address import BaseAddresses

from ledger.processing import Fetcher
from ledger.settings import Settings


def make_client(settings: Settings) -> stripe.StripeClient:
    assert settings.stripe_api_key is not None
    base: BaseAddresses = {}
    if settings.stripe_api_base:
        base["api"] = settings.stripe_api_base
    return stripe.StripeClient(settings.stripe_api_key, base_addresses=base, max_network_retries=3)


def make_fetcher(settings: Settings) -> Fetcher | None:
    if not settings.stripe_api_key:
        return None
    client = make_client(settings)

    def fetch(kind: str, object_id: str) -> dict[str, Any] | None:
        if kind == "price":
            found: Any = client.v1.prices.retrieve(object_id, params={"expand": ["tiers"]})
        elif kind == "coupon":
            found = client.v1.coupons.retrieve(object_id)
        else:
            return None
        # The raw JSON, as a webhook would carry it: to_dict() turns decimal strings into
        # Decimal objects, which the stored reference and the payload readers do not expect.
        response = found.last_response
        return dict(json.loads(response.body)) if response is not None else None

    return fetch
