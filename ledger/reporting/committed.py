"""Committed MRR from the stored Stripe objects and the ledger (docs/mrr-rules.md §12).

Reads each customer's kept fold of its stored `customer.subscription.*` and
`subscription_schedule.*` events (`ledger.storage.commitments`, written by the worker; the fold
of every stored event, `fold_all`, is its reference) and the ledger's active and delinquent MRR
per subscription today; the arithmetic is `ledger.rules.commitments`.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime
from fractions import Fraction
from typing import Any

from sqlalchemy import ColumnElement, Connection, Engine, case, false, func, select, true

from ledger.reporting import projector
from ledger.reporting.balances import ACTIVE_WEIGHTS, DELINQUENT_WEIGHTS
from ledger.reporting.constant_rates import converted, factors
from ledger.reporting.modes import choose_mode
from ledger.reporting.reports import BadInput, choose_currency
from ledger.rules.commitments import (
    Base,
    CommittedMonth,
    CommittedMrr,
    Folded,
    Held,
    committed,
)
from ledger.storage.commitments import kept as kept_commitments
from ledger.storage.schema import inbox, ledger_entries

__all__ = ["MAX_MONTHS", "bases", "build_committed", "commitments", "in_reporting_currency"]

MAX_MONTHS = 60


def build_committed(
    engine: Engine,
    today: datetime,
    months: int,
    currency: str | None = None,
    *,
    reporting_currency: str | None = None,
) -> CommittedMrr:
    """Committed MRR of one currency; with `reporting_currency`, of `currency` or else of every
    currency, converted at today's rates (`constant_rates`)."""
    if not 1 <= months <= MAX_MONTHS:
        raise BadInput("months", f"months must be within 1..{MAX_MONTHS}")
    with engine.connect() as conn:
        livemode = choose_mode(conn, None).livemode
        found = bases(conn, livemode)
        held = sorted({b.currency for b in found})
        if reporting_currency is None:
            chosen = choose_currency(currency, held)
            return committed(commitments(conn, found, livemode), found, chosen, today, months)
        wanted = [currency] if currency is not None else held
        if not wanted:
            raise BadInput("currency", "the ledger has no entries yet: nothing is committed")
        rates = factors(conn, wanted, reporting_currency, today.date())
        folded = commitments(conn, found, livemode)
    each = [committed(folded, found, c, today, months) for c in wanted]
    return in_reporting_currency(each, rates, reporting_currency, today)


def in_reporting_currency(
    each: list[CommittedMrr], rates: dict[str, Fraction], reporting: str, today: datetime
) -> CommittedMrr:
    """Several currencies' committed MRR as one: every amount converted and rounded once, each
    month's level the sum of the converted levels, its change the difference of two levels."""
    mrr_today = sum(converted(c.mrr_today, rates[c.currency]) for c in each)
    result: list[CommittedMonth] = []
    level = mrr_today
    for index, month in enumerate(m.month for m in each[0].months):
        now = sum(converted(c.months[index].committed_mrr, rates[c.currency]) for c in each)
        result.append(CommittedMonth(month, now, now - level))
        level = now

    def held(found: list[Held], c: CommittedMrr) -> list[Held]:
        return [replace(h, amount=converted(h.amount, rates[c.currency])) for h in found]

    notes = list(dict.fromkeys(note for c in each for note in c.notes))
    notes.append(
        f"converted into {reporting} from {', '.join(c.currency for c in each)} at the rates "
        f"of {today.date().isoformat()}"
    )
    return CommittedMrr(
        currency=reporting,
        today=today,
        mrr_today=mrr_today,
        months=result,
        adjustments=sorted(
            (
                replace(a, amount=converted(a.amount, rates[c.currency]))
                for c in each
                for a in c.adjustments
            ),
            key=lambda a: (a.effective_at, a.subscription_id, a.kind),
        ),
        at_risk=sorted(
            (h for c in each for h in held(c.at_risk, c)), key=lambda h: (h.kind, h.subscription_id)
        ),
        potential=sorted(
            (h for c in each for h in held(c.potential, c)), key=lambda h: h.subscription_id
        ),
        notes=notes,
    )


def bases(conn: Connection, livemode: bool) -> list[Base]:
    """Each subscription's active and delinquent MRR in the ledger, of one mode, where either is
    non-zero."""
    e = ledger_entries.c

    def weighted(weights: dict[str, int]) -> ColumnElement[Any]:
        return func.sum(
            case(*((e.category == c, e.amount * w) for c, w in weights.items() if w), else_=0)
        )

    active, delinquent = weighted(ACTIVE_WEIGHTS), weighted(DELINQUENT_WEIGHTS)
    query = (
        projector.with_source(
            select(e.subscription_id, e.customer_id, e.currency, active, delinquent)
        )
        .where(projector.SOURCE_LIVEMODE.is_(true() if livemode else false()))
        .group_by(e.subscription_id, e.customer_id, e.currency)
    )
    return [
        Base(str(sub), str(customer), str(currency), int(a or 0), int(d or 0))
        for sub, customer, currency, a, d in conn.execute(query)
        if a or d
    ]


def commitments(conn: Connection, found: list[Base], livemode: bool) -> Folded:
    """The kept folds (`ledger.storage.commitments`) that can count given the ledger's `found`
    figures: those with something scheduled or a trial, and the delinquent subscriptions'; of
    one mode, the mode of each subscription's latest stored object."""
    folded = kept_commitments(conn, [b.customer_id for b in found if b.delinquent])
    snapshots = sorted({c.snapshot_event for c in folded.commitments})
    modes: dict[str, bool] = {}
    for part in range(0, len(snapshots), 1000):
        query = select(inbox.c.event_id, inbox.c.livemode).where(
            inbox.c.event_id.in_(snapshots[part : part + 1000])
        )
        modes.update((str(event_id), bool(live)) for event_id, live in conn.execute(query))
    mine = [c for c in folded.commitments if modes.get(c.snapshot_event, False) == livemode]
    return replace(folded, commitments=tuple(mine))
