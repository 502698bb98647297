"""The shapes the OpenAPI document repeats: value schemas, objects, query parameters, error
responses and a GET path (used by ingest/openapi.py and ingest/openapi_forecast.py)."""

from __future__ import annotations

from typing import Any

MONEY = {"type": "string", "pattern": r"^-?[0-9]+(\.[0-9]+)?$"}
NULLABLE_DECIMAL = {"type": ["string", "null"], "pattern": r"^-?[0-9]+(\.[0-9]+)?$"}
MONTH = {"type": "string", "pattern": r"^[0-9]{4}-(0[1-9]|1[0-2])$"}
CURRENCY = {"type": "string", "pattern": "^[a-z]{3}$"}


def obj(properties: dict[str, Any]) -> dict[str, Any]:
    """A closed object whose properties are all required."""
    return {
        "type": "object",
        "required": list(properties),
        "additionalProperties": False,
        "properties": properties,
    }


def param(name: str, description: str, schema: dict[str, Any] | None = None) -> dict[str, Any]:
    return {
        "name": name,
        "in": "query",
        "required": False,
        "description": description,
        "schema": schema or {"type": "string"},
    }


def error_responses() -> dict[str, Any]:
    error = {"content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}}
    return {
        "400": {"description": "bad input; `field` names the parameter", **error},
        "401": {"description": "no or wrong bearer token", **error},
        "503": {"description": "no MRR_API_TOKEN configured: the API is refused", **error},
    }


def get_path(
    summary: str, parameters: list[dict[str, Any]], schema: str, *, csv: bool = False
) -> dict[str, Any]:
    """A GET answering `schema` in JSON (and CSV with `csv`), or an error."""
    content: dict[str, Any] = {
        "application/json": {"schema": {"$ref": f"#/components/schemas/{schema}"}}
    }
    if csv:
        content["text/csv"] = {"schema": {"type": "string"}}
    return {
        "get": {
            "summary": summary,
            "parameters": parameters,
            "responses": {"200": {"description": summary, "content": content},
                          **error_responses()},
        }
    }  # fmt: skip
