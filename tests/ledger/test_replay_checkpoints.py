"""Replay checkpoints through the real store: what a worker writes resuming from a checkpoint
is, row for row, what it writes replaying every event of the customer from nothing."""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from contextlib import ExitStack, contextmanager
from typing import Any

import pytest
from click.testing import CliRunner
from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy import Engine, select, update

from ledger.processing import process_batch, process_inbox_row
from ledger.processing.replays import rules_version
from ledger.rules.entries import DesiredEntry
from ledger.rules.sources import Unit
from ledger.rules.state_codec import seal, unseal
from ledger.storage import inbox, store
from ledger.storage import replay_checkpoints as checkpoints
from ledger.storage.db import make_engine
from ledger.storage.schema import inbox as inbox_table
from ledger.storage.schema import replay_checkpoints as checkpoint_table
from scripts.cli import main
from tests.ledger.test_order_free import DB_PROPERTY, deliver, rich_histories
from tests.rules import builders as b
from tests.support.arrivals import DAY, T0, Event, histories
from tests.support.databases import Templates
from tests.support.ledger import all_entries
from tests.support.pipeline import subscription_event

Row = tuple[Any, ...]

CUS_1 = Unit("cus_1", "", False)


def ledger_rows(engine: Engine) -> list[Row]:
    """Every ledger row, reversals included, as stored (but the time it was recorded)."""
    with engine.connect() as conn:
        return [
            (e.id, e.customer_id, e.subscription_id, e.category, e.currency, e.amount,
             e.effective_at, e.source_event_id, e.cause_event_id, e.reversal_of, e.explanation)
            for e in all_entries(conn)
        ]  # fmt: skip


@contextmanager
def database(templates: Templates, backend: str) -> Iterator[Engine]:
    with ExitStack() as stack:
        url = (
            templates.sqlite_copy()
            if backend == "sqlite"
            else stack.enter_context(templates.pg_copy())
        )
        engine = make_engine(url)
        stack.callback(engine.dispose)
        yield engine


def stored_ids(engine: Engine, bodies: Sequence[Event]) -> list[int]:
    with engine.begin() as conn:
        return [s.inbox_id for s in inbox.store_events(conn, [(inbox.dumps(b), b) for b in bodies])]


class Twin:
    """Two databases fed the same events in the same steps. `resumed` keeps its checkpoints;
    `whole` drops them before every step, so each of its replays starts from nothing."""

    def __init__(self, resumed: Engine, whole: Engine, every: int) -> None:
        self.resumed, self.whole, self.every = resumed, whole, every

    def step(self, bodies: Sequence[Event]) -> None:
        """One event as its webhook, or several as a backfill batch."""
        with self.whole.begin() as conn:
            checkpoints.clear(conn)
        for engine in (self.resumed, self.whole):
            ids = stored_ids(engine, bodies)
            if len(ids) == 1:
                process_inbox_row(engine, ids[0], max_attempts=1, checkpoint_every=self.every)
            else:
                process_batch(engine, ids, max_attempts=1, checkpoint_every=self.every)
        assert ledger_rows(self.resumed) == ledger_rows(self.whole)


@contextmanager
def twin(templates: Templates, backend: str, every: int) -> Iterator[Twin]:
    with database(templates, backend) as resumed, database(templates, backend) as whole:
        yield Twin(resumed, whole, every)


@st.composite
def late_deliveries(draw: st.DrawFn) -> list[list[Event]]:
    """A history delivered in order but for some events held back and sent late, in any
    order, then a few again; now and then several at once, as a backfill stores them."""
    events = draw(st.one_of(histories(), rich_histories()))
    ordered = sorted(events, key=lambda e: (e["created"], e["id"]))
    late = draw(st.sets(st.sampled_from(range(len(ordered))))) if ordered else set()
    sent = [e for i, e in enumerate(ordered) if i not in late]
    sent += draw(st.permutations([ordered[i] for i in sorted(late)]))
    sent += draw(st.lists(st.sampled_from(ordered), max_size=3)) if ordered else []
    steps: list[list[Event]] = []
    while sent:
        size = draw(st.sampled_from([1, 1, 1, 3]))
        steps.append(sent[:size])
        sent = sent[size:]
    return steps


@DB_PROPERTY
@given(late_deliveries(), st.integers(1, 3), st.sampled_from(["sqlite", "postgresql"]))
def test_late_and_early_events_around_checkpoints_give_what_a_replay_from_nothing_gives(
    templates: Templates, steps: list[list[Event]], every: int, backend: str
) -> None:
    with twin(templates, backend, every) as both:
        for step in steps:
            both.step(step)
        with both.resumed.connect() as conn:
            assert set(inbox.status_counts(conn)) <= {"processed"}


# --- a reference stored later ---------------------------------------------------------------


def test_a_reference_stored_later_reprices_the_events_before_a_checkpoint(
    templates: Templates,
) -> None:
    """cus_1's subscription names discount di_x by id only: unknown, it counts in full. Later
    another event carries di_x and its coupon; cus_1 depends on it and is replayed again, from
    the start, since its checkpoints priced its events without it."""
    created = b.subscription_event(
        "created", "sub_1", "cus_1", T0, discounts=["di_x"], event_id="evt_1"
    )
    grown = [
        b.subscription_event("updated", "sub_1", "cus_1", T0 + n * DAY, discounts=["di_x"],
                             items=[(10_000, "month", 1, n + 1)], event_id=f"evt_{n + 1}")
        for n in range(1, 4)
    ]  # fmt: skip
    coupon = b.coupon_event("created", "co_q", T0 + 10 * DAY, event_id="evt_co", percent_off=20)
    other = b.subscription_event(
        "created", "sub_9", "cus_9", T0 + 11 * DAY, event_id="evt_9",
        discounts=[b.discount_object("di_x", "cus_1", "co_q", subscription="sub_1")],
    )  # fmt: skip
    for backend in ("sqlite", "postgresql"):
        with twin(templates, backend, every=1) as both:
            for body in [created, *grown, coupon, other]:
                both.step([body])
            with both.resumed.connect() as conn:
                cus_1 = sum(e.amount for e in store.in_effect(conn, ["cus_1"]))
            assert cus_1 == 32_000  # 4 seats x 10,000, 20% off


# --- resuming reads only what follows the checkpoint ------------------------------------------


def customer_history(count: int, start: int = T0) -> list[Event]:
    return [
        subscription_event(
            f"evt_{n:03d}", "customer.subscription.updated" if n else
            "customer.subscription.created", start + n * DAY, amount=1_000 * (n % 5 + 1),
        )
        for n in range(count)
    ]  # fmt: skip


def test_a_new_event_reads_only_the_events_after_the_checkpoint(
    engine: Engine, templates: Templates
) -> None:
    """The first events' payloads are made unreadable once processed: a new event that sorts
    after the checkpoint never reads them."""
    events = customer_history(9)
    deliver(engine, events[:8], checkpoint_every=2)
    with engine.begin() as conn:
        conn.execute(
            update(inbox_table)
            .where(inbox_table.c.event_id.in_([e["id"] for e in events[:6]]))
            .values(payload="{not json")
        )
    deliver(engine, events[8:], checkpoint_every=2)
    control = make_engine(templates.sqlite_copy())
    deliver(control, events, checkpoint_every=2)
    assert ledger_rows(engine) == ledger_rows(control)
    with engine.connect() as conn:
        assert inbox.status_counts(conn) == {"processed": 9}


def test_no_checkpoint_is_left_after_a_pending_event(engine: Engine, templates: Templates) -> None:
    """An event stored but not processed yet is in every replay of its customer, but no
    checkpoint is left after it until it is processed: it may end up failed instead."""
    events = customer_history(8)
    early = events.pop(2)
    [early_id] = stored_ids(engine, [early])
    deliver(engine, events, checkpoint_every=1)
    with engine.connect() as conn:
        positions = [s.position for s in checkpoints.stored(conn, [CUS_1])[CUS_1]]
    assert positions and max(positions) < (early["created"], early["id"])
    process_inbox_row(engine, early_id, max_attempts=1, checkpoint_every=1)
    with engine.connect() as conn:
        newest = checkpoints.stored(conn, [CUS_1])[CUS_1][-1]
    assert newest.events == 8 and newest.position == (events[-1]["created"], events[-1]["id"])
    control = make_engine(templates.sqlite_copy())
    deliver(control, sorted([*events, early], key=lambda e: e["created"]), checkpoint_every=1)
    with engine.connect() as mine, control.connect() as theirs:
        assert sorted(e.key() for e in store.in_effect(mine)) == sorted(
            e.key() for e in store.in_effect(theirs)
        )


# --- corrupt, stale or misplaced checkpoints are ignored -------------------------------------


def _corrupt(text: str, _: str) -> str:
    return text.replace('"active"', '"actlve"', 1)


def _stale(text: str, _: str) -> str:
    return seal(unseal(text, rules_version(), "cus_1"), "rules-of-last-year")


def _misplaced(_: str, other: str) -> str:
    return other


@pytest.mark.parametrize(
    ("spoil", "reason"),
    [
        (_corrupt, "the body does not match its checksum"),
        (_stale, "computed under rules 'rules-of-last-year'"),
        (_misplaced, "its state is not the one its row names"),
    ],
)
def test_a_corrupt_stale_or_misplaced_checkpoint_is_ignored_and_replaced(
    engine: Engine, templates: Templates, caplog: pytest.LogCaptureFixture, spoil: Any, reason: str
) -> None:
    events = customer_history(7)
    deliver(engine, events[:6], checkpoint_every=2)
    table = checkpoint_table
    with engine.begin() as conn:
        found = dict(conn.execute(select(table.c.events, table.c.state)).all())
        assert sorted(found) == [2, 4, 6]
        conn.execute(
            update(table).where(table.c.events == 6).values(state=spoil(found[6], found[4]))
        )
    with caplog.at_level(logging.WARNING, logger="ledger.processing.replays"):
        deliver(engine, events[6:], checkpoint_every=2)
    assert f"replay checkpoint of cus_1 after 6 events ignored ({reason})" in caplog.text
    control = make_engine(templates.sqlite_copy())
    deliver(control, events, checkpoint_every=2)
    assert ledger_rows(engine) == ledger_rows(control)
    with engine.connect() as conn:
        for events_before, text in conn.execute(select(table.c.events, table.c.state)):
            assert unseal(text, rules_version(), "cus_1").events == events_before


# --- the table is a cache --------------------------------------------------------------------


def test_dropping_the_checkpoints_changes_no_number_and_mrr_replay_rebuilds_them(
    db_url: str, engine: Engine, templates: Templates
) -> None:
    events = customer_history(30) + [
        subscription_event(f"evt_b{n}", "customer.subscription.created", T0 + n * DAY,
                           customer="cus_2", sub_id="sub_2", amount=700 * n)
        for n in range(1, 3)
    ]  # fmt: skip
    control_url = templates.sqlite_copy()
    control = make_engine(control_url)
    deliver(control, events, checkpoint_every=4)
    deliver(engine, events[:20], checkpoint_every=4)
    with engine.begin() as conn:
        assert checkpoints.clear(conn) > 0
    deliver(engine, events[20:], checkpoint_every=4)
    assert ledger_rows(engine) == ledger_rows(control)

    runner = CliRunner()
    env = {"DATABASE_URL": db_url, "MRR_CHECKPOINT_EVERY": "4"}
    before = ledger_rows(engine)
    rebuilt = runner.invoke(main, ["replay", "--customers"], env=env)
    assert rebuilt.exit_code == 0, rebuilt.output
    assert "rebuilt 5 replay checkpoints for 2 customers" in rebuilt.output
    assert ledger_rows(engine) == before
    with engine.connect() as conn:
        kept = checkpoints.stored(conn, [CUS_1, Unit("cus_2", "", False)])
    assert [s.events for s in kept[CUS_1]] == [8, 16, 20, 24, 28] and Unit(
        "cus_2", "", False
    ) not in kept

    report = ["report", "--from", "2026-01", "--to", "2026-03", "--format", "json"]
    mine = runner.invoke(main, report, env=env)
    theirs = runner.invoke(main, report, env={"DATABASE_URL": control_url})
    assert mine.exit_code == 0 and mine.output == theirs.output


def test_mrr_replay_leaves_no_checkpoint_after_where_the_ledger_differs(
    db_url: str, engine: Engine, templates: Templates
) -> None:
    """As if an older version of the rules had left event 10's entries out: the rebuilt
    checkpoints stop before it, so the next event replays from there and puts them back."""
    events = customer_history(24)
    deliver(engine, events[:20], checkpoint_every=4)
    with engine.begin() as conn:
        kept = [
            DesiredEntry(e.customer_id, e.subscription_id, e.category, e.currency, e.amount,
                         e.effective_at, e.source_event_id, e.explanation)
            for e in store.in_effect(conn, ["cus_1"]) if e.source_event_id != events[10]["id"]
        ]  # fmt: skip
        assert store.apply(
            conn, [store.DesiredLedger(Unit("cus_1", "", False), kept, "evt_by_hand")]
        ).reversed
    env = {"DATABASE_URL": db_url, "MRR_CHECKPOINT_EVERY": "4"}
    rebuilt = CliRunner().invoke(main, ["replay", "--customers"], env=env)
    assert rebuilt.exit_code == 0, rebuilt.output
    assert "1 customers' ledgers differ from what the rules want" in rebuilt.output
    with engine.connect() as conn:
        positions = [s.position for s in checkpoints.stored(conn, [CUS_1])[CUS_1]]
    assert positions and max(positions) < (events[10]["created"], events[10]["id"])
    deliver(engine, events[20:], checkpoint_every=4)
    control = make_engine(templates.sqlite_copy())
    deliver(control, events, checkpoint_every=4)
    with engine.connect() as mine, control.connect() as theirs:
        assert sorted(e.key() for e in store.in_effect(mine)) == sorted(
            e.key() for e in store.in_effect(theirs)
        )
