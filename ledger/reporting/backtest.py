"""Backtest: each model forecast from each past month as if it were the last. Pure.

The input is the ledger summed by (effective month, recorded month, category): `Cell`s. The
history "as of" the end of month c keeps the cells recorded in c or before, exactly what
`mrr report --as-of` would show at the last instant of c, so a forecast made from c sees no
entry recorded later (a late correction included). Each forecast is compared with the closing
MRR of 1, 3 and 6 months later as the ledger knows it now. The error is the absolute
percentage error |forecast - actual| / |actual| (months whose actual is 0 are left out), and a
model's score is its mean (MAPE) per horizon. The default model is the one with the lowest
mean MAPE over the three horizons, on the cut-offs every model could forecast from.
`project_from` makes one cut-off's forecasts and `scored` compares them with what happened, so
the forecasts of closed cut-offs can be kept and read back (`backtest_store`).
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from fractions import Fraction
from typing import NamedTuple

from ledger.reporting.balances import MOVEMENTS, MonthBalance, MonthTotals, balances
from ledger.reporting.forecast_models import MODELS, project
from ledger.rules.months import Month

__all__ = [
    "HORIZONS",
    "MIN_HISTORY",
    "Backtest",
    "Cell",
    "Interval",
    "Projections",
    "Score",
    "actual_closing",
    "as_known",
    "backtest",
    "cutoffs_of",
    "history_as_of",
    "interval",
    "project_from",
    "scored",
]

HORIZONS = (1, 3, 6)
MIN_HISTORY = 3  # months of history before a cut-off is tried
MIN_ERRORS = 5  # errors at a horizon before its interval is read from them
INTERVAL = (0.1, 0.9)  # an 80% interval
FALLBACK = "last"  # chosen when nothing could be scored: the simplest guess
SCORED = 12  # months after a cut-off compared with what happened
AHEAD = 24  # months each cut-off projects: the last one's are the month's forecast
_SLOT = {c.value: i for i, c in enumerate(MOVEMENTS)}


# Each model's closing MRR for the months after a cut-off; None where it cannot forecast.
Projections = dict[str, "list[int] | None"]


class Cell(NamedTuple):
    effective: int  # Month.index
    recorded: int  # Month.index
    category: str
    amount: int


@dataclass(frozen=True, slots=True)
class Score:
    model: str
    horizon: int
    mape: float | None  # a fraction (0.05 = 5%)
    count: int


@dataclass(frozen=True, slots=True)
class Backtest:
    currency: str
    cutoffs: list[Month]
    scores: list[Score]
    chosen: str
    # Relative errors (actual - forecast) / forecast of every model, by horizon 1..12.
    errors: dict[str, dict[int, list[float]]] = field(default_factory=dict)

    def score(self, model: str, horizon: int) -> Score | None:
        return next((s for s in self.scores if (s.model, s.horizon) == (model, horizon)), None)

    def mean_mape(self, model: str) -> float | None:
        found = [self.score(model, h) for h in HORIZONS]
        values = [s.mape for s in found if s is not None and s.mape is not None]
        return sum(values) / len(values) if values and len(values) == len(HORIZONS) else None


@dataclass(frozen=True, slots=True)
class Interval:
    low: int
    high: int


def as_known(cells: Iterable[Cell]) -> list[Cell]:
    """Cells with `recorded` read as the month their entries were known: the month recorded,
    except for the ledger's first month of recording (its load: a backfill or the demo brings
    years of history at once), whose entries are taken as known when they took effect, as the
    webhooks would have recorded them then."""
    found = list(cells)
    if not found:
        return found
    loaded = min(c.recorded for c in found)
    return [
        c._replace(recorded=min(c.effective, loaded)) if c.recorded == loaded else c for c in found
    ]


def history_as_of(
    cells: Iterable[Cell], currency: str, cutoff: Month | None, first: Month, last: Month
) -> list[MonthBalance]:
    """Months first..last as known at the end of `cutoff` (None: everything recorded)."""
    sums: dict[int, list[int]] = {}
    for cell in cells:
        if cutoff is not None and cell.recorded > cutoff.index:
            continue
        if cell.effective > last.index:
            continue
        row = sums.setdefault(cell.effective, [0] * len(MOVEMENTS))
        row[_SLOT[cell.category]] += cell.amount
    totals = [MonthTotals(currency, Month(m), tuple(row), 0, 0) for m, row in sorted(sums.items())]
    return balances(totals, currency, first, last)


def cutoffs_of(first: Month, last: Month) -> list[Month]:
    """The backtest's cut-offs: first + 2 .. last - 1, where `last` is the last complete month."""
    return [Month(i) for i in range(first.index + MIN_HISTORY - 1, last.index)]


def project_from(
    cells: Iterable[Cell],
    currency: str,
    first: Month,
    cutoff: Month,
    models: Sequence[str] = tuple(MODELS),
) -> Projections:
    """Every model's closing MRR for the `AHEAD` months after `cutoff`, from months first..cutoff
    as known at the end of `cutoff`: nothing recorded later changes it."""
    history = history_as_of(cells, currency, cutoff, first, cutoff)
    return {m: project(m, history, AHEAD) for m in models}


def backtest(
    cells: Sequence[Cell],
    currency: str,
    first: Month,
    last: Month,
    models: Sequence[str] = tuple(MODELS),
) -> Backtest:
    """Every model from every cut-off first + 2 .. last - 1; `last` is the last complete month."""
    cutoffs = cutoffs_of(first, last)
    projected = {c: project_from(cells, currency, first, c, models) for c in cutoffs}
    return scored(actual_closing(cells, currency, first, last), projected, currency, last, models)


def actual_closing(
    cells: Iterable[Cell], currency: str, first: Month, last: Month
) -> dict[int, int]:
    """Closing MRR of months first..last as the ledger knows it now, by Month.index."""
    return {b.month.index: b.closing_mrr for b in history_as_of(cells, currency, None, first, last)}


def scored(
    actual: dict[int, int],
    projected: dict[Month, Projections],
    currency: str,
    last: Month,
    models: Sequence[str] = tuple(MODELS),
) -> Backtest:
    """The forecasts from each cut-off (`projected`, in cut-off order) against `actual`."""
    cutoffs = sorted(projected)
    ape: dict[tuple[str, int], list[float]] = {(m, h): [] for m in models for h in HORIZONS}
    errors: dict[str, dict[int, list[float]]] = {m: {} for m in models}
    for cutoff in cutoffs:
        ahead = min(SCORED, last.index - cutoff.index)
        found = {m: projected[cutoff][m] for m in models}
        if any(f is None for f in found.values()):
            continue  # compare the models on the same cut-offs only
        for model, forecast in found.items():
            assert forecast is not None
            for step, predicted in enumerate(forecast[:ahead], start=1):
                truth = actual[cutoff.index + step]
                if predicted:
                    errors[model].setdefault(step, []).append((truth - predicted) / predicted)
                if step in HORIZONS and truth:
                    ape[(model, step)].append(abs(predicted - truth) / abs(truth))
    scores = [Score(m, h, statistics.fmean(v) if v else None, len(v)) for (m, h), v in ape.items()]
    result = Backtest(currency, cutoffs, scores, FALLBACK, errors)
    ranked = [
        (mean, index, m)
        for index, m in enumerate(models)
        if (mean := result.mean_mape(m)) is not None
    ]
    chosen = min(ranked)[2] if ranked else FALLBACK
    return Backtest(currency, cutoffs, scores, chosen, errors)


def interval(errors: dict[int, list[float]], horizon: int, forecast: int) -> Interval | None:
    """The 80% interval at `horizon`: the forecast times 1 + the 10th and 90th percentiles of
    the backtest's relative errors there; from the nearest shorter horizon with enough errors,
    widened by the square root of the horizons' ratio, when this one has too few."""
    usable = [h for h in range(horizon, 0, -1) if len(errors.get(h, [])) >= MIN_ERRORS]
    if not usable:
        return None
    source = usable[0]
    cuts = statistics.quantiles(errors[source], n=10, method="inclusive")
    widen = math.sqrt(horizon / source)
    low, high = cuts[0] * widen, cuts[-1] * widen
    return Interval(
        round(Fraction(forecast) * (1 + Fraction(low))),
        round(Fraction(forecast) * (1 + Fraction(high))),
    )
