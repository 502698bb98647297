"""Signing payloads the way Stripe signs webhook deliveries (t=...,v1=HMAC-SHA256)."""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from typing import Any


def signature_header(payload: str, secret: str, timestamp: int | None = None) -> str:
    ts = int(time.time()) if timestamp is None else timestamp
    mac = hmac.new(secret.encode(), f"{ts}.{payload}".encode(), hashlib.sha256).hexdigest()
    return f"t={ts},v1={mac}"


def signed(
    body: dict[str, Any], secret: str, timestamp: int | None = None
) -> tuple[str, dict[str, str]]:
    payload = json.dumps(body)
    headers = {
        "Stripe-Signature": signature_header(payload, secret, timestamp),
        "Content-Type": "application/json",
    }
    return payload, headers
