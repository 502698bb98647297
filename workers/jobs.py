"""RQ job functions: each receives inbox ids, loads, calls pure code, stores."""

from __future__ import annotations

import logging

from ledger.processing import process_inbox_row
from workers import runtime

log = logging.getLogger(__name__)


class RetryLater(Exception):
    """Some rows of the batch hit a transient failure; RQ retries the job."""


def process_inbox(inbox_ids: list[int]) -> dict[str, int]:
    settings = runtime.settings()
    counts: dict[str, int] = {}
    retry: list[int] = []
    for inbox_id in inbox_ids:
        try:
            outcome = process_inbox_row(
                runtime.engine(),
                inbox_id,
                max_attempts=settings.max_attempts,
                fetch=runtime.fetcher(),
            )
        except Exception:
            retry.append(inbox_id)
            continue
        counts[outcome.status] = counts.get(outcome.status, 0) + 1
    if retry:
        raise RetryLater(f"inbox rows to retry: {retry}")
    return counts
