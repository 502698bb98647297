"""Log formats: JSON a line with context fields when asked, masking in both formats."""

from __future__ import annotations

import json
import logging

import pytest

from ledger import logs
from ledger.settings import ConfigError


def record(message: str, *args: object, **extra: object) -> logging.LogRecord:
    made = logging.LogRecord("mrr.test", logging.WARNING, __file__, 1, message, args, None)
    made.__dict__.update(extra)
    return made


def test_a_json_line_carries_the_standard_and_context_fields() -> None:
    token = logs.request_id.set("req-42")
    try:
        line = logs.JsonFormatter().format(
            record("inbox %s failed", 7, inbox_id=7, event_id="evt_1", customer_id="cus_9")
        )
    finally:
        logs.request_id.reset(token)
    fields = json.loads(line)
    assert fields["level"] == "WARNING" and fields["logger"] == "mrr.test"
    assert fields["message"] == "inbox 7 failed"
    assert fields["timestamp"].endswith("+00:00")
    assert (fields["inbox_id"], fields["event_id"], fields["customer_id"]) == (7, "evt_1", "cus_9")
    assert fields["request_id"] == "req-42"


def test_absent_context_fields_are_left_out() -> None:
    fields = json.loads(logs.JsonFormatter().format(record("plain")))
    assert set(fields) == {"timestamp", "level", "logger", "message"}


def test_an_exception_stays_on_the_one_line() -> None:
    try:
        raise ValueError("two\nlines")
    except ValueError:
        import sys

        made = logging.LogRecord("x", logging.ERROR, __file__, 1, "boom", None, sys.exc_info())
    line = logs.JsonFormatter().format(made)
    assert "\n" not in line
    assert "ValueError: two\nlines" in json.loads(line)["exception"]


@pytest.mark.parametrize(
    ("said", "hidden"),
    [
        ("customer jane.doe+x@example.co.uk wrote", "jane.doe+x@example.co.uk"),
        ("key sk_live_51Habc123 refused", "sk_live_51Habc123"),
        ("key rk_test_xyz refused", "rk_test_xyz"),
        ("secret whsec_abc123 did not match", "whsec_abc123"),
        ("postgresql://mrr:hunter2@db:5432/mrr unreachable", "hunter2"),
    ],
)
def test_both_formats_mask_emails_and_secrets(said: str, hidden: str) -> None:
    text = logs.MaskingFormatter(logs.TEXT_FORMAT).format(record(said))
    as_json = logs.JsonFormatter().format(record("%s", said, customer_id=said))
    assert hidden not in text and hidden not in as_json
    assert said.split()[-1] in text


def test_an_unknown_format_is_named() -> None:
    assert logs.log_format({}) == "text"
    assert logs.log_format({"MRR_LOG_FORMAT": "JSON"}) == "json"
    with pytest.raises(ConfigError, match="MRR_LOG_FORMAT must be one of text, json, got 'xml'"):
        logs.log_format({"MRR_LOG_FORMAT": "xml"})
