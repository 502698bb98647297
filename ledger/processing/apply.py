"""Turning one stored event into ledger entries: load, run the rules, diff, append.

No queue or web code here: the RQ job (workers.jobs) and the backfill call these functions.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Connection, Engine
from sqlalchemy.exc import StatementError

from ledger.processing import replays
from ledger.rules.events import EventRecord, MalformedEvent, customer_of, unit_of
from ledger.rules.invariants import BrokenInvariant
from ledger.rules.payloads import RefusedInput
from ledger.rules.profiles import EVENT_TYPES as PROFILE_EVENTS
from ledger.rules.profiles import ProfileVersion, read_profile
from ledger.rules.sources import Unit
from ledger.rules.timeline import MissingReference, is_relevant, references_in, replay_customer
from ledger.storage import commitments, customer_months, inbox, profiles, store
from ledger.storage.schema import InboxStatus

log = logging.getLogger(__name__)

Fetcher = Callable[[str, str], dict[str, Any] | None]


class StoredReferences:
    """References backed by the reference_objects table, then by the Stripe API if given."""

    def __init__(self, conn: Connection, fetch: Fetcher | None = None) -> None:
        self._conn = conn
        self._fetch = fetch

    def get(self, kind: str, object_id: str) -> dict[str, Any] | None:
        found = store.get_reference(self._conn, kind, object_id)
        if found is not None or self._fetch is None:
            return found
        fetched = self._fetch(kind, object_id)
        if fetched is not None:
            version = int(fetched.get("created") or 0)
            store.put_reference(self._conn, kind, object_id, fetched, version, "api")
        return fetched


@dataclass(slots=True)
class Outcome:
    # An InboxStatus, or "missing" (no such row) or "done elsewhere" (another worker's).
    status: str
    appended: int = 0
    reversed: int = 0
    customers: list[str] = field(default_factory=list)
    error: str | None = None


class Unprocessable(Exception):
    """An event that will fail the same way however often it is retried."""


# What the pure rules raise on a payload they cannot read (an item list that is a string, an
# amount "abc", a quantity of -5) or on figures that break an invariant; database and network
# errors are none of these, and stay transient.
DATA_ERRORS = (
    TypeError,
    ValueError,
    KeyError,
    AttributeError,
    IndexError,
    ArithmeticError,
    BrokenInvariant,
)
_REASON_LENGTH = 300


def _short_reason(problem: BaseException) -> str:
    """What an inbox row keeps for people: the error's first line, never an SQL statement
    (the log has those, and the traceback)."""
    if isinstance(problem, StatementError) and problem.orig is not None:
        problem = problem.orig
    lines = str(problem).strip().splitlines()
    text = f"{type(problem).__name__}: {lines[0] if lines else ''}"
    return text if len(text) <= _REASON_LENGTH else f"{text[: _REASON_LENGTH - 3]}..."


def _unreadable_reason(problem: Exception) -> str:
    if isinstance(problem, RefusedInput):
        return str(problem)[:_REASON_LENGTH]
    if isinstance(problem, BrokenInvariant):
        return f"MRR rules bug, nothing appended: {problem}"[:_REASON_LENGTH]
    return f"the MRR rules cannot read this event: {_short_reason(problem)}"


def _log_details(event_id: str, customer_id: str | None, problem: Exception) -> None:
    """What the reason leaves out: a refusal says it all; anything else has a traceback, and a
    broken invariant is a bug."""
    extra = {"event_id": event_id, "customer_id": customer_id}
    if isinstance(problem, BrokenInvariant):
        log.error(
            "inbox event %s: MRR rules bug: %s", event_id, problem, exc_info=problem, extra=extra
        )
    elif not isinstance(problem, RefusedInput):
        log.warning("inbox event %s unreadable", event_id, exc_info=problem, extra=extra)


def _first_unreadable(
    customer_id: str, events: list[EventRecord], refs: StoredReferences
) -> tuple[EventRecord, Exception] | None:
    """The event whose arrival in the replay makes the rules fail (bisecting on prefixes)."""
    ordered = sorted(events, key=lambda e: e.sort_key)

    def failure(count: int) -> Exception | None:
        try:
            replay_customer(customer_id, ordered[:count], refs)
        except DATA_ERRORS as problem:
            return problem
        return None

    passes, fails = 0, len(ordered)
    problem = failure(fails)
    if problem is None:
        return None
    while fails - passes > 1:
        middle = (passes + fails) // 2
        found = failure(middle)
        if found is None:
            passes = middle
        else:
            fails, problem = middle, found
    return ordered[fails - 1], problem


def recompute_customer(
    conn: Connection,
    unit: Unit,
    cause_event_id: str,
    fetch: Fetcher | None = None,
    *,
    checkpoint_every: int | None = None,
) -> store.Applied:
    """Replay the customer's stored events (from a checkpoint, see `replays`) and bring its
    ledger in effect in line.

    An event the rules cannot read is marked failed and left out, so one bad payload does not
    stop every later event of the customer; if it is the event being processed, it fails.
    """
    store.lock_customers(conn, [unit.customer_id])
    refs = StoredReferences(conn, fetch)
    processing = {cause_event_id}
    try:
        found = replays.recompute(conn, [unit], refs, processing=processing, every=checkpoint_every)
    except DATA_ERRORS:
        _fail_unreadable(conn, unit, cause_event_id, refs)
        found = replays.recompute(
            conn, [unit], refs, processing=processing, every=checkpoint_every, from_start=True
        )
    recomputed = found[unit]
    store.record_dependencies(conn, unit.customer_id, recomputed.replay.depends_on)
    keep_segments(conn, found)
    return store.apply(conn, [recomputed.desired(cause_event_id)])


def keep_segments(conn: Connection, found: Mapping[Unit, replays.Recomputed]) -> None:
    """The customers' segment rows (and the segments' totals) as their replays say."""
    wanted: dict[customer_months.Key, customer_months.Values] = {}
    for unit, recomputed in found.items():
        wanted.update(customer_months.segment_rows(unit, recomputed.replay.segment_months))
    customer_months.replace(conn, sorted(found), wanted, segments=True)


def _fail_unreadable(
    conn: Connection, unit: Unit, cause_event_id: str, refs: StoredReferences
) -> None:
    """Mark failed, one by one, the stored events of the customer that make its whole replay
    fail; raises if the event being processed is one, or if no single event is to blame."""
    customer_id = unit.customer_id
    events = inbox.customer_events(conn, [unit]).get(unit, [])
    while True:
        try:
            replay_customer(customer_id, events, refs)
            return
        except DATA_ERRORS:
            culprit = _first_unreadable(customer_id, events, refs)
            if culprit is None:
                raise
            event, problem = culprit
            reason = _unreadable_reason(problem)
            _log_details(event.id, customer_id, problem)
            if event.id == cause_event_id:
                raise Unprocessable(reason) from None
            log.warning(
                "inbox event %s: %s; marked failed",
                event.id,
                reason,
                extra={"event_id": event.id, "customer_id": customer_id},
            )
            inbox.mark_event_failed(conn, event.id, reason)
            if commitments.concerns(event.type):
                commitments.refold(conn, [customer_id])
            events = [e for e in events if e.id != event.id]


def apply_event(
    conn: Connection,
    event: EventRecord,
    fetch: Fetcher | None = None,
    *,
    checkpoint_every: int | None = None,
) -> Outcome:
    """Everything one event changes, inside the caller's transaction."""
    if not is_relevant(event.type):
        profiles.keep(conn, _profiles_in([event]))
        keep_commitments(conn, [event])
        return Outcome(status=InboxStatus.IGNORED)
    affected: set[str] = set()
    try:
        carried = references_in(event)
    except DATA_ERRORS as problem:
        _log_details(event.id, customer_of(event), problem)
        raise Unprocessable(_unreadable_reason(problem)) from None
    for kind, object_id, obj in carried:
        if store.put_reference(conn, kind, object_id, obj, event.created, event.id):
            affected.update(store.dependents(conn, kind, object_id))
    own = customer_of(event)
    if own is not None:
        affected.add(own)
    outcome = Outcome(status=InboxStatus.PROCESSED, customers=sorted(affected))
    for customer_id in outcome.customers:
        try:
            applied = recompute_customer(
                conn, unit_of(event, customer_id), event.id, fetch,
                checkpoint_every=checkpoint_every,
            )  # fmt: skip
        except MissingReference as missing:
            raise Unprocessable(str(missing)) from missing
        outcome.appended += applied.appended
        outcome.reversed += applied.reversed
    keep_commitments(conn, [event])
    return outcome


def keep_commitments(conn: Connection, events: Sequence[EventRecord]) -> None:
    """Fold these subscription and schedule events being processed into their customers' kept
    committed MRR (`ledger.storage.commitments`)."""
    touched = [(customer_of(e), e.created, e.id) for e in events if commitments.concerns(e.type)]
    if touched:
        commitments.keep(conn, touched)


def _profiles_in(events: Sequence[EventRecord]) -> list[ProfileVersion]:
    """The names and emails carried by customer events: no MRR, kept for the workspace."""
    found: list[ProfileVersion] = []
    for event in events:
        profile = read_profile(event.object) if event.type in PROFILE_EVENTS else None
        if profile is not None:
            found.append(ProfileVersion(profile, event.created, event.id))
    return found


def process_inbox_row(
    engine: Engine,
    inbox_id: int,
    *,
    max_attempts: int,
    fetch: Fetcher | None = None,
    checkpoint_every: int | None = None,
) -> Outcome:
    """Process one inbox row in one transaction; safe to call again for the same row.

    Raises for a transient failure while attempts remain, so the queue retries it; after the
    last attempt, or for an event that can never succeed, the row is marked failed instead.
    """
    try:
        with engine.begin() as conn:
            row = inbox.get(conn, inbox_id)
            if row is None:
                return Outcome(status="missing", error=f"no inbox row {inbox_id}")
            if row.status != InboxStatus.PENDING:
                return Outcome(status=row.status)
            outcome = apply_event(conn, row.event(), fetch, checkpoint_every=checkpoint_every)
            inbox.mark(conn, [inbox_id], InboxStatus(outcome.status))
            return outcome
    except (Unprocessable, MalformedEvent, MissingReference) as final:
        return _fail(engine, inbox_id, str(final))
    except Exception as problem:
        # Only a row still pending is touched: another worker may have processed it meanwhile.
        with engine.begin() as conn:
            attempts = inbox.count_attempt_if_pending(conn, inbox_id)
        reason = _short_reason(problem)
        if attempts is None:
            return Outcome(status="done elsewhere")
        if attempts >= max_attempts:
            log.exception(
                "inbox %s failed after %s attempts",
                inbox_id,
                attempts,
                extra={"inbox_id": inbox_id},
            )
            return _fail(engine, inbox_id, reason)
        log.warning(
            "inbox %s attempt %s failed (%s); will retry",
            inbox_id,
            attempts,
            reason,
            extra={"inbox_id": inbox_id},
        )
        raise


def _fail(engine: Engine, inbox_id: int, reason: str) -> Outcome:
    with engine.begin() as conn:
        inbox.fail_if_pending(conn, inbox_id, reason)
        row = inbox.get(conn, inbox_id)
        if row is not None and commitments.concerns(row.event_type):
            commitments.refold(conn, [row.customer_id])  # a pending row was folded
    log.warning("inbox %s marked failed: %s", inbox_id, reason, extra={"inbox_id": inbox_id})
    return Outcome(status=InboxStatus.FAILED, error=reason)


# --- batches ------------------------------------------------------------------------------


@dataclass(slots=True)
class BatchOutcome:
    """What a batch did: rows per final status, rows to retry, ledger rows, rows handled."""

    counts: dict[str, int] = field(default_factory=dict)
    retry: list[int] = field(default_factory=list)
    appended: int = 0
    reversed: int = 0
    handled: list[int] = field(default_factory=list)

    def count(self, status: str, n: int = 1) -> None:
        if n:
            self.counts[status] = self.counts.get(status, 0) + n

    def merge(self, other: BatchOutcome) -> None:
        for status, n in other.counts.items():
            self.count(status, n)
        self.retry += other.retry
        self.appended += other.appended
        self.reversed += other.reversed


def process_batch(
    engine: Engine,
    inbox_ids: Sequence[int],
    *,
    max_attempts: int,
    fetch: Fetcher | None = None,
    claim_extra: int = 0,
    claim_customer_rows: int = 0,
    checkpoint_every: int | None = None,
) -> BatchOutcome:
    """Process many inbox rows in one transaction, each affected customer recomputed once.

    The same result as `process_inbox_row` on each row: idempotent, and a crash leaves every
    row of the batch pending. Rows another worker holds are left to it. If the batch raises,
    its rows are processed again one per transaction, so one bad event counts its own attempts
    (and is marked failed after the last) without holding back the others. Transient failures
    with attempts left are returned in `retry`, not raised.
    """
    claimed: list[int] = []
    try:
        with engine.begin() as conn:
            done = _run_batch(
                conn, inbox_ids, (claim_extra, claim_customer_rows), fetch, claimed,
                checkpoint_every,
            )  # fmt: skip
        done.handled = claimed
        return done
    except Exception as problem:
        log.warning(
            "batch of %d inbox rows failed (%s: %s); processing them one by one",
            len(claimed),
            type(problem).__name__,
            problem,
        )
        total = BatchOutcome(handled=list(claimed or inbox_ids))
        for inbox_id in total.handled:
            total.merge(_one_by_one(engine, inbox_id, max_attempts, fetch, checkpoint_every))
        return total


def _one_by_one(
    engine: Engine,
    inbox_id: int,
    max_attempts: int,
    fetch: Fetcher | None,
    checkpoint_every: int | None,
) -> BatchOutcome:
    """A row of a failed batch on its own: unreadable events fail, others count an attempt."""
    outcome = BatchOutcome()
    try:
        single = process_inbox_row(
            engine,
            inbox_id,
            max_attempts=max_attempts,
            fetch=fetch,
            checkpoint_every=checkpoint_every,
        )
    except Exception:
        outcome.retry.append(inbox_id)
        return outcome
    if single.status in (InboxStatus.PROCESSED, InboxStatus.IGNORED, InboxStatus.FAILED):
        outcome.count(single.status)
    outcome.appended += single.appended
    outcome.reversed += single.reversed
    return outcome


def _run_batch(
    conn: Connection,
    inbox_ids: Sequence[int],
    claim: tuple[int, int],
    fetch: Fetcher | None,
    claimed: list[int],
    checkpoint_every: int | None,
) -> BatchOutcome:
    extra, customer_rows = claim
    rows = inbox.claim_pending(conn, inbox_ids, extra)
    owners = [row.customer_id for row in rows if row.customer_id is not None]
    rows += inbox.claim_customers_pending(conn, owners, [row.id for row in rows], customer_rows)
    claimed += [row.id for row in rows]
    outcome = BatchOutcome()
    relevant: list[tuple[int, EventRecord]] = []
    ignored: list[tuple[int, EventRecord]] = []
    unfolded: list[str | None] = []  # customers of folded rows failed here
    for row in rows:
        try:
            event = row.event()
        except MalformedEvent as problem:
            inbox.mark(conn, [row.id], InboxStatus.FAILED, f"malformed event: {problem}")
            outcome.count(InboxStatus.FAILED)
            if commitments.concerns(row.event_type):
                unfolded.append(row.customer_id)
            continue
        if is_relevant(event.type):
            relevant.append((row.id, event))
        else:
            ignored.append((row.id, event))

    # Each affected customer is recomputed once in each source; its entries name the batch's
    # latest event that touched it as their cause.
    cause: dict[Unit, str] = {}
    for _, event in sorted(relevant, key=lambda item: item[1].sort_key):
        for kind, object_id, obj in references_in(event):
            if store.put_reference(conn, kind, object_id, obj, event.created, event.id):
                dependents = store.dependents(conn, kind, object_id)
                cause.update(dict.fromkeys((unit_of(event, c) for c in dependents), event.id))
        own = customer_of(event)
        if own is not None:
            cause[unit_of(event, own)] = event.id
    affected = sorted(cause)
    store.lock_customers(conn, [u.customer_id for u in affected])
    parsed = {e.id: e for _, e in relevant}
    found = replays.recompute(
        conn,
        affected,
        StoredReferences(conn, fetch),
        processing=parsed.keys(),
        parsed=parsed,
        every=checkpoint_every,
    )
    desired: list[store.DesiredLedger] = []
    for unit in affected:
        recomputed = found[unit]
        store.record_dependencies(conn, unit.customer_id, recomputed.replay.depends_on)
        desired.append(recomputed.desired(cause[unit]))
    keep_segments(conn, found)
    applied = store.apply(conn, desired)
    outcome.appended += applied.appended
    outcome.reversed += applied.reversed
    inbox.mark(conn, [inbox_id for inbox_id, _ in relevant], InboxStatus.PROCESSED)
    profiles.keep(conn, _profiles_in([event for _, event in ignored]))
    inbox.mark(conn, [inbox_id for inbox_id, _ in ignored], InboxStatus.IGNORED)
    if unfolded:
        commitments.refold(conn, unfolded)
    keep_commitments(conn, [event for _, event in [*relevant, *ignored]])
    outcome.count(InboxStatus.PROCESSED, len(relevant))
    outcome.count(InboxStatus.IGNORED, len(ignored))
    return outcome
