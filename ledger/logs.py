"""Log set-up for every process: plain text by default, one JSON object a line when
MRR_LOG_FORMAT=json; e-mail addresses and Stripe secrets are masked in either.

Context fields (event id, inbox id, customer id, request id) come from a record's `extra=` or,
for the request id, from `request_id` (a contextvar the web app sets per request).
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Mapping
from contextvars import ContextVar
from datetime import UTC, datetime

from ledger.settings import ConfigError

CONTEXT_FIELDS = ("event_id", "inbox_id", "customer_id", "request_id")
FORMATS = ("text", "json")
TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s %(message)s"

request_id: ContextVar[str | None] = ContextVar("request_id", default=None)

# Personal data and credentials that a library's error message may quote back at us: e-mail
# addresses, Stripe secret/restricted keys and webhook secrets, and URL passwords.
_MASKS = (
    (re.compile(r"[\w.+-]+@[\w-]+(?:\.[\w-]+)+"), "<email>"),
    (re.compile(r"\b(?:sk|rk)_(?:live|test)_\w+"), "<stripe-key>"),
    (re.compile(r"\bwhsec_\w+"), "<webhook-secret>"),
    (re.compile(r"(://[^:/@\s]*:)[^@\s]+@"), r"\1***@"),
)


def mask(text: str) -> str:
    for pattern, replacement in _MASKS:
        text = pattern.sub(replacement, text)
    return text


class MaskingFormatter(logging.Formatter):
    """The standard text format, masked."""

    def format(self, record: logging.LogRecord) -> str:
        return mask(super().format(record))


class JsonFormatter(logging.Formatter):
    """One JSON object per record: timestamp, level, logger, message and context fields."""

    def format(self, record: logging.LogRecord) -> str:
        fields: dict[str, object] = {
            "timestamp": datetime.fromtimestamp(record.created, UTC).isoformat(),
            "level": record.levelname,
            "logger": record.name,
            "message": mask(record.getMessage()),
        }
        for name in CONTEXT_FIELDS:
            value = getattr(record, name, None)
            if value is None and name == "request_id":
                value = request_id.get()
            if value is not None:
                fields[name] = value if isinstance(value, int) else mask(str(value))
        if record.exc_info:
            fields["exception"] = mask(self.formatException(record.exc_info))
        return json.dumps(fields, ensure_ascii=False)


def log_format(env: Mapping[str, str]) -> str:
    chosen = (env.get("MRR_LOG_FORMAT") or "text").strip().lower()
    if chosen not in FORMATS:
        raise ConfigError(f"MRR_LOG_FORMAT must be one of {', '.join(FORMATS)}, got {chosen!r}")
    return chosen


def configure(env: Mapping[str, str], level: int = logging.INFO) -> None:
    """Give the root logger one stderr handler in the chosen format (once per process)."""
    root = logging.getLogger()
    formatter = JsonFormatter() if log_format(env) == "json" else MaskingFormatter(TEXT_FORMAT)
    for handler in root.handlers:
        if getattr(handler, "mrr", False):
            handler.setFormatter(formatter)
            root.setLevel(level)
            return
    handler = logging.StreamHandler()
    handler.mrr = True  # type: ignore[attr-defined]
    handler.setFormatter(formatter)
    root.addHandler(handler)
    root.setLevel(level)
