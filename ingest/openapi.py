"""The OpenAPI 3.1 document of the read-only accountant API (GET /api/openapi.json)."""

from __future__ import annotations

from typing import Any

from ingest import openapi_forecast
from ingest.openapi_parts import CURRENCY as _CURRENCY
from ingest.openapi_parts import MONEY as _MONEY
from ingest.openapi_parts import MONTH as _MONTH
from ingest.openapi_parts import NULLABLE_DECIMAL as _NULLABLE_DECIMAL
from ingest.openapi_parts import error_responses as _error_responses
from ingest.openapi_parts import get_path as _get
from ingest.openapi_parts import obj as _object
from ingest.openapi_parts import param as _param
from ledger.reporting.exports import AMOUNT_FIELDS, LEDGER_FIELDS, METRIC_FIELDS
from ledger.reporting.segment_exports import CUSTOMER_MONTH_FIELDS
from ledger.rules.entries import Category


def _month_balance() -> dict[str, Any]:
    properties: dict[str, Any] = {"month": _MONTH}
    properties |= {name: _MONEY for name in AMOUNT_FIELDS}
    properties["customers"] = {"type": "integer", "minimum": 0}
    properties["arpu"] = _NULLABLE_DECIMAL
    properties |= {name: _NULLABLE_DECIMAL for name in METRIC_FIELDS}
    return {
        "type": "object",
        "required": list(properties),
        "additionalProperties": False,
        "properties": properties,
    }


def _range() -> dict[str, Any]:
    return {
        "currency": _CURRENCY,
        "from": _MONTH,
        "to": _MONTH,
        "months": {"type": "array", "items": {"$ref": "#/components/schemas/MonthBalance"}},
    }


_ENTRY_PROPERTIES: dict[str, Any] = {
    "id": {"type": "integer"},
    "effective_date": {"type": "string", "format": "date"},
    "effective_at": {"type": "string", "format": "date-time"},
    "month": _MONTH,
    "customer_id": {"type": "string"},
    "subscription_id": {"type": "string"},
    "category": {"type": "string", "enum": [category.value for category in Category]},
    "currency": _CURRENCY,
    "amount": _MONEY,
    "source_event_id": {"type": "string"},
    "cause_event_id": {"type": "string"},
    "reversal_of": {"type": ["integer", "null"]},
    "reversed_by": {"type": ["integer", "null"]},
    "recorded_at": {"type": "string", "format": "date-time"},
}
assert list(_ENTRY_PROPERTIES) == list(LEDGER_FIELDS)


_COUNT = {"type": "integer", "minimum": 0}
_SHARE = _NULLABLE_DECIMAL


def _segment_schemas() -> dict[str, Any]:
    months = {"type": "array", "items": {"$ref": "#/components/schemas/MonthBalance"}}
    customer_month = {
        "customer_id": {"type": "string"},
        "month": _MONTH,
        "currency": _CURRENCY,
        "active_mrr": _MONEY,
        "delinquent_mrr": _MONEY,
        "category": {"type": ["string", "null"], "enum": [*(c.value for c in Category), None]},
        "plans": {"type": "string", "description": "price ids, separated by spaces"},
        **{c.value: _MONEY for c in Category},
    }
    assert list(customer_month) == list(CUSTOMER_MONTH_FIELDS)
    return {
        "SegmentReport": _object(
            {
                "currency": _CURRENCY,
                "from": _MONTH,
                "to": _MONTH,
                "by": {"type": "string"},
                "where": {"type": "array", "items": {"type": "string"}},
                "note": {"type": "string", "description": "what adds up to the total, and why"},
                "total": months,
                "segments": {
                    "type": "array",
                    "items": _object({"segment": {"type": "string"}, "months": months}),
                },
                "sums": {
                    "type": "array",
                    "items": _object(
                        {
                            "month": _MONTH,
                            "closing_mrr": _MONEY,
                            "delinquent_mrr": _MONEY,
                            "customers": _COUNT,
                        }
                    ),
                },
            }
        ),
        "CohortTable": _object(
            {
                "currency": _CURRENCY,
                "from": _MONTH,
                "to": _MONTH,
                "metric": {"enum": ["customers", "mrr"]},
                "by": {"type": ["string", "null"]},
                "cohorts": {
                    "type": "array",
                    "items": _object(
                        {
                            "segment": {"type": "string"},
                            "cohort": _MONTH,
                            "customers": _COUNT,
                            "starting_mrr": _MONEY,
                            "months": {
                                "type": "array",
                                "items": _object(
                                    {
                                        "month": _MONTH,
                                        "age": _COUNT,
                                        "customers": _COUNT,
                                        "customers_share": _SHARE,
                                        "delinquent_customers": _COUNT,
                                        "mrr": _MONEY,
                                        "mrr_share": _SHARE,
                                    }
                                ),
                            },
                        }
                    ),
                },
            }
        ),
        "CustomerMonths": _object(
            {
                "currency": _CURRENCY,
                "rows": {"type": "array", "items": _object(customer_month)},
            }
        ),
        "TopCustomers": _object(
            {
                "month": _MONTH,
                "currency": _CURRENCY,
                "closing_mrr": _MONEY,
                "customers": _COUNT,
                "top10_mrr": _MONEY,
                "top10_share": _SHARE,
                "top": {
                    "type": "array",
                    "items": _object({"customer_id": {"type": "string"}, "active_mrr": _MONEY}),
                },
            }
        ),
    }


def document() -> dict[str, Any]:
    filters = [
        _param("month", "entries effective in this month (YYYY-MM)"),
        _param("customer", "a Stripe customer id"),
        _param("subscription", "a Stripe subscription id"),
        _param("category", "a movement category", _ENTRY_PROPERTIES["category"]),
    ]
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "MRR Ledger accountant API",
            "version": "1",
            "description": "Read-only. Amounts are decimal strings in major units with the "
            "currency's own decimals; movements are signed; ratios have 4 decimals.",
        },
        "security": [{"bearer": []}],
        "paths": {
            **openapi_forecast.paths(),
            "/api/mrr": {
                "get": {
                    "summary": "Monthly MRR balances of one currency",
                    "parameters": [
                        {**_param("from", "first month (YYYY-MM)"), "required": True},
                        {**_param("to", "last month (YYYY-MM)"), "required": True},
                        _param("currency", "needed when the ledger holds several currencies"),
                        _param("reporting_currency", "convert every entry into this currency"),
                        _param("as_of", "ISO 8601: what the ledger said at that time"),
                        _param(
                            "mode",
                            "live or test; default live, or test when the ledger holds no "
                            "live data (the answer's `mode` and `note` say so)",
                            {"enum": ["live", "test"]},
                        ),
                        _param(
                            "source",
                            "one Stripe account (acct_..., or default for the endpoint's own); "
                            "default every account together",
                        ),
                        _param(
                            "by",
                            "one bridge per segment: plan, product, interval, country or "
                            "metadata.KEY (not with as_of or reporting_currency); the answer "
                            "is then a SegmentReport. Or account: one bridge per Stripe account "
                            "of the mode beside the consolidated one (an AccountBreakdown)",
                        ),
                        {
                            **_param(
                                "where",
                                "DIMENSION=VALUE, repeatable: only these segments (of the "
                                "dimension reported), e.g. plan=price_123",
                                {"type": "array", "items": {"type": "string"}},
                            ),
                            "explode": True,
                        },
                        _param("format", "json or csv", {"enum": ["json", "csv"]}),
                    ],
                    "responses": {
                        "200": {
                            "description": "the balances (by segment with `by` or `where`)",
                            "content": {
                                "application/json": {
                                    "schema": {
                                        "oneOf": [
                                            {"$ref": "#/components/schemas/MrrReport"},
                                            {"$ref": "#/components/schemas/SegmentReport"},
                                            {"$ref": "#/components/schemas/AccountBreakdown"},
                                        ]
                                    }
                                },
                                "text/csv": {"schema": {"type": "string"}},
                            },
                        },
                        **_error_responses(),
                    },
                }
            },
            "/api/cohorts": _get(
                "Customers by the month of their first paid MRR, followed month by month",
                [
                    {**_param("from", "first cohort month (YYYY-MM)"), "required": True},
                    {**_param("to", "last month followed (YYYY-MM)"), "required": True},
                    _param("currency", "needed when the ledger holds several currencies"),
                    _param("metric", "customers or mrr", {"enum": ["customers", "mrr"]}),
                    _param(
                        "by", "cohorts per segment: plan, product, interval, country, metadata.KEY"
                    ),
                    _param("format", "json or csv", {"enum": ["json", "csv"]}),
                ],
                "CohortTable",
                csv=True,
            ),
            "/api/customers/months": _get(
                "MRR per customer per month: its sums are the report's closing and delinquent MRR",
                [
                    {**_param("from", "first month (YYYY-MM)"), "required": True},
                    {**_param("to", "last month (YYYY-MM)"), "required": True},
                    _param("currency", "needed when the ledger holds several currencies"),
                    _param("format", "json or csv (streamed)", {"enum": ["json", "csv"]}),
                ],
                "CustomerMonths",
                csv=True,
            ),
            "/api/customers/top": _get(
                "The largest customers at a month end, and the share the top 10 hold",
                [
                    {**_param("month", "the month (YYYY-MM)"), "required": True},
                    _param("currency", "needed when the ledger holds several currencies"),
                    _param("limit", "how many, 1-1000 (default 10)", {"type": "integer"}),
                ],
                "TopCustomers",
            ),
            "/api/ledger": {
                "get": {
                    "summary": "Ledger entries, oldest first, a page at a time",
                    "parameters": [
                        *filters,
                        _param(
                            "mode",
                            "live or test; default live, or test when there is no live data",
                            {"enum": ["live", "test"]},
                        ),
                        _param("source", "one Stripe account (acct_..., or default)"),
                        _param("limit", "page size, 1-1000 (default 100)", {"type": "integer"}),
                        _param("cursor", "`next_cursor` of the previous page"),
                        _param("format", "json (paged) or csv (every match, streamed)"),
                    ],
                    "responses": {
                        "200": {
                            "description": "one page (json) or every match (csv)",
                            "content": {
                                "application/json": {
                                    "schema": {"$ref": "#/components/schemas/LedgerPage"}
                                },
                                "text/csv": {"schema": {"type": "string"}},
                            },
                        },
                        **_error_responses(),
                    },
                }
            },
            "/api/ledger/{entry_id}": {
                "get": {
                    "summary": "One entry with its explanation, and its reversal if reversed",
                    "parameters": [
                        {
                            "name": "entry_id",
                            "in": "path",
                            "required": True,
                            "schema": {"type": "integer"},
                        }
                    ],
                    "responses": {
                        "200": {
                            "description": "the entry",
                            "content": {
                                "application/json": {
                                    "schema": {"$ref": "#/components/schemas/LedgerEntryDetail"}
                                }
                            },
                        },
                        "404": {
                            "description": "no such entry",
                            "content": {
                                "application/json": {
                                    "schema": {"$ref": "#/components/schemas/Error"}
                                }
                            },
                        },
                        **_error_responses(),
                    },
                }
            },
        },
        "components": {
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
            "schemas": {
                **openapi_forecast.schemas(),
                "Error": {
                    "type": "object",
                    "required": ["error", "reason"],
                    "properties": {
                        "error": {"type": "string"},
                        "reason": {"type": "string"},
                        "field": {"type": "string"},
                    },
                },
                "MonthBalance": _month_balance(),
                "CurrencyRange": {
                    "type": "object",
                    "required": ["currency", "from", "to", "months"],
                    "properties": _range(),
                },
                "MrrReport": {
                    "type": "object",
                    "required": ["currency", "from", "to", "months", "mode", "source"],
                    "properties": {
                        **_range(),
                        "reporting_currency": {"type": "boolean"},
                        "unconverted": {
                            "type": "array",
                            "items": {"$ref": "#/components/schemas/CurrencyRange"},
                        },
                        "warnings": {"type": "array", "items": {"type": "string"}},
                        "mode": {"type": "string", "enum": ["live", "test"]},
                        "source": {
                            "type": ["string", "null"],
                            "description": 'the account asked for ("" the endpoint\'s own); '
                            "null: every account together",
                        },
                        "note": {
                            "type": "string",
                            "description": "set when test-mode data is shown unasked",
                        },
                    },
                    "additionalProperties": False,
                },
                "AccountBreakdown": {
                    "type": "object",
                    "required": ["consolidated", "accounts", "adds_up", "mismatches"],
                    "properties": {
                        "consolidated": {"$ref": "#/components/schemas/MrrReport"},
                        "accounts": {
                            "type": "array",
                            "items": {
                                "type": "object",
                                "required": ["source", "currency", "from", "to", "months"],
                                "properties": {
                                    "source": {
                                        "type": "string",
                                        "description": "acct_..., or default for the "
                                        "endpoint's own account",
                                    },
                                    **_range(),
                                },
                                "additionalProperties": False,
                            },
                        },
                        "adds_up": {"type": "boolean"},
                        "mismatches": {"type": "array", "items": {"type": "string"}},
                    },
                    "additionalProperties": False,
                },
                **_segment_schemas(),
                "LedgerEntry": {
                    "type": "object",
                    "required": list(_ENTRY_PROPERTIES),
                    "properties": _ENTRY_PROPERTIES,
                    "additionalProperties": False,
                },
                "LedgerPage": {
                    "type": "object",
                    "required": ["entries", "next_cursor"],
                    "properties": {
                        "entries": {
                            "type": "array",
                            "items": {"$ref": "#/components/schemas/LedgerEntry"},
                        },
                        "next_cursor": {"type": ["string", "null"]},
                    },
                    "additionalProperties": False,
                },
                "LedgerEntryDetail": {
                    "type": "object",
                    "required": ["entry", "explanation", "reversal"],
                    "properties": {
                        "entry": {"$ref": "#/components/schemas/LedgerEntry"},
                        "explanation": {"type": "object"},
                        "reversal": {
                            "oneOf": [
                                {"type": "null"},
                                {"$ref": "#/components/schemas/LedgerEntry"},
                            ]
                        },
                    },
                    "additionalProperties": False,
                },
            },
        },
    }
