"""Which mode a figure is of: live by default, test only when asked or when there is no live
data at all (then said so). Figures never mix the two (ledger/rules/sources.py)."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import Connection, select, true

from ledger.reporting import projector
from ledger.rules.sources import mode_name
from ledger.storage.schema import inbox, ledger_entries

NO_LIVE_DATA = "Test-mode data: no live data yet"


@dataclass(frozen=True, slots=True)
class ModeChoice:
    livemode: bool
    fell_back: bool = False  # not asked for, and the ledger holds no live data

    @property
    def name(self) -> str:
        return mode_name(self.livemode)

    @property
    def note(self) -> str | None:
        """What a page, the CLI and the API say when test data is shown unasked."""
        return NO_LIVE_DATA if self.fell_back else None


def choose_mode(conn: Connection, asked: bool | None) -> ModeChoice:
    """`asked` if given; else live, unless the stored totals hold test figures only."""
    if asked is not None:
        return ModeChoice(asked)
    held = projector.stored_modes(conn) or _stored_event_modes(conn)
    if held and True not in held:
        return ModeChoice(False, fell_back=True)
    return ModeChoice(True)


def _stored_event_modes(conn: Connection) -> list[bool]:
    """The modes of the ledger's entries, for when the totals are not built yet (a listing
    that does not bring them up to date): an entry is live when its source event is."""
    e = ledger_entries.c
    live = conn.execute(
        select(e.id)
        .join_from(ledger_entries, inbox, inbox.c.event_id == e.source_event_id)
        .where(inbox.c.livemode.is_(true()))
        .limit(1)
    ).first()
    if live is not None:
        return [True]
    return [False] if conn.execute(select(e.id).limit(1)).first() is not None else []
