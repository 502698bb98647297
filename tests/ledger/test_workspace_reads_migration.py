"""Migration 0010 on a database used before it, SQLite and PostgreSQL: customer profiles filled
from the customer events already stored, and the monthly totals rebuilt with entry counts."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import delete, insert, select, text

from ledger.reporting import projector
from ledger.reporting.profiles import profiles
from ledger.rules.entries import Category, DesiredEntry
from ledger.rules.sources import Unit
from ledger.storage import migrate, store
from ledger.storage.db import make_engine
from ledger.storage.schema import projector_checkpoints
from tests.support.databases import database_at, store_before_sources
from tests.support.workspace import customer_event

BEFORE = "0014"


@pytest.fixture(params=["sqlite", "postgresql"])
def old_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """An empty database migrated to the revision before 0010."""
    with database_at(request.param, BEFORE, tmp_path) as url:
        yield url


def _updated(event_id: str, customer: str, name: str, at: int) -> dict[str, Any]:
    return {
        **customer_event(event_id, customer, name, f"{name}@example.com", at),
        "type": "customer.updated",
    }


def test_profiles_come_from_the_customer_events_stored_before(old_url: str) -> None:
    engine = make_engine(old_url)
    events = [
        _updated("evt_c2", "cus_a", "Ann Ltd", 200),
        customer_event("evt_c1", "cus_a", "Ann", "ann@example.com", 100),  # older, stored later
        customer_event("evt_c3", "cus_b", "Bea", "bea@example.com", 300),
        {**customer_event("evt_bad", "cus_c", "C", "c@example.com", 1), "data": "x"},
    ]
    with engine.begin() as conn:
        store_before_sources(conn, events)
        conn.execute(
            insert(projector_checkpoints).values(
                name="customer_profiles", last_entry_id=1, updated_at=datetime.now(UTC)
            )
        )
    migrate.upgrade(old_url)
    with engine.connect() as conn:
        assert {c: p.name for c, p in profiles(conn).items()} == {
            "cus_a": "Ann Ltd",
            "cus_b": "Bea",
        }
        names = conn.execute(select(projector_checkpoints.c.name)).scalars().all()
        assert "customer_profiles" not in names
    engine.dispose()


def test_the_totals_are_rebuilt_with_their_entry_counts(old_url: str) -> None:
    engine = make_engine(old_url)
    at = datetime(2026, 1, 10, tzinfo=UTC)
    desired = [
        DesiredEntry("cus_a", "sub_1", Category.NEW, "usd", 5000, at, "evt_1", {}),
        DesiredEntry("cus_a", "sub_1", Category.EXPANSION, "usd", 1000, at, "evt_2", {}),
    ]
    with engine.begin() as conn:
        # Compared by source event: no inbox column is read before 0015 adds `account`.
        cus_a, sources = Unit("cus_a", "", False), ["evt_1", "evt_2"]
        store.apply(conn, [store.DesiredLedger(cus_a, desired, "evt_2", sources)])
        # The projection as the code before 0010 left it: totals without counts, checkpoint 2.
        conn.execute(
            text("INSERT INTO mrr_month_totals VALUES ('usd', '2026-01', 5000, 0, 1000, "
                 "0, 0, 0, 0, 0, 0, 1, 0)")
        )  # fmt: skip
        checkpoint = projector_checkpoints.c.name == projector.CHECKPOINT
        conn.execute(delete(projector_checkpoints).where(checkpoint))
        conn.execute(
            insert(projector_checkpoints).values(
                name=projector.CHECKPOINT, last_entry_id=2, updated_at=datetime.now(UTC)
            )
        )
    migrate.upgrade(old_url)
    with engine.begin() as conn:
        assert projector.checkpoint(conn) == 0
        assert projector.catch_up(conn) == 2  # rebuilt from the start
        assert projector.entry_totals(conn, category=Category.NEW) == (1, {"usd": 5000})
        assert projector.entry_totals(conn) == (2, {"usd": 6000})
    engine.dispose()
