"""Garbage never becomes a ledger entry (docs/mrr-rules.md §10), on both databases: payloads
mutated field by field either fail with a reason naming the field or give entries whose
balances hold; a breach of the invariants fails its event as a bug; failed rows keep short
reasons."""

from __future__ import annotations

import copy
import logging
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import replace
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import Engine

import ledger.processing.replays
from ledger.processing import process_batch, process_inbox_row
from ledger.rules.entries import active_effect, delinquent_effect
from ledger.rules.payloads import INT64_MAX
from ledger.rules.timeline import Replay, replay_customer
from ledger.storage import inbox, store
from tests.rules import builders as b
from tests.rules.test_invariants import negative_metered_history
from tests.support.ledger import all_entries

T0 = 1_767_225_600
Body = dict[str, Any]
Path = tuple[str | int, ...]
TIERS: list[Body] = [
    {"up_to": 10, "unit_amount": 1000, "flat_amount": 500},
    {"up_to": None, "unit_amount": 800},
]


def store_and_process(engine: Engine, bodies: list[Body]) -> list[int]:
    """The events stored, then processed as the worker does: in one batch, and none retried."""
    with engine.begin() as conn:
        ids = [s.inbox_id for s in inbox.store_events(conn, [(inbox.dumps(b), b) for b in bodies])]
    assert process_batch(engine, ids, max_attempts=2).retry == []
    return ids


def test_a_breach_of_the_invariants_fails_its_event_as_a_bug_and_appends_nothing(
    engine: Engine, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="ledger.processing.apply"):
        first, second = store_and_process(engine, negative_metered_history())
    with engine.connect() as conn:
        rows = [inbox.get(conn, first), inbox.get(conn, second)]
        entries = all_entries(conn)
    assert [r.status if r else None for r in rows] == ["processed", "failed"]
    failed = rows[1]
    assert failed is not None and failed.attempts == 0
    assert (failed.error or "").startswith("MRR rules bug, nothing appended: contraction -700")
    assert entries == []  # the metered item had no MRR before its (negative) line
    bugs = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert [r.getMessage() for r in bugs] == [
        f"inbox event evt_2: MRR rules bug: {(failed.error or '').split(': ', 1)[1]}"
    ]


def test_a_database_error_keeps_a_short_reason_and_the_statement_goes_to_the_log(
    engine: Engine, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """As if an amount got past every check: the database itself refuses the INSERT."""

    def overflowing(*args: Any, **kwargs: Any) -> Replay:
        found = replay_customer(*args, **kwargs)
        return replace(found, entries=[replace(e, amount=10**30) for e in found.entries])

    monkeypatch.setattr(ledger.processing.replays, "replay_customer", overflowing)
    body = b.subscription_event("created", "sub_1", "cus_1", T0, event_id="evt_1")
    with engine.begin() as conn:
        (stored,) = inbox.store_events(conn, [(inbox.dumps(body), body)])
        inbox_id = stored.inbox_id
    with caplog.at_level(logging.WARNING, logger="ledger.processing.apply"):
        outcome = process_inbox_row(engine, inbox_id, max_attempts=1)
    with engine.connect() as conn:
        row = inbox.get(conn, inbox_id)
        assert all_entries(conn) == []
    assert outcome.status == "failed" and row is not None and row.status == "failed"
    expected = {
        "sqlite": "OverflowError: Python int too large to convert to SQLite INTEGER",
        "postgresql": "NumericValueOutOfRange: bigint out of range",
    }
    assert row.error == expected[engine.dialect.name]
    assert "Traceback" in caplog.text
    if engine.dialect.name == "postgresql":  # SQLite's driver fails before it has a statement
        assert "INSERT INTO ledger_entries" in caplog.text


# --- payloads mutated field by field ------------------------------------------------------


def history(tag: str, shape: b.Shape) -> list[Body]:
    """A valid customer: a coupon, its discount, a subscription with a per-unit, a tiered and a
    metered item, an invoice for the metered usage, and an upgrade."""
    cus, sub, meter_id = f"cus_{tag}", f"sub_{tag}", f"si_meter_{tag}"
    coupon = b.coupon_object(f"co_{tag}", percent_off=20)
    discount = b.discount_object(f"di_{tag}", cus, coupon, subscription=sub, shape=shape)
    seats = b.price(
        None, "year", price_id=f"price_seats_{tag}", tiers=TIERS, tiers_mode="graduated"
    )
    meter = b.price(None, usage_type="metered", price_id=f"price_meter_{tag}")
    meter["unit_amount_decimal"] = "0.5"

    def items(seat_count: int) -> list[b.ItemSpec]:
        return [
            (5000, "month", 1, 3),
            {"price": seats, "quantity": seat_count, "id": f"si_seats_{tag}"},
            {"price": meter, "id": meter_id},
        ]

    own = {"discount": discount} if shape == "old" else {"discounts": [f"di_{tag}"]}
    line = b.invoice_line(sub, 700, item_id=meter_id, price_id=meter["id"], shape=shape)
    return [
        b.coupon_event("created", coupon, T0, event_id=f"evt_{tag}_1", shape=shape),
        b.event("customer.discount.created", discount, T0 + 1, event_id=f"evt_{tag}_2",
                shape=shape),
        b.subscription_event("created", sub, cus, T0 + 2, items=items(12), shape=shape,
                             event_id=f"evt_{tag}_3", **own),
        b.invoice_event("paid", f"in_{tag}", cus, sub, T0 + 3, lines=[line], shape=shape,
                        event_id=f"evt_{tag}_4"),
        b.subscription_event("updated", sub, cus, T0 + 4, items=items(20), shape=shape,
                             event_id=f"evt_{tag}_5", **own),
    ]  # fmt: skip


def paths(value: Any, prefix: Path = ()) -> Iterator[Path]:
    """Every field and list element under an object, containers included."""
    children: Any = value.items() if isinstance(value, dict) else enumerate(value)
    for key, child in children:
        yield (*prefix, key)
        if isinstance(child, dict | list):
            yield from paths(child, (*prefix, key))


# What the MRR arithmetic reads (docs/mrr-rules.md §10); other fields are mutated less often.
ARITHMETIC = frozenset(
    {"quantity", "unit_amount", "unit_amount_decimal", "flat_amount", "flat_amount_decimal",
     "up_to", "tiers", "tiers_mode", "billing_scheme", "interval", "interval_count",
     "usage_type", "percent_off", "amount_off", "currency", "amount", "amount_paid", "items",
     "data", "price", "recurring"}
)  # fmt: skip
MISSING = object()
VALUES: list[Any] = [
    -5, -(2**63) - 1, 0, 2**63 - 1, 2**63, 10**30, 2.5, float("inf"), "lots", "-1", "",
    True, [1], {"x": 1}, None, MISSING,
]  # fmt: skip


def value_at(obj: Any, path: Path) -> Any:
    for key in path:
        obj = obj[key]
    return obj


def mutate(body: Body, path: Path, value: Any) -> Body:
    changed = copy.deepcopy(body)
    target = value_at(changed["data"]["object"], path[:-1])
    if value is MISSING:
        del target[path[-1]]
    else:
        target[path[-1]] = value
    return changed


def names_the_field(reason: str, path: Path, original: Any) -> bool:
    """The reason names the mutated field, its container (`items` for `items.data`) or, for
    an object replaced by another, a field the original held (`interval` of `recurring`)."""
    named = [key for key in path if isinstance(key, str)][-2:]
    if isinstance(original, dict):
        named += list(original)
    return any(f"{key} " in reason for key in named) or "64-bit range" in reason


def assert_balances_hold(engine: Engine) -> None:
    """Every subscription's and every customer's active and delinquent MRR, per currency."""
    totals: dict[tuple[str, ...], list[int]] = defaultdict(lambda: [0, 0])
    with engine.connect() as conn:
        entries = store.in_effect(conn)
    for e in entries:
        assert -INT64_MAX - 1 <= e.amount <= INT64_MAX
        for holder in ((e.customer_id, e.subscription_id), (e.customer_id, e.currency)):
            totals[holder][0] += active_effect(e.category, e.amount)
            totals[holder][1] += delinquent_effect(e.category, e.amount)
    assert all(0 <= figure <= INT64_MAX for pair in totals.values() for figure in pair), totals


MUTATIONS = settings(
    max_examples=30,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
examples = iter(range(10**9))


@MUTATIONS
@given(shape=st.sampled_from(["old", "new"]), data=st.data())
def test_a_mutated_field_fails_naming_it_or_gives_entries_whose_balances_hold(
    engine: Engine, shape: b.Shape, data: st.DataObject
) -> None:
    tag = f"m{next(examples)}"
    bodies = history(tag, shape)
    index = data.draw(st.integers(0, len(bodies) - 1), label="event")
    every = list(paths(bodies[index]["data"]["object"]))
    read = [p for p in every if p[-1] in ARITHMETIC] or every
    path = data.draw(st.sampled_from(read) | st.sampled_from(every), label="field")
    value = data.draw(st.sampled_from(VALUES), label="value")
    original = value_at(bodies[index]["data"]["object"], path)
    bodies[index] = mutate(bodies[index], path, value)

    ids = store_and_process(engine, bodies)
    with engine.connect() as conn:
        rows = [inbox.get(conn, inbox_id) for inbox_id in ids]
        failed = {r.event_id for r in rows if r is not None and r.status == "failed"}
        sources = {e.source_event_id for e in store.in_effect(conn)}
    for row in rows:
        assert row is not None and row.status in ("processed", "ignored", "failed")
        if row.status == "failed":
            assert row.attempts == 0, row.error
            assert names_the_field(row.error or "", path, original), (path, value, row.error)
    assert not sources & failed  # a failed event is the source of no entry
    assert_balances_hold(engine)
