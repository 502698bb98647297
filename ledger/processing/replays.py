"""Replaying customers from a checkpoint instead of from their first event, exactly as if from it.

A customer's replay starts from its newest checkpoint that sorts before every one of its events
still pending (among them the events being processed), or from its first event. The rules
continue from the checkpoint's state with the events after it, and the ledger in effect they
are compared with is only the entries those events are the source of. That is the whole
comparison's part after the checkpoint, because everything up to it was brought in line when
the checkpoint was written, and nothing changes it afterwards without first removing the
checkpoint:

- an event stored since, wherever it sorts, is pending until processed, and its processing
  resumes before it and removes every checkpoint after;
- a checkpoint is never left after a pending event other than those processed with it, so a
  pending event is never part of one and one marked failed never was;
- reference terms (`rules.timeline.resume_customer` checks every answer the state relied on),
  and the rules' code and the checkpoint's format (`rules.state_codec` refuses another version,
  and a corrupt text): a checkpoint that no longer holds is ignored, and the customer is
  replayed from its first event, its checkpoints all replaced.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass

from sqlalchemy import Connection

from ledger.rules.events import EventRecord
from ledger.rules.replay_state import ReplayState
from ledger.rules.sources import Unit
from ledger.rules.state_codec import UnusableCheckpoint, unseal
from ledger.rules.timeline import References, Replay, Saving, replay_customer, resume_customer
from ledger.rules.version import rules_version
from ledger.storage import inbox, store
from ledger.storage import replay_checkpoints as checkpoints
from ledger.storage.replay_checkpoints import Position, Stored

log = logging.getLogger(__name__)

# Relevant events between a customer's checkpoints: a new event replays fewer than this many.
CHECKPOINT_EVERY = 16


@dataclass(frozen=True, slots=True)
class Recomputed:
    """A customer's replay, and the part of its ledger in effect the replay's entries cover."""

    unit: Unit
    replay: Replay
    sources: list[str] | None  # the events after the checkpoint; None: from the start
    resumed_after: int  # relevant events before the replay's first; 0: from the start

    def desired(self, cause_event_id: str) -> store.DesiredLedger:
        """What `store.apply` brings the ledger in line with."""
        return store.DesiredLedger(self.unit, self.replay.entries, cause_event_id, self.sources)


def recompute(
    conn: Connection,
    units: Sequence[Unit],
    refs: References,
    *,
    processing: Collection[str] = (),
    parsed: Mapping[str, EventRecord] | None = None,
    every: int | None = None,
    from_start: bool = False,
    keep: bool = True,
) -> dict[Unit, Recomputed]:
    """Replay each customer in its source (locked by the caller) from its checkpoint, and store
    the new ones.

    `processing`: ids of the events this transaction marks processed; checkpoints may follow
    them. `parsed`: events already read, by id. `from_start`: ignore every checkpoint. `keep`:
    store the replays' checkpoints (the caller must then bring the ledgers in line).
    """
    ids = sorted(set(units))
    spacing = every or CHECKPOINT_EVERY
    found_stored = checkpoints.stored(conn, ids)
    # Pending events matter where a checkpoint may be read or written: a customer with some
    # stored, or with as many events as a checkpoint follows (read below, once its events are).
    pending = checkpoints.pending_positions(conn, [c for c in ids if c in found_stored])
    savings: dict[Unit, Saving] = {}

    def saving(unit: Unit) -> Saving:
        ceiling = (p for p in pending.get(unit, []) if p[1] not in processing)
        return Saving(rules_version(), spacing, min(ceiling, default=None))

    starts = {} if from_start else _starts(conn, ids, pending, found_stored)
    savings.update((c, saving(c)) for c in starts)
    found = _resumed(conn, starts, refs, parsed, savings)
    rest = [c for c in ids if c not in found]
    events = inbox.customer_events(conn, rest, parsed)
    long = [c for c in rest if c not in found_stored and len(events.get(c, [])) >= spacing]
    pending.update(checkpoints.pending_positions(conn, long) if long else {})
    for c in rest:
        savings[c] = saving(c)
        replay = replay_customer(c.customer_id, events.get(c, []), refs, savings[c])
        found[c] = Recomputed(c, replay, None, 0)
    if keep:
        _keep(conn, found, found_stored, savings)
    return found


def rebuild(
    conn: Connection, unit: Unit, refs: References, *, every: int | None = None
) -> tuple[int, bool]:
    """Replace the customer's checkpoints with those of a replay from its first event; how many
    there are now, and whether its ledger in effect is what the rules want.

    The ledger is not touched. Where it differs (events not processed yet), no checkpoint is
    left at or after the first event the difference comes from.
    """
    store.lock_customers(conn, [unit.customer_id])
    replay = recompute(conn, [unit], refs, every=every, from_start=True, keep=False)[unit].replay
    wanted = Counter(e.key() for e in replay.entries)
    have = Counter(e.key() for e in store.in_effect_of(conn, [unit]).get(unit, []))
    differing = {key[0] for key in (wanted - have) + (have - wanted)}  # their source events
    positions = checkpoints.positions_of(conn, sorted(differing))
    cut = min((positions.get(i, (-(2**63), "")) for i in differing), default=None)
    kept = [c for c in replay.checkpoints if cut is None or c.position < cut]
    checkpoints.clear(conn, [unit])
    checkpoints.save(conn, unit, kept)
    return len(kept), not differing


def _starts(
    conn: Connection,
    ids: Sequence[Unit],
    pending: Mapping[Unit, list[Position]],
    found_stored: Mapping[Unit, list[Stored]],
) -> dict[Unit, tuple[ReplayState, Position]]:
    """Each customer's newest usable checkpoint before its first pending event: its state,
    and where it is."""
    chosen: dict[Unit, Stored] = {}
    for unit in ids:
        bound = min(pending.get(unit, []), default=None)
        stored = found_stored.get(unit, [])
        before = [s for s in stored if bound is None or s.position < bound]
        if before:
            chosen[unit] = before[-1]
    starts: dict[Unit, tuple[ReplayState, Position]] = {}
    version = rules_version()
    texts = checkpoints.states(conn, {c: s.events for c, s in chosen.items()})
    for unit, text in texts.items():
        expected = chosen[unit]
        try:
            state = unseal(text, version, unit.customer_id)
            if (state.events, state.position) != (expected.events, expected.position):
                raise UnusableCheckpoint("its state is not the one its row names")
        except UnusableCheckpoint as problem:
            log.warning(
                "replay checkpoint of %s after %d events ignored (%s); replaying from the start",
                unit.customer_id,
                expected.events,
                problem,
            )
            continue
        starts[unit] = (state, expected.position)
    return starts


def _resumed(
    conn: Connection,
    starts: Mapping[Unit, tuple[ReplayState, Position]],
    refs: References,
    parsed: Mapping[str, EventRecord] | None,
    savings: Mapping[Unit, Saving],
) -> dict[Unit, Recomputed]:
    after = checkpoints.events_after(conn, {c: at for c, (_, at) in starts.items()}, parsed)
    replays: dict[Unit, tuple[Replay, int]] = {}
    for unit, (state, _) in starts.items():
        resumed_after = state.events
        replay = resume_customer(state, after[unit].events, refs, savings[unit])
        if replay is None:
            log.info(
                "reference terms used before %s's checkpoint changed; replaying from the start",
                unit.customer_id,
            )
            continue
        replays[unit] = (replay, resumed_after)
    return {
        c: Recomputed(c, replay, after[c].sources, resumed_after)
        for c, (replay, resumed_after) in replays.items()
    }


def _keep(
    conn: Connection,
    found: Mapping[Unit, Recomputed],
    found_stored: Mapping[Unit, list[Stored]],
    savings: Mapping[Unit, Saving],
) -> None:
    """Store the replays' checkpoints, remove the ones they replace, and thin out the rest."""
    gone: list[tuple[Unit, int]] = []
    for unit, recomputed in found.items():
        kept = []
        for old in found_stored.get(unit, []):
            if old.events > recomputed.resumed_after:
                gone.append((unit, old.events))
            else:
                kept.append(old.events)
        new = [c.events for c in recomputed.replay.checkpoints]
        newest = max(kept + new, default=0)
        saving = savings[unit]
        gone += [(unit, n) for n in kept if not saving.keeps(n, newest)]
    checkpoints.discard(conn, gone)
    for unit, recomputed in found.items():
        checkpoints.save(conn, unit, recomputed.replay.checkpoints)
