"""Calendar months (UTC), the unit of every balance."""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime

_MONTH = re.compile(r"(\d{4})-(\d{2})")


class BadMonth(ValueError):
    """Text that is not a YYYY-MM month."""


@dataclass(frozen=True, slots=True, order=True)
class Month:
    """A UTC calendar month, held as months since year 0 so that ranges are arithmetic."""

    index: int

    @classmethod
    def of(cls, moment: datetime) -> Month:
        moment = moment.astimezone(UTC)
        return cls(moment.year * 12 + moment.month - 1)

    @classmethod
    def parse(cls, text: str) -> Month:
        found = _MONTH.fullmatch(text.strip()) if isinstance(text, str) else None
        if found is None:
            raise BadMonth(f"{text!r} is not a month: expected YYYY-MM")
        year, month = int(found.group(1)), int(found.group(2))
        if not 1 <= month <= 12:
            raise BadMonth(f"{text!r} is not a month: month {month:02d} is not 01-12")
        if year < 1:
            raise BadMonth(f"{text!r} is not a month: year 0000 does not exist")
        return cls(year * 12 + month - 1)

    @property
    def year(self) -> int:
        return self.index // 12

    @property
    def month(self) -> int:
        return self.index % 12 + 1

    def start(self) -> datetime:
        return datetime(self.year, self.month, 1, tzinfo=UTC)

    def next(self) -> Month:
        return Month(self.index + 1)

    def __str__(self) -> str:
        return f"{self.year:04d}-{self.month:02d}"


def month_index(moment: datetime) -> int:
    """`Month.of(moment).index` without building the object (the projector's hot path)."""
    if moment.tzinfo is not None and moment.utcoffset():
        moment = moment.astimezone(UTC)
    return moment.year * 12 + moment.month - 1


def span(first: Month, last: Month) -> Iterator[Month]:
    for index in range(first.index, last.index + 1):
        yield Month(index)
