"""A replay that checks itself against its own checkpoints: resuming from each one must give
exactly what the whole replay gives after it (entries with their explanations, closing figures,
dependencies, segment sums, and the later checkpoints themselves, byte for byte)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ledger.rules.events import EventRecord
from ledger.rules.state_codec import unseal
from ledger.rules.timeline import References, Replay, Saving, replay_customer, resume_customer

VERSION = "test-rules"


def keyed(replay: Replay) -> list[tuple[Any, ...]]:
    return [(*e.key(), dict(e.explanation)) for e in replay.entries]


def replay_checked(
    customer_id: str, events: Sequence[EventRecord], refs: References, *, spacing: int = 1
) -> Replay:
    """The whole replay, once every resumption from its checkpoints has been compared with it."""
    saving = Saving(VERSION, spacing, recent=len(events) + 1)
    whole = replay_customer(customer_id, events, refs, saving)
    order = {e.id: e.sort_key for e in events}
    for checkpoint in whole.checkpoints:
        state = unseal(checkpoint.sealed, VERSION, customer_id)
        assert (state.events, state.position) == (checkpoint.events, checkpoint.position)
        resumed = resume_customer(state, events, refs, saving)
        assert resumed is not None
        later = [e for e in whole.entries if order[e.source_event_id] > checkpoint.position]
        assert keyed(resumed) == keyed(Replay(later))
        assert resumed.closing == whole.closing
        assert resumed.segment_months == whole.segment_months
        assert resumed.depends_on == whole.depends_on
        assert resumed.checkpoints == tuple(
            c for c in whole.checkpoints if c.events > checkpoint.events
        )
    return whole
