"""Committed MRR and the forecast in a reporting currency: each currency's figures converted at
one rate, its latest on or before a given day (`fx`, as the reports read them, docs/forecast.md).

The reports convert each entry at the rate of its own effective date. A forecast's months have
no rates yet, so the forecast and committed MRR convert every month they show (past and ahead)
at the same rate, that of the month's first day or of today: constant currency, so a change in
the converted figures is a change in MRR, never in a rate. A currency without such a rate is
refused, naming it: nothing is left unconverted or dropped.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import date
from fractions import Fraction

from sqlalchemy import Connection

from ledger.reporting import fx
from ledger.reporting.reports import BadInput

__all__ = ["converted", "factors"]


def factors(
    conn: Connection, currencies: Iterable[str], reporting: str, day: date
) -> dict[str, Fraction]:
    """Minor units of each currency -> minor units of `reporting`, at the rates of `day`."""
    converter = fx.Converter(fx.load_table(conn), reporting)
    found = {c: converter.factor(c, day) for c in sorted(set(currencies))}
    missing = [c for c, factor in found.items() if factor is None]
    if missing:
        raise BadInput(
            "reporting_currency",
            f"no rate on or before {day.isoformat()} to convert {', '.join(missing)} into "
            f"{reporting}: load one with `mrr fx load`",
        )
    return {c: factor for c, factor in found.items() if factor is not None}


def converted(amount: int, factor: Fraction) -> int:
    """`amount` converted exactly, rounded once, half to even (as `fx.Converter.convert`)."""
    return round(amount * factor)
