"""The ledger's hash chain: written by the database on insert, rechecked by `mrr verify`."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime

import pytest
from click.testing import CliRunner
from sqlalchemy import Connection, Engine, select, text
from sqlalchemy.exc import DBAPIError

from ledger.rules.entries import Category, DesiredEntry
from ledger.rules.sources import Unit
from ledger.storage import chain, migrate, store
from ledger.storage.db import make_engine
from ledger.storage.schema import ledger_chain, ledger_entries
from scripts.cli import main
from tests.support.databases import _admin_execute, pg_url

T0 = datetime(2026, 1, 15, tzinfo=UTC)


def entry(customer: str, amount: int, event: str = "evt_1") -> DesiredEntry:
    return DesiredEntry(customer, "sub_1", Category.NEW, "usd", amount, T0, event, {"why": "t|x"})


def fill(engine: Engine) -> None:
    """Entries, a reversal and a replacement, with non-ASCII and '|' in the content. Compared
    by source event (`sources`), which reads no inbox column: it runs on the first revision."""
    first, both = ["evt_1"], ["evt_1", "evt_2"]
    cus_1, cus_2 = Unit("cus_ü|1", "", False), Unit("cus_2", "", False)
    with engine.begin() as conn:
        store.apply(conn, [store.DesiredLedger(cus_1, [entry("cus_ü|1", 5000)], "evt_1", first)])
        store.apply(conn, [store.DesiredLedger(cus_2, [entry("cus_2", 700)], "evt_1", first)])
    with engine.begin() as conn:
        replaced = [entry("cus_ü|1", 7000, "evt_2")]
        store.apply(conn, [store.DesiredLedger(cus_1, replaced, "evt_2", both)])


def verdict(engine: Engine) -> chain.Verdict:
    with engine.connect() as conn:
        return chain.verify(conn)


@contextmanager
def behind_the_triggers(engine: Engine) -> Iterator[Connection]:
    """A connection as the database owner with every user trigger out of the way."""
    with engine.begin() as conn:
        if conn.dialect.name == "postgresql":
            conn.execute(text("SET LOCAL session_replication_role = replica"))
            yield conn
            return
        triggers = conn.execute(
            text("SELECT name, sql FROM sqlite_master WHERE type = 'trigger'")
        ).all()
        for name, _ in triggers:
            conn.execute(text(f'DROP TRIGGER "{name}"'))
        yield conn
        for _, sql in triggers:
            conn.execute(text(sql))


def test_the_canonical_text_is_length_prefixed_fields_after_the_previous_hash() -> None:
    row = {
        "id": 7,
        "customer_id": "cus_ü",
        "subscription_id": "sub|1",
        "category": "new",
        "currency": "usd",
        "amount": -5000,
        "effective_at": T0,
        "recorded_at": datetime(2026, 1, 15, 12, 30, 1, 250, tzinfo=UTC),
        "source_event_id": "evt_1",
        "cause_event_id": "evt_2",
        "reversal_of": None,
        "explanation": '{"a": 1}',
    }
    assert chain.canonical(chain.GENESIS, row) == (
        f"{chain.GENESIS}|1:7|5:cus_ü|5:sub|1|3:new|3:usd|5:-5000"
        "|27:2026-01-15T00:00:00.000000Z|27:2026-01-15T12:30:01.000250Z"
        '|5:evt_1|5:evt_2|0:|8:{"a": 1}'
    )
    moved = row | {"customer_id": "cus_ü|5:sub", "subscription_id": "1"}
    assert chain.row_hash(chain.GENESIS, moved) != chain.row_hash(chain.GENESIS, row)


def test_every_inserted_row_is_chained_by_the_database(engine: Engine) -> None:
    fill(engine)
    with engine.connect() as conn:
        links = conn.execute(select(ledger_chain).order_by(ledger_chain.c.seq)).all()
        rows = {r.id: r._mapping for r in conn.execute(select(ledger_entries))}
    assert [link.seq for link in links] == [1, 2, 3, 4]
    assert sorted(link.entry_id for link in links) == sorted(rows)
    previous = chain.GENESIS
    for link in links:
        assert link.prev_hash == previous
        assert link.row_hash == chain.row_hash(previous, rows[link.entry_id])
        previous = link.row_hash
    found = verdict(engine)
    assert found.ok and found.verified == 4 and found.head == previous


def test_the_chain_itself_is_append_only(engine: Engine) -> None:
    fill(engine)
    statements = ["UPDATE ledger_chain SET row_hash = prev_hash", "DELETE FROM ledger_chain"]
    if engine.dialect.name == "postgresql":
        statements.append("TRUNCATE ledger_chain")
    for statement in statements:
        with pytest.raises(DBAPIError, match="append-only"), engine.begin() as conn:
            conn.execute(text(statement))
    assert verdict(engine).verified == 4


def test_a_row_edited_behind_the_triggers_back_is_named(engine: Engine, db_url: str) -> None:
    fill(engine)
    runner = CliRunner()
    before = runner.invoke(main, ["verify"], env={"DATABASE_URL": db_url})
    assert before.exit_code == 0 and before.output.startswith("ok: 4 rows verified")

    with engine.connect() as conn:
        victim = conn.execute(
            select(ledger_entries.c.id).where(ledger_entries.c.customer_id == "cus_2")
        ).scalar_one()
    with behind_the_triggers(engine) as conn:
        conn.execute(text("UPDATE ledger_entries SET amount = 70 WHERE id = :id"), {"id": victim})
    with pytest.raises(DBAPIError), engine.begin() as conn:  # the triggers are back
        conn.execute(text("UPDATE ledger_entries SET amount = 700 WHERE id = :id"), {"id": victim})

    found = verdict(engine)
    assert found.problem is not None
    assert found.problem.entry_id == victim
    assert found.problem.kind is chain.ProblemKind.CONTENT_CHANGED
    after = runner.invoke(main, ["verify"], env={"DATABASE_URL": db_url})
    assert after.exit_code == 1
    assert f"MISMATCH at ledger entry {victim} " in after.output
    assert "content changed" in after.output


def test_a_rewritten_link_breaks_the_chain_at_the_next_row(engine: Engine) -> None:
    fill(engine)
    with behind_the_triggers(engine) as conn:
        conn.execute(text("UPDATE ledger_chain SET prev_hash = :h WHERE seq = 2"), {"h": "f" * 64})
    found = verdict(engine)
    assert found.problem is not None
    assert (found.problem.kind, found.problem.seq) == (chain.ProblemKind.CHAIN_BROKEN, 2)


def test_a_row_slipped_in_without_the_triggers_is_reported(engine: Engine) -> None:
    fill(engine)
    with behind_the_triggers(engine) as conn:
        store.apply(
            conn, [store.DesiredLedger(Unit("cus_3", "", False), [entry("cus_3", 900)], "evt_9")]
        )
        slipped = conn.execute(
            select(ledger_entries.c.id).where(ledger_entries.c.customer_id == "cus_3")
        ).scalar_one()
    found = verdict(engine)
    assert found.problem is not None
    assert (found.problem.kind, found.problem.entry_id) == (chain.ProblemKind.UNCHAINED, slipped)


def test_the_migration_chains_rows_written_before_it(tmp_path: object) -> None:
    urls = [f"sqlite:///{tmp_path}/old.sqlite3"]
    name = f"mrr_t_{uuid.uuid4().hex[:12]}"
    _admin_execute(f'CREATE DATABASE "{name}"')
    urls.append(pg_url(name))
    try:
        for url in urls:
            migrate.upgrade(url, "0001")
            engine = make_engine(url)
            fill(engine)
            migrate.upgrade(url)
            found = verdict(engine)
            with engine.begin() as conn:
                store.apply(
                    conn,
                    [store.DesiredLedger(Unit("cus_4", "", False), [entry("cus_4", 100)], "evt_4")],
                )
            assert found.ok and found.verified == 4
            assert verdict(engine).verified == 5
            engine.dispose()
    finally:
        _admin_execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def test_concurrent_writers_on_postgresql_never_fork_the_chain(engine: Engine) -> None:
    if engine.dialect.name != "postgresql":
        pytest.skip("SQLite writers are serialized by BEGIN IMMEDIATE; nothing runs at once")
    errors: list[BaseException] = []
    start = threading.Barrier(6)

    def writer(n: int) -> None:
        try:
            start.wait()
            for k in range(8):
                customer = f"cus_{n}_{k}"
                with engine.begin() as conn:
                    store.lock_customers(conn, [customer])
                    store.apply(
                        conn,
                        [
                            store.DesiredLedger(
                                Unit(customer, "", False),
                                [entry(customer, 100 + k), entry(customer, 5)],
                                "e",
                            )
                        ],
                    )
        except BaseException as problem:
            errors.append(problem)

    threads = [threading.Thread(target=writer, args=(n,)) for n in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    with engine.connect() as conn:
        links = conn.execute(select(ledger_chain)).all()
    assert len(links) == 6 * 8 * 2
    assert len({link.prev_hash for link in links}) == len(links)
    assert sorted(link.seq for link in links) == list(range(1, len(links) + 1))
    found = verdict(engine)
    assert found.ok and found.verified == len(links)
