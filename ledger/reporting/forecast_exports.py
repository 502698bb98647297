"""Committed MRR, the forecast and the backtest as JSON-ready dicts, CSV and text tables. Pure.

Amounts are decimal strings in major units with the currency's own decimals, as in the
report; percentages are fractions with 4 decimals (0.0512 = 5.12%); undefined is null.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

from ledger.reporting.backtest import HORIZONS, Backtest
from ledger.reporting.forecast import Forecast
from ledger.reporting.forecast_models import MODELS
from ledger.rules.commitments import CommittedMrr, Held
from ledger.rules.money import to_major

__all__ = [
    "backtest_json",
    "backtest_table",
    "committed_csv",
    "committed_json",
    "committed_table",
    "forecast_csv",
    "forecast_json",
    "forecast_table",
]

MODEL_NAMES = {
    "last": "last value",
    "drift3": "last + 3-month net new",
    "rates": "rate model",
    "ets": "exponential smoothing",
}


def _money(amount: int | None, currency: str) -> str | None:
    return None if amount is None else f"{to_major(amount, currency):f}"


def _share(value: float | None) -> str | None:
    return None if value is None else f"{value:.4f}"


def _iso(moment: datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")


def _csv(header: Sequence[str], rows: Iterable[Sequence[Any]]) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(header)
    writer.writerows(["" if v is None else v for v in row] for row in rows)
    return out.getvalue()


def _table(rows: Sequence[Sequence[str]]) -> str:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = [
        "  ".join(
            cell.ljust(w) if i == 0 else cell.rjust(w)
            for i, (cell, w) in enumerate(zip(row, widths, strict=True))
        )
        for row in rows
    ]
    return "\n".join(line.rstrip() for line in lines) + "\n"


# --- committed MRR ---------------------------------------------------------------------------


def _held(h: Held, currency: str) -> dict[str, Any]:
    return {
        "subscription_id": h.subscription_id,
        "customer_id": h.customer_id,
        "kind": h.kind,
        "amount": _money(h.amount, currency),
        "event_id": h.event_id,
        "detail": h.detail,
    }


def committed_json(c: CommittedMrr) -> dict[str, Any]:
    cur = c.currency
    return {
        "currency": cur,
        "today": _iso(c.today),
        "mrr_today": _money(c.mrr_today, cur),
        "months": [
            {
                "month": str(m.month),
                "committed_mrr": _money(m.committed_mrr, cur),
                "change": _money(m.change, cur),
            }
            for m in c.months
        ],
        "adjustments": [
            {
                "subscription_id": a.subscription_id,
                "customer_id": a.customer_id,
                "kind": a.kind,
                "effective_at": _iso(a.effective_at),
                "amount": _money(a.amount, cur),
                "event_id": a.event_id,
                "detail": a.detail,
            }
            for a in c.adjustments
        ],
        "at_risk_mrr": _money(c.at_risk_mrr, cur),
        "at_risk": [_held(h, cur) for h in c.at_risk],
        "potential_mrr": _money(c.potential_mrr, cur),
        "potential": [_held(h, cur) for h in c.potential],
        "notes": list(c.notes),
    }


def committed_csv(c: CommittedMrr) -> str:
    """One row per month (the adjustments are in JSON and in the table)."""
    return _csv(
        ("month", "committed_mrr", "change"),
        (
            (str(m.month), _money(m.committed_mrr, c.currency), _money(m.change, c.currency))
            for m in c.months
        ),
    )


def committed_table(c: CommittedMrr) -> str:
    cur = c.currency

    def money(amount: int | None) -> str:
        return _money(amount, cur) or ""

    rows = [["month", "committed MRR", "change"]]
    rows += [[str(m.month), money(m.committed_mrr), money(m.change)] for m in c.months]
    text = f"{cur.upper()} committed MRR; today {money(c.mrr_today)}\n" + _table(rows)
    if c.adjustments:
        adj = [["effective", "subscription", "kind", "amount", "announced by"]]
        adj += [
            [
                a.effective_at.date().isoformat(),
                a.subscription_id,
                a.kind,
                money(a.amount),
                a.event_id,
            ]
            for a in c.adjustments
        ]
        text += "\nadjustments\n" + _table(adj)
    text += (
        f"\nnot added in: at risk {money(c.at_risk_mrr)}, "
        f"potential (trials) {money(c.potential_mrr)}\n"
    )
    for h in [*c.at_risk, *c.potential]:
        text += f"  {h.kind:20} {h.subscription_id:24} {money(h.amount):>12}  {h.event_id}\n"
    for note in c.notes:
        text += f"note: {note}\n"
    return text


# --- the forecast ----------------------------------------------------------------------------


def forecast_json(f: Forecast) -> dict[str, Any]:
    cur = f.currency
    return {
        "currency": cur,
        "converted_from": f.converted_from,
        "made_month": str(f.made_month),
        "made_at": _iso(f.made_at),
        "model": f.model,
        "interval": "80%",
        "backtest": {
            "cutoffs": f.cutoffs,
            "mape": {m: {str(h): _share(v) for h, v in by.items()} for m, by in f.mape.items()},
        },
        "months": [
            {
                "month": str(m.month),
                "closing_mrr": _money(m.closing_mrr, cur),
                "low": _money(m.low, cur),
                "high": _money(m.high, cur),
                "models": {name: _money(v, cur) for name, v in m.models.items()},
                "rate_model_movements": None
                if m.movements is None
                else {
                    name: _money(getattr(m.movements, name), cur) for name in m.movements.__slots__
                },
            }
            for m in f.months
        ],
        "kept": [
            {
                "month": str(k.month),
                "model": k.model,
                "forecast": _money(k.forecast, cur),
                "low": _money(k.low, cur),
                "high": _money(k.high, cur),
                "actual": _money(k.actual, cur),
                "error": _share(k.error),
            }
            for k in f.kept
        ],
    }


def forecast_csv(f: Forecast) -> str:
    cur = f.currency
    return _csv(
        ("month", "closing_mrr", "low", "high", *(f"model_{m}" for m in MODELS)),
        (
            (
                str(m.month),
                _money(m.closing_mrr, cur),
                _money(m.low, cur),
                _money(m.high, cur),
                *(_money(m.models.get(name), cur) for name in MODELS),
            )
            for m in f.months
        ),
    )


def forecast_table(f: Forecast) -> str:
    cur = f.currency

    def money(amount: int | None) -> str:
        return _money(amount, cur) or "-"

    head = (
        f"{cur.upper()} MRR forecast made at the start of {f.made_month} "
        f"(model: {MODEL_NAMES[f.model]}, chosen by the backtest over {f.cutoffs} months; "
        "80% interval)\n"
    )
    rows = [
        [
            "month",
            "closing MRR",
            "low",
            "high",
            "new",
            "expansion",
            "contraction",
            "churn",
            "delinquent",
            "recovered",
        ]
    ]
    for m in f.months:
        moved = m.movements
        rows.append(
            [str(m.month), money(m.closing_mrr), money(m.low), money(m.high)]
            + (
                [
                    money(getattr(moved, n))
                    for n in ("new", "expansion", "contraction", "churn", "delinquent", "recovered")
                ]
                if moved is not None
                else ["-"] * 6
            )
        )
    text = head + _table(rows) + "(movements: the rate model's)\n"
    if f.kept:
        kept = [["month", "forecast", "actual", "error"]]
        kept += [
            [str(k.month), money(k.forecast), money(k.actual), _percent(k.error)] for k in f.kept
        ]
        text += "\nforecasts made at each month's start, against what happened\n" + _table(kept)
    return text


def _percent(value: float | None) -> str:
    return "-" if value is None else f"{value * 100:+.2f}%"


# --- the backtest ----------------------------------------------------------------------------


def backtest_json(b: Backtest) -> dict[str, Any]:
    return {
        "currency": b.currency,
        "cutoffs": [str(c) for c in b.cutoffs],
        "chosen": b.chosen,
        "scores": [
            {"model": s.model, "horizon": s.horizon, "mape": _share(s.mape), "count": s.count}
            for s in b.scores
        ],
        "mean_mape": {m: _share(b.mean_mape(m)) for m in MODELS},
    }


def backtest_table(b: Backtest) -> str:
    if not b.cutoffs:
        name = MODEL_NAMES[b.chosen]
        return f"{b.currency.upper()}: too little history to backtest; the default is {name}\n"
    rows = [["model", *(f"MAPE {h} mo" for h in HORIZONS), "mean", "forecasts"]]
    for m in MODELS:
        scores = [b.score(m, h) for h in HORIZONS]
        rows.append(
            [MODEL_NAMES[m] + (" *" if m == b.chosen else "")]
            + [_percent_abs(s.mape if s else None) for s in scores]
            + [_percent_abs(b.mean_mape(m)), str(scores[0].count if scores[0] else 0)]
        )
    return (
        f"{b.currency.upper()} backtest: forecasts from {b.cutoffs[0]} to {b.cutoffs[-1]}, "
        "each from the entries recorded by the end of its month\n"
        + _table(rows)
        + "* the default model: the lowest mean MAPE\n"
    )


def _percent_abs(value: float | None) -> str:
    return "-" if value is None else f"{value * 100:.2f}%"
