"""Migration 0018 on a database holding segment rows not keyed by source, SQLite and PostgreSQL:
the three tables made again keyed by source, the customer totals' checkpoint reset so they
rebuild on their own, `mrr replay` asked for on stderr, and back down to 0017."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from alembic import command
from sqlalchemy import inspect, text

from ledger.storage import migrate
from ledger.storage.db import make_engine
from tests.support.databases import database_at

BEFORE = "0017"
MOVEMENTS = "new, reactivation, expansion, contraction, churn, delinquent, recovered, " \
    "delinquent_churn, delinquent_change"  # fmt: skip


@pytest.fixture(params=["sqlite", "postgresql"])
def old_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    with database_at(request.param, BEFORE, tmp_path) as url:
        yield url


def _keys(url: str) -> dict[str, list[str]]:
    found = inspect(make_engine(url))
    return {
        table: found.get_pk_constraint(table)["constrained_columns"]
        for table in ("customer_months", "segment_month_totals", "cohort_month_changes")
    }


def test_the_segment_tables_are_made_again_keyed_by_source(
    old_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    engine = make_engine(old_url)
    with engine.begin() as conn:
        for dimension, segment in (("all", "all"), ("plan", "price_a")):
            conn.execute(
                text(
                    "INSERT INTO customer_months (customer_id, dimension, segment, currency, "
                    f"month, {MOVEMENTS}, active_mrr, delinquent_mrr, customers_change, "
                    "customers_lost) VALUES ('cus_a', :d, :s, 'usd', '2026-01', "
                    "100, 0, 0, 0, 0, 0, 0, 0, 0, 100, 0, 1, 0)"
                ),
                {"d": dimension, "s": segment},
            )
        conn.execute(
            text(
                "INSERT INTO projector_checkpoints (name, last_entry_id, updated_at) "
                "VALUES ('customer_months', 7, '2026-01-31 00:00:00')"
            )
        )
    capsys.readouterr()
    migrate.upgrade(old_url)
    assert "run `mrr replay`" in capsys.readouterr().err
    keys = _keys(old_url)
    assert {"account", "livemode"} <= set(keys["customer_months"])
    assert {"account", "livemode"} <= set(keys["segment_month_totals"])
    assert {"account", "livemode"} <= set(keys["cohort_month_changes"])
    with engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM customer_months")).scalar() == 0
        checkpoint = conn.execute(
            text("SELECT last_entry_id FROM projector_checkpoints WHERE name = 'customer_months'")
        ).scalar()
    assert checkpoint == 0
    command.downgrade(migrate.alembic_config(old_url), BEFORE)
    keys = _keys(old_url)
    assert "livemode" not in keys["customer_months"]
    assert "livemode" not in keys["segment_month_totals"]
    engine.dispose()
