"""Signing payloads the way Stripe signs webhook deliveries (t=...,v1=HMAC-SHA256)."""

from __future__ import annotations

import json
import time
from typing import Any

from scripts import stripe_objects


def signature_header(payload: str, secret: str, timestamp: int | None = None) -> str:
    ts = int(time.time()) if timestamp is None else timestamp
    return stripe_objects.signature_header(payload, secret, ts)


def signed(
    body: dict[str, Any], secret: str, timestamp: int | None = None
) -> tuple[str, dict[str, str]]:
    payload = json.dumps(body)
    headers = {
        "Stripe-Signature": signature_header(payload, secret, timestamp),
        "Content-Type": "application/json",
    }
    return payload, headers
