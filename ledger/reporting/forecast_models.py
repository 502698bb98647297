"""Forecast models: a month-end MRR history in, the next months' closing MRR out (docs/forecast.md).

Pure. Each model reads the history of one currency (consecutive `MonthBalance`s, the last one
complete) and projects closing MRR for `months` months in integer minor units:

- `last`: the last closing MRR, unchanged (a naive baseline).
- `drift3`: the last closing MRR plus, each month, the average net new MRR of the last 3
  months (a naive baseline).
- `rates`: the rate model. New MRR (with reactivation) is the average of the last 6 months,
  times a month-of-year index once 24 months are known; expansion, contraction, churn and
  moves to delinquency are shares of the opening MRR, recoveries and delinquent losses shares
  of the month's delinquent pool, each pooled over the last 6 months. Exact fractions; each
  projected movement is rounded once, so every projected month adds up.
- `ets`: exponential smoothing from statsmodels (Holt's damped additive trend, plus an
  additive 12-month season once 24 months are known), fitted to the closing MRR. Floats inside
  the estimator, rounded to minor units on the way out. Unavailable below 4 months of history
  or without statsmodels installed.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from fractions import Fraction

from ledger.reporting.balances import MonthBalance

__all__ = [
    "MODELS",
    "MODELS_VERSION",
    "MOVES",
    "RATE_WINDOW",
    "SEASON_MONTHS",
    "ProjectedMonth",
    "Rates",
    "project",
    "rate_projection",
    "rates_of",
]

# Kept backtest forecasts (`forecast_backtests`) are read only under this version: change it
# whenever a model would project differently from the same history.
MODELS_VERSION = "1"
RATE_WINDOW = 6
SEASON_MONTHS = 24  # two years of history before a seasonal term
ETS_MINIMUM = 4
MOVES = ("new", "expansion", "contraction", "churn", "delinquent", "recovered")


@dataclass(frozen=True, slots=True)
class ProjectedMonth:
    """One projected month of the rate model: its movements add up to its closing MRR."""

    opening_mrr: int
    new: int  # new and reactivation
    expansion: int
    contraction: int
    churn: int
    delinquent: int
    recovered: int
    closing_mrr: int
    delinquent_mrr: int


@dataclass(frozen=True, slots=True)
class Rates:
    """The rate model's terms, as fractions (shares of opening MRR or of the delinquent pool)."""

    new_per_month: Fraction
    expansion: Fraction
    contraction: Fraction
    churn: Fraction
    delinquent: Fraction
    recovered: Fraction  # of the delinquent pool
    delinquent_lost: Fraction  # of the delinquent pool (delinquent churn and changes)
    season: tuple[Fraction, ...]  # new MRR index per calendar month (1..12); all 1 below 24
    window: int


def _ratio(part: int, whole: int) -> Fraction:
    return Fraction(part, whole) if whole else Fraction(0)


def _pool(b: MonthBalance) -> int:
    """Delinquent MRR at stake in a month: what was owed at its start plus what moved in."""
    return b.opening_delinquent_mrr - b.delinquent


def rates_of(history: Sequence[MonthBalance]) -> Rates:
    window = list(history[-RATE_WINDOW:])
    opening = sum(b.opening_mrr for b in window)
    pool = sum(_pool(b) for b in window)
    news = [b.new + b.reactivation for b in window]
    return Rates(
        new_per_month=Fraction(sum(news), len(window)) if window else Fraction(0),
        expansion=_ratio(sum(b.expansion for b in window), opening),
        contraction=_ratio(sum(b.contraction for b in window), opening),
        churn=_ratio(sum(b.churn for b in window), opening),
        delinquent=_ratio(sum(b.delinquent for b in window), opening),
        recovered=_ratio(sum(b.recovered for b in window), pool),
        delinquent_lost=_ratio(sum(b.delinquent_churn + b.delinquent_change for b in window), pool),
        season=_season(history),
        window=len(window),
    )


def _season(history: Sequence[MonthBalance]) -> tuple[Fraction, ...]:
    """New MRR per calendar month over the last 24 months ÷ its monthly average (1 below 24)."""
    if len(history) < SEASON_MONTHS:
        return (Fraction(1),) * 12
    last = history[-SEASON_MONTHS:]
    average = Fraction(sum(b.new + b.reactivation for b in last), SEASON_MONTHS)
    if average <= 0:
        return (Fraction(1),) * 12
    by_month = [Fraction(0)] * 12
    for b in last:
        by_month[b.month.month - 1] += Fraction(b.new + b.reactivation, 2)
    return tuple(total / average for total in by_month)


def rate_projection(history: Sequence[MonthBalance], months: int) -> list[ProjectedMonth]:
    """The rate model, month by month from the last closing balances."""
    if not history:
        return []
    r = rates_of(history)
    last = history[-1]
    opening, owed = last.closing_mrr, last.delinquent_mrr
    calendar = last.month.index
    result = []
    for step in range(1, months + 1):
        season = r.season[(calendar + step) % 12]
        moved = round(r.delinquent * opening)
        pool = owed - moved
        new = max(0, round(r.new_per_month * season))
        expansion = round(r.expansion * opening)
        contraction = round(r.contraction * opening)
        churn = round(r.churn * opening)
        recovered = round(r.recovered * pool)
        lost = round(r.delinquent_lost * pool)
        closing = opening + new + expansion + contraction + churn + moved + recovered
        owed = pool - recovered + lost
        result.append(
            ProjectedMonth(
                opening, new, expansion, contraction, churn, moved, recovered, closing, owed
            )
        )
        opening = closing
    return result


def _last(history: Sequence[MonthBalance], months: int) -> list[int] | None:
    return [history[-1].closing_mrr] * months if history else None


def _drift3(history: Sequence[MonthBalance], months: int) -> list[int] | None:
    if not history:
        return None
    recent = history[-3:]
    drift = Fraction(sum(b.net_new_mrr for b in recent), len(recent))
    return [history[-1].closing_mrr + round(drift * step) for step in range(1, months + 1)]


def _rates(history: Sequence[MonthBalance], months: int) -> list[int] | None:
    if not history:
        return None
    return [m.closing_mrr for m in rate_projection(history, months)]


def _ets(history: Sequence[MonthBalance], months: int) -> list[int] | None:
    if len(history) < ETS_MINIMUM:
        return None
    try:
        import numpy as np
        from statsmodels.tsa.holtwinters import ExponentialSmoothing
    except ImportError:  # the `forecast` extra is not installed
        return None
    values = np.array([b.closing_mrr for b in history], dtype=float)
    if np.ptp(values) == 0:
        return [history[-1].closing_mrr] * months
    seasonal = len(history) >= SEASON_MONTHS
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # convergence notes on short or flat series
        model = ExponentialSmoothing(
            values,
            trend="add",
            damped_trend=True,
            seasonal="add" if seasonal else None,
            seasonal_periods=12 if seasonal else None,
            initialization_method="estimated",
        )
        fitted = model.fit()
        ahead = fitted.forecast(months)
    if not np.all(np.isfinite(ahead)):
        return None
    return [round(float(v)) for v in ahead]


Model = Callable[[Sequence[MonthBalance], int], "list[int] | None"]
MODELS: dict[str, Model] = {"last": _last, "drift3": _drift3, "rates": _rates, "ets": _ets}


def project(model: str, history: Sequence[MonthBalance], months: int) -> list[int] | None:
    """Closing MRR for `months` months after the history, or None where the model cannot."""
    return MODELS[model](history, months)
