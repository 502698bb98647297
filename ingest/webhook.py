"""POST /webhooks/stripe: verify, store durably, wake the workers, and answer 200."""

from __future__ import annotations

import json
import logging
from typing import Any

from flask import Blueprint, Response, jsonify, request
from sqlalchemy.exc import SQLAlchemyError
from stripe import SignatureVerificationError, WebhookSignature

from ingest.metrics import count_webhook, timed
from ingest.services import services
from ledger.rules.sources import SecretBinding, account_of, parse_secret
from ledger.settings import SIGNATURE_TOLERANCE_SECONDS
from ledger.storage import inbox
from ledger.storage.schema import InboxStatus

log = logging.getLogger(__name__)

webhook = Blueprint("webhook", __name__)


class Rejected(Exception):
    def __init__(self, status: int, code: str, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.code = code
        self.reason = reason


def _reject(problem: Rejected) -> tuple[Response, int]:
    log.warning("webhook rejected (%s): %s", problem.code, problem.reason)
    count_webhook(problem.code, problem.status)
    return jsonify(error=problem.code, reason=problem.reason), problem.status


def verify(payload: str, header: str | None, secrets: tuple[str, ...]) -> SecretBinding:
    """Accept if any configured secret (several during a rotation, or one per source) signed
    the payload; the one that did, with the source it is bound to."""
    if not header:
        raise Rejected(400, "missing_signature", "the Stripe-Signature header is missing")
    if not header.isascii():  # the stripe library cannot compare non-ASCII signatures
        raise Rejected(400, "bad_signature", "the Stripe-Signature header is not ASCII")
    if not secrets:
        raise Rejected(503, "not_configured", "no STRIPE_WEBHOOK_SECRET is configured")
    stale = False
    for entry in secrets:
        binding = parse_secret(entry)
        try:
            WebhookSignature.verify_header(
                payload, header, binding.secret, tolerance=SIGNATURE_TOLERANCE_SECONDS
            )
            return binding
        except SignatureVerificationError as problem:
            stale = stale or "tolerance" in str(problem)
    if stale:
        raise Rejected(
            400,
            "stale_timestamp",
            f"the signature timestamp is more than {SIGNATURE_TOLERANCE_SECONDS}s away from now",
        )
    raise Rejected(
        400, "bad_signature", "the signature matches none of the configured webhook secrets"
    )


def read_event_body(payload: str) -> dict[str, Any]:
    try:
        body = json.loads(payload)
    except (ValueError, RecursionError):
        raise Rejected(400, "body_not_json", "the body is not JSON") from None
    if not isinstance(body, dict) or body.get("object") != "event":
        raise Rejected(400, "not_an_event", "the body is not a Stripe event (object != 'event')")
    if not isinstance(body.get("id"), str) or not body["id"]:
        raise Rejected(400, "not_an_event", "the event has no string 'id'")
    if not inbox.storable_text(body["id"], inbox.TEXT_LIMITS["event_id"]):
        raise Rejected(400, "not_an_event", "the event id is not storable text")
    return body


def source_account(binding: SecretBinding, body: dict[str, Any]) -> str:
    """The event's account: refused if it claims a source other than its secret's."""
    account, livemode = account_of(body), body.get("livemode") is True
    reason = binding.mismatch(account, livemode)
    if reason is not None:
        raise Rejected(400, "source_mismatch", reason)
    return binding.account_for(account)


@webhook.post("/webhooks/stripe")
@timed
def receive() -> tuple[Response, int]:
    found = services()
    limit = found.settings.max_body_bytes
    if request.content_length is not None and request.content_length > limit:
        return _reject(Rejected(413, "too_large", f"the body is over {limit} bytes"))
    raw = request.get_data(cache=False)
    if len(raw) > limit:
        return _reject(Rejected(413, "too_large", f"the body is over {limit} bytes"))
    try:
        try:
            payload = raw.decode("utf-8")
        except UnicodeDecodeError:
            raise Rejected(400, "body_not_utf8", "the body is not UTF-8 text") from None
        binding = verify(
            payload, request.headers.get("Stripe-Signature"), found.settings.webhook_secrets
        )
        body = read_event_body(payload)
        account = source_account(binding, body)
    except Rejected as problem:
        return _reject(problem)

    try:
        stored = inbox.store_durably(found.engine, payload, body, found.threads, account=account)
    except SQLAlchemyError as problem:
        log.error(
            "webhook: database unavailable, asking Stripe to retry: %s",
            type(problem).__name__,
            extra={"event_id": body["id"]},
        )
        count_webhook("storage_unavailable", 503)
        return jsonify(error="storage_unavailable", reason="the database is unavailable"), 503

    if stored.inserted and stored.status == InboxStatus.PENDING:
        found.waker.poke()
    count_webhook("accepted" if stored.inserted else "duplicate", 200)
    return jsonify(
        received=True, event_id=body["id"], duplicate=not stored.inserted, status=stored.status
    ), 200
