"""OpenAPI paths and schemas of committed MRR and the forecast (merged by ingest/openapi.py)."""

from __future__ import annotations

from typing import Any

from ledger.reporting.forecast_models import MODELS, ProjectedMonth

_MONEY = {"type": "string", "pattern": r"^-?[0-9]+(\.[0-9]+)?$"}
_NULLABLE_MONEY = {"type": ["string", "null"], "pattern": r"^-?[0-9]+(\.[0-9]+)?$"}
_SHARE = {"type": ["string", "null"], "pattern": r"^-?[0-9]+\.[0-9]{4}$"}
_MONTH = {"type": "string", "pattern": r"^[0-9]{4}-(0[1-9]|1[0-2])$"}
_CURRENCY = {"type": "string", "pattern": "^[a-z]{3}$"}
_TIME = {"type": "string", "format": "date-time"}
_TEXT = {"type": "string"}


def _object(properties: dict[str, Any]) -> dict[str, Any]:
    return {
        "type": "object",
        "required": list(properties),
        "additionalProperties": False,
        "properties": properties,
    }


def _list(schema: dict[str, Any]) -> dict[str, Any]:
    return {"type": "array", "items": schema}


def _held() -> dict[str, Any]:
    return _object(
        {
            "subscription_id": _TEXT,
            "customer_id": _TEXT,
            "kind": {"enum": ["delinquent", "scheduled_to_cancel", "trial"]},
            "amount": _MONEY,
            "event_id": _TEXT,
            "detail": _TEXT,
        }
    )


def schemas() -> dict[str, Any]:
    by_model = _object({m: _NULLABLE_MONEY for m in MODELS})
    movements = _object({name: _MONEY for name in ProjectedMonth.__slots__})
    return {
        "CommittedMrr": _object(
            {
                "currency": _CURRENCY,
                "today": _TIME,
                "mrr_today": _MONEY,
                "months": _list(
                    _object({"month": _MONTH, "committed_mrr": _MONEY, "change": _MONEY})
                ),
                "adjustments": _list(
                    _object(
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
                            "amount": _MONEY,
                            "event_id": _TEXT,
                            "detail": _TEXT,
                        }
                    )
                ),
                "at_risk_mrr": _MONEY,
                "at_risk": _list(_held()),
                "potential_mrr": _MONEY,
                "potential": _list(_held()),
                "notes": _list(_TEXT),
            }
        ),
        "MrrForecast": _object(
            {
                "currency": _CURRENCY,
                "made_month": _MONTH,
                "made_at": _TIME,
                "model": {"enum": list(MODELS)},
                "interval": {"const": "80%"},
                "backtest": _object(
                    {
                        "cutoffs": {"type": "integer", "minimum": 0},
                        "mape": _object(
                            {m: _object({"1": _SHARE, "3": _SHARE, "6": _SHARE}) for m in MODELS}
                        ),
                    }
                ),
                "months": _list(
                    _object(
                        {
                            "month": _MONTH,
                            "closing_mrr": _MONEY,
                            "low": _NULLABLE_MONEY,
                            "high": _NULLABLE_MONEY,
                            "models": by_model,
                            "rate_model_movements": {"oneOf": [{"type": "null"}, movements]},
                        }
                    )
                ),
                "kept": _list(
                    _object(
                        {
                            "month": _MONTH,
                            "model": {"enum": list(MODELS)},
                            "forecast": _MONEY,
                            "low": _NULLABLE_MONEY,
                            "high": _NULLABLE_MONEY,
                            "actual": _MONEY,
                            "error": _SHARE,
                        }
                    )
                ),
            }
        ),
        "MrrBacktest": _object(
            {
                "currency": _CURRENCY,
                "cutoffs": _list(_MONTH),
                "chosen": {"enum": list(MODELS)},
                "scores": _list(
                    _object(
                        {
                            "model": {"enum": list(MODELS)},
                            "horizon": {"type": "integer"},
                            "mape": _SHARE,
                            "count": {"type": "integer", "minimum": 0},
                        }
                    )
                ),
                "mean_mape": _object({m: _SHARE for m in MODELS}),
            }
        ),
    }


def _get(
    summary: str, parameters: list[dict[str, Any]], schema: str, errors: dict[str, Any], csv: bool
) -> dict[str, Any]:
    content: dict[str, Any] = {
        "application/json": {"schema": {"$ref": f"#/components/schemas/{schema}"}}
    }
    if csv:
        content["text/csv"] = {"schema": {"type": "string"}}
    return {
        "get": {
            "summary": summary,
            "parameters": parameters,
            "responses": {"200": {"description": summary, "content": content}, **errors},
        }
    }


def paths(param: Any, errors: dict[str, Any]) -> dict[str, Any]:
    currency = param("currency", "needed when the ledger holds several currencies")
    months = param("months", "months ahead, this one first (default 12)", {"type": "integer"})
    fmt = param("format", "json or csv", {"enum": ["json", "csv"]})
    return {
        "/api/mrr/committed": _get(
            "MRR committed for the coming months, the adjustments traced to their events; "
            "MRR at risk and potential MRR apart",
            [months, currency, fmt],
            "CommittedMrr",
            errors,
            True,
        ),
        "/api/mrr/forecast": _get(
            "Closing MRR forecast made at the start of this month, with an 80% interval, and "
            "past months' kept forecasts against what happened",
            [months, currency, fmt],
            "MrrForecast",
            errors,
            True,
        ),
        "/api/mrr/forecast/backtest": _get(
            "Each model forecast from each past month as if it were the last: MAPE at 1, 3, 6 "
            "months",
            [currency],
            "MrrBacktest",
            errors,
            False,
        ),
    }
