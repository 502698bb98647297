"""Reconcile: Stripe's live subscriptions against the ledger, for `mrr reconcile` and the
worker's schedule (`workers/reconcile_schedule.py`).

Stripe is read through the one client (`workers.stripe_client`: rate limit, retries, request
counts); the comparison is `ledger.backfill.reconcile` (pure); the database side, the clues and
the record of each run are `ledger.backfill.reconcile_store`.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

import stripe
from sqlalchemy import Engine

from ledger.backfill import reconcile_store
from ledger.backfill.reconcile import (
    Difference,
    Live,
    compare,
    customer_discount_event,
    difference,
    live_figures,
)
from ledger.logs import mask
from workers.stripe_client import StripeApi

log = logging.getLogger(__name__)

DAY = 86_400
ENDED_WITHIN_DAYS = 30
# Discounts arrive as ids unless expanded; expanded, they carry their coupon's terms.
SUBSCRIPTION_EXPAND = ("discounts", "items.data.discounts")
_ENDED = ("canceled", "incomplete_expired")

Obj = dict[str, Any]
Progress = Callable[[int, int], None]  # (subscriptions listed, requests made)


class LiveAccount:
    """The Stripe reads reconcile makes; also the rules' `References` (prices, coupons)."""

    def __init__(self, api: StripeApi) -> None:
        self.api = api
        self._references: dict[tuple[str, str], Obj | None] = {}

    def subscriptions(self, ended_since: int) -> Iterator[Obj]:
        """Subscriptions not ended, and those that ended at or after `ended_since`."""
        expand = [f"data.{path}" for path in SUBSCRIPTION_EXPAND]
        for sub in self.api.paginate("/v1/subscriptions", status="all", expand=expand):
            ended = sub.get("ended_at") or sub.get("canceled_at")
            if sub.get("status") not in _ENDED or (isinstance(ended, int) and ended >= ended_since):
                yield sub

    def customer_discounts(self) -> dict[str, Obj]:
        """Each customer's own discount (it stands in for a subscription without one)."""
        return {
            str(customer["id"]): customer["discount"]
            for customer in self.api.paginate("/v1/customers")
            if isinstance(customer.get("discount"), dict)
        }

    def subscription(self, sub_id: str) -> Obj | None:
        """One subscription, ended long ago or not; None if Stripe has none by that id."""
        try:
            return self.api.get(
                f"/v1/subscriptions/{quote(sub_id, safe='')}", expand=list(SUBSCRIPTION_EXPAND)
            )
        except stripe.InvalidRequestError as problem:
            if problem.http_status == 404:
                return None
            raise

    def get(self, kind: str, object_id: str) -> Obj | None:
        key = (kind, object_id)
        if key not in self._references:
            try:
                self._references[key] = self.api.reference(kind, object_id)
            except stripe.InvalidRequestError as problem:
                if problem.http_status != 404:
                    raise
                self._references[key] = None
        return self._references[key]


@dataclass(frozen=True, slots=True)
class Options:
    ended_within_days: int = ENDED_WITHIN_DAYS
    fix: bool = False
    trigger: str = "cli"  # or "schedule"
    now: int | None = None


@dataclass(slots=True)
class Outcome:
    run_id: int
    checked_at: datetime
    ended_since: datetime
    subscriptions: int = 0
    differences: list[Difference] = field(default_factory=list)
    stored: list[int] = field(default_factory=list)  # inbox rows pending after a fix
    requests: int = 0


def run(
    engine: Engine,
    api: StripeApi,
    options: Options,
    *,
    enqueue: Callable[[list[int]], object] | None = None,
    progress: Progress | None = None,
) -> Outcome:
    """Compare, record the run, and with `fix` store the live objects and queue them.

    A failure (Stripe unreachable, the database) is recorded on the run and raised again.
    """
    now = options.now or int(time.time())
    checked_at = datetime.fromtimestamp(now, UTC)
    with engine.begin() as conn:
        run_id = reconcile_store.start_run(conn, options.trigger, datetime.now(UTC))
    outcome = Outcome(
        run_id, checked_at, datetime.fromtimestamp(now - options.ended_within_days * DAY, UTC)
    )
    try:
        source = _source(engine, api)
        with engine.begin() as conn:
            reconcile_store.record_source(conn, run_id, source)
        discounts = _compare(engine, LiveAccount(api), outcome, now, progress, source)
        if options.fix:
            outcome.stored = _fix(engine, outcome.differences, discounts, now, source.account)
            if enqueue is not None and outcome.stored:
                enqueue(outcome.stored)
        outcome.requests = api.requests
        with engine.begin() as conn:
            reconcile_store.finish_run(
                conn,
                run_id,
                datetime.now(UTC),
                subscriptions=outcome.subscriptions,
                differences=outcome.differences,
                fixed=len(outcome.stored),
            )
    except Exception as problem:
        with engine.begin() as conn:
            reason = mask(f"{type(problem).__name__}: {problem}".splitlines()[0])
            reconcile_store.fail_run(conn, run_id, datetime.now(UTC), reason)
        raise
    log.info(
        "reconcile: %d subscriptions, %d differences, %d events stored",
        outcome.subscriptions,
        len(outcome.differences),
        len(outcome.stored),
    )
    return outcome


def _source(engine: Engine, api: StripeApi) -> reconcile_store.Source:
    """The key's source: its mode, and its account id where the ledger names it (else "",
    the endpoint's own account, as the backfill stores it)."""
    account = api.account_id()
    with engine.connect() as conn:
        named = reconcile_store.account_named(conn, account)
    return reconcile_store.Source(account if named else "", api.livemode)


def _compare(
    engine: Engine,
    account: LiveAccount,
    outcome: Outcome,
    now: int,
    progress: Progress | None,
    source: reconcile_store.Source,
) -> dict[str, Obj]:
    ended_since = int(outcome.ended_since.timestamp())
    objects: list[Obj] = []
    for sub in account.subscriptions(ended_since):
        objects.append(sub)
        if progress is not None and len(objects) % 100 == 0:
            progress(len(objects), account.api.requests)
    discounts = account.customer_discounts() if objects else {}
    live = [_live(sub, discounts, account, now) for sub in objects]
    with engine.connect() as conn:
        ledger = reconcile_store.ledger_subscriptions(conn, source)
    listed = {one.subscription_id for one in live}
    for sub_id, mine in ledger.items():
        if sub_id in listed or not (mine.active or mine.delinquent):
            continue
        found = account.subscription(sub_id)  # ended long ago, or unknown to Stripe
        if found is not None:
            live.append(_live(found, discounts, account, now))
    if progress is not None:
        progress(len(live), account.api.requests)
    pairs = compare(live, ledger)
    wanted = {(_owner(one, mine), _sub_id(one, mine)) for one, mine in pairs}
    with engine.connect() as conn:
        clues = reconcile_store.clues(conn, wanted)
    outcome.subscriptions = len(live)
    outcome.differences = [difference(one, mine, clues[_sub_id(one, mine)]) for one, mine in pairs]
    return discounts


def _live(sub: Obj, discounts: dict[str, Obj], account: LiveAccount, now: int) -> Live:
    customer = sub.get("customer")
    customer_id = customer.get("id") if isinstance(customer, dict) else customer
    return live_figures(sub, discounts.get(str(customer_id)), account, now)


def _owner(one: Live | None, mine: Any) -> str:
    return one.customer_id if one is not None else str(mine.customer_id)


def _sub_id(one: Live | None, mine: Any) -> str:
    return one.subscription_id if one is not None else str(mine.subscription_id)


def _fix(
    engine: Engine,
    differences: list[Difference],
    discounts: dict[str, Obj],
    now: int,
    account: str,
) -> list[int]:
    """Store each differing live object (and its customer's discount) as an event dated now."""
    bodies: dict[str, Obj] = {}
    for found in differences:
        if found.event is None:
            continue  # unknown to Stripe, or unreadable: nothing to store
        bodies[found.event["id"]] = found.event
        discount = discounts.get(found.customer_id)
        if discount is not None:
            event = customer_discount_event(discount, now, found.event["api_version"])
            bodies[event["id"]] = event
    if not bodies:
        return []
    with engine.begin() as conn:
        return reconcile_store.store_events(conn, list(bodies.values()), account)
