"""A stored event, or a batch of them, turned into ledger entries: load, replay, diff, append.

The RQ job (`workers.jobs`) and the backfill call these; no queue or web code here.
"""

from ledger.processing.apply import (
    BatchOutcome,
    Fetcher,
    StoredReferences,
    apply_event,
    process_batch,
    process_inbox_row,
)

__all__ = [
    "BatchOutcome",
    "Fetcher",
    "StoredReferences",
    "apply_event",
    "process_batch",
    "process_inbox_row",
]
