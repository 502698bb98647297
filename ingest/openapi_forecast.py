"""OpenAPI paths and schemas of committed MRR and the forecast (merged by ingest/openapi.py)."""

from __future__ import annotations

from typing import Any

from ingest.openapi_parts import CURRENCY, MONEY, MONTH, NULLABLE_DECIMAL, get_path, obj, param
from ledger.reporting.forecast_models import MODELS, ProjectedMonth

REPORTING_CURRENCY = (
    "convert into this currency at the latest rates on or before the month's first day "
    "(mrr fx load): one rate per currency for every month shown; refused when a rate is missing"
)

_SHARE = {"type": ["string", "null"], "pattern": r"^-?[0-9]+\.[0-9]{4}$"}
_TIME = {"type": "string", "format": "date-time"}
_TEXT = {"type": "string"}


def _list(schema: dict[str, Any]) -> dict[str, Any]:
    return {"type": "array", "items": schema}


def _held() -> dict[str, Any]:
    return obj(
        {
            "subscription_id": _TEXT,
            "customer_id": _TEXT,
            "kind": {"enum": ["delinquent", "scheduled_to_cancel", "trial"]},
            "amount": MONEY,
            "event_id": _TEXT,
            "detail": _TEXT,
        }
    )


def schemas() -> dict[str, Any]:
    by_model = obj({m: NULLABLE_DECIMAL for m in MODELS})
    movements = obj({name: MONEY for name in ProjectedMonth.__slots__})
    return {
        "CommittedMrr": obj(
            {
                "currency": CURRENCY,
                "today": _TIME,
                "mrr_today": MONEY,
                "months": _list(obj({"month": MONTH, "committed_mrr": MONEY, "change": MONEY})),
                "adjustments": _list(
                    obj(
                        {
                            "subscription_id": _TEXT,
                            "customer_id": _TEXT,
                            "kind": {
                                "enum": [
                                    "cancel_at_period_end",
                                    "cancel_at",
                                    "schedule_phase",
                                    "schedule_end",
                                    "pending_update",
                                    "resume",
                                ]
                            },
                            "effective_at": _TIME,
                            "amount": MONEY,
                            "event_id": _TEXT,
                            "detail": _TEXT,
                        }
                    )
                ),
                "at_risk_mrr": MONEY,
                "at_risk": _list(_held()),
                "potential_mrr": MONEY,
                "potential": _list(_held()),
                "notes": _list(_TEXT),
            }
        ),
        "MrrForecast": obj(
            {
                "currency": CURRENCY,
                "converted_from": {"oneOf": [{"type": "null"}, CURRENCY]},
                "made_month": MONTH,
                "made_at": _TIME,
                "model": {"enum": list(MODELS)},
                "interval": {"const": "80%"},
                "backtest": obj(
                    {
                        "cutoffs": {"type": "integer", "minimum": 0},
                        "mape": obj(
                            {m: obj({"1": _SHARE, "3": _SHARE, "6": _SHARE}) for m in MODELS}
                        ),
                    }
                ),
                "months": _list(
                    obj(
                        {
                            "month": MONTH,
                            "closing_mrr": MONEY,
                            "low": NULLABLE_DECIMAL,
                            "high": NULLABLE_DECIMAL,
                            "models": by_model,
                            "rate_model_movements": {"oneOf": [{"type": "null"}, movements]},
                        }
                    )
                ),
                "kept": _list(
                    obj(
                        {
                            "month": MONTH,
                            "model": {"enum": list(MODELS)},
                            "forecast": MONEY,
                            "low": NULLABLE_DECIMAL,
                            "high": NULLABLE_DECIMAL,
                            "actual": MONEY,
                            "error": _SHARE,
                        }
                    )
                ),
            }
        ),
        "MrrBacktest": obj(
            {
                "currency": CURRENCY,
                "cutoffs": _list(MONTH),
                "chosen": {"enum": list(MODELS)},
                "scores": _list(
                    obj(
                        {
                            "model": {"enum": list(MODELS)},
                            "horizon": {"type": "integer"},
                            "mape": _SHARE,
                            "count": {"type": "integer", "minimum": 0},
                        }
                    )
                ),
                "mean_mape": obj({m: _SHARE for m in MODELS}),
            }
        ),
    }


def paths() -> dict[str, Any]:
    currency = param("currency", "needed when the ledger holds several currencies")
    reporting = param("reporting_currency", REPORTING_CURRENCY)
    months = param("months", "months ahead, this one first (default 12)", {"type": "integer"})
    fmt = param("format", "json or csv", {"enum": ["json", "csv"]})
    return {
        "/api/mrr/committed": get_path(
            "MRR committed for the coming months, the adjustments traced to their events; "
            "MRR at risk and potential MRR apart",
            [months, currency, reporting, fmt],
            "CommittedMrr",
            csv=True,
        ),
        "/api/mrr/forecast": get_path(
            "Closing MRR forecast made at the start of this month, with an 80% interval, and "
            "past months' kept forecasts against what happened",
            [months, currency, reporting, fmt],
            "MrrForecast",
            csv=True,
        ),
        "/api/mrr/forecast/backtest": get_path(
            "Each model forecast from each past month as if it were the last: MAPE at 1, 3, 6 "
            "months",
            [currency],
            "MrrBacktest",
        ),
    }
