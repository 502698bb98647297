"""Exchange rates: the ops-supplied table, lookup by date, conversion (docs/mrr-rules.md §6.5).

A rate says what one major unit of `currency` is worth in one base currency that ops choose
(the base itself needs no rows). Converting from X to a reporting currency R on day d uses the
latest rate on or before d of each: X→R = rate(X) ÷ rate(R), where rate(R) is 1 when R has no
rows at all (R is the base). Each entry is converted exactly (rates read as Decimal, the
product kept as an exact fraction) and rounded once, half-even, to a whole minor unit of R.
"""

from __future__ import annotations

import bisect
import csv
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Decimal, InvalidOperation
from fractions import Fraction

from sqlalchemy import Connection, select

from ledger.rules.money import exponent
from ledger.storage.db import dialect_insert
from ledger.storage.schema import fx_rates

CURRENCY = re.compile(r"[a-z]{3}")


class BadRates(ValueError):
    """A rates file line that cannot be read; the message names the line and the problem."""


@dataclass(frozen=True, slots=True)
class Rate:
    day: date
    currency: str
    rate: Decimal


def parse_rates(lines: Iterable[str]) -> list[Rate]:
    """Read `date,currency,rate` CSV (a header row is allowed); dates ISO, rates positive."""
    rates: list[Rate] = []
    for number, row in enumerate(csv.reader(lines), start=1):
        if not row or all(not cell.strip() for cell in row):
            continue
        if number == 1 and [c.strip().lower() for c in row] == ["date", "currency", "rate"]:
            continue
        if len(row) != 3:
            raise BadRates(f"line {number}: expected date,currency,rate, got {len(row)} fields")
        day_text, currency_text, rate_text = (cell.strip() for cell in row)
        try:
            day = date.fromisoformat(day_text)
        except ValueError:
            raise BadRates(f"line {number}: {day_text!r} is not a YYYY-MM-DD date") from None
        currency = currency_text.lower()
        if not CURRENCY.fullmatch(currency):
            raise BadRates(f"line {number}: {currency_text!r} is not a 3-letter currency code")
        try:
            rate = Decimal(rate_text)
        except InvalidOperation:
            raise BadRates(f"line {number}: {rate_text!r} is not a decimal number") from None
        if not rate.is_finite() or rate <= 0:
            raise BadRates(f"line {number}: the rate must be a positive number, got {rate_text}")
        rates.append(Rate(day, currency, rate))
    return rates


class RateTable:
    """All rates in memory (dates by currencies: small), looked up by bisection."""

    def __init__(self, rates: Iterable[Rate]) -> None:
        by_currency: dict[str, dict[date, Decimal]] = {}
        for r in rates:
            by_currency.setdefault(r.currency, {})[r.day] = r.rate
        self._days = {c: sorted(found) for c, found in by_currency.items()}
        self._rates = {c: [found[d] for d in self._days[c]] for c, found in by_currency.items()}

    def has(self, currency: str) -> bool:
        return currency in self._days

    def currencies(self) -> list[str]:
        return sorted(self._days)

    def rate_on(self, currency: str, day: date) -> Decimal | None:
        """The latest rate on or before `day`, if any."""
        days = self._days.get(currency)
        if not days:
            return None
        at = bisect.bisect_right(days, day)
        return None if at == 0 else self._rates[currency][at - 1]


class Converter:
    """Converts entries into one reporting currency; `None` where a rate is missing."""

    def __init__(self, table: RateTable, reporting: str) -> None:
        self.table = table
        self.reporting = reporting
        self._factors: dict[tuple[str, date], Fraction | None] = {}

    def factor(self, currency: str, day: date) -> Fraction | None:
        """Minor units of `currency` → minor units of the reporting currency, exactly."""
        key = (currency, day)
        if key not in self._factors:
            self._factors[key] = self._factor(currency, day)
        return self._factors[key]

    def _factor(self, currency: str, day: date) -> Fraction | None:
        if currency == self.reporting:
            return Fraction(1)
        source = self.table.rate_on(currency, day)
        target = (
            self.table.rate_on(self.reporting, day)
            if self.table.has(self.reporting)
            else Decimal(1)
        )
        if source is None or target is None:
            return None
        scale = Fraction(10) ** (exponent(self.reporting) - exponent(currency))
        return Fraction(source) / Fraction(target) * scale

    def convert(self, amount: int, currency: str, at: datetime) -> int | None:
        factor = self.factor(currency, at.astimezone(UTC).date())
        if factor is None:
            return None
        return round(amount * factor)  # Fraction rounds half to even


# --- storage ---------------------------------------------------------------------------------


def store_rates(conn: Connection, rates: Iterable[Rate]) -> int:
    """Insert or replace rates by (currency, date); returns how many rows were written."""
    now = datetime.now(UTC)
    rows = [
        {"currency": r.currency, "rate_date": r.day, "rate": str(r.rate), "loaded_at": now}
        for r in rates
    ]
    if not rows:
        return 0
    statement = dialect_insert(conn, fx_rates)
    statement = statement.on_conflict_do_update(
        index_elements=["currency", "rate_date"],
        set_={"rate": statement.excluded.rate, "loaded_at": statement.excluded.loaded_at},
    )
    conn.execute(statement, rows)
    return len(rows)


def load_table(conn: Connection) -> RateTable:
    return RateTable(_stored(conn))


def _stored(conn: Connection) -> Iterator[Rate]:
    query = select(fx_rates.c.rate_date, fx_rates.c.currency, fx_rates.c.rate)
    for day, currency, rate in conn.execute(query):
        yield Rate(day, currency, Decimal(rate))
