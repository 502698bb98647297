"""Replay checkpoints, pure: sealed exactly, refused when corrupt or stale, and dropped when
the reference terms they relied on now read differently."""

from __future__ import annotations

import itertools
import json
from collections.abc import Callable
from datetime import UTC, datetime
from decimal import Decimal
from hashlib import sha256
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ledger.rules.entries import Category
from ledger.rules.replay_state import ReplayState
from ledger.rules.state_codec import FORMAT, UnusableCheckpoint, seal, unseal
from ledger.rules.timeline import Replay, Saving, replay_customer, resume_customer
from tests.rules import builders as b
from tests.rules.checkpointed import VERSION, keyed, replay_checked
from tests.rules.histories import CUSTOMER, History, histories


def at(month: int, day: int) -> int:
    return int(datetime(2025, month, day, tzinfo=UTC).timestamp())


def sub(type: str, created: int, **kw: Any) -> dict[str, Any]:
    return b.subscription_event(type, "sub_1", "cus_1", created, kw.pop("status", "active"), **kw)


def states_of(events: list[dict[str, Any]], refs: b.Refs | None = None) -> list[str]:
    """The sealed checkpoint after every event."""
    replay = replay_customer(
        "cus_1", [b.record(e) for e in events], refs or b.Refs(), Saving(VERSION, 1, recent=99)
    )
    return [c.sealed for c in replay.checkpoints]


def last_state(events: list[dict[str, Any]], refs: b.Refs | None = None) -> ReplayState:
    return unseal(states_of(events, refs)[-1], VERSION, "cus_1")


# --- exact ---------------------------------------------------------------------------------


@settings(max_examples=60, deadline=None)
@given(histories(), st.integers(1, 3))
def test_every_checkpoint_reseals_to_the_same_text(h: History, spacing: int) -> None:
    events = [b.record(e) for e in h.events]
    whole = replay_checked(CUSTOMER, events, b.Refs(), spacing=spacing)
    for checkpoint in whole.checkpoints:
        assert seal(unseal(checkpoint.sealed, VERSION, CUSTOMER), VERSION) == checkpoint.sealed
        assert checkpoint.events % spacing == 0


def test_decimals_stay_exact_and_no_float_is_written() -> None:
    price = b.price("1234.5678", price_id="price_d")
    coupon = b.coupon_object("co_third", percent_off=33.3)
    discount = b.discount_object("di_1", "cus_1", coupon, subscription="sub_1", shape="old")
    events = [sub("created", at(1, 1), items=[{"price": price, "quantity": 3}], shape="old",
                  discount=discount)]  # fmt: skip
    sealed = states_of(events)[0]
    body = sealed.partition("\n")[2]
    assert "1234.5678" in body and '"33.3"' in body
    assert not any(isinstance(x, float) for x in _leaves(json.loads(body)))
    state = unseal(sealed, VERSION, "cus_1")
    snapshot = state.subs["sub_1"].snapshot
    assert snapshot is not None and snapshot.items[0].price.unit_amount == Decimal("1234.5678")
    assert snapshot.discounts[0].coupon is not None
    assert snapshot.discounts[0].coupon.percent_off == Decimal("33.3")
    assert seal(state, VERSION) == sealed


def _leaves(value: Any) -> list[Any]:
    if isinstance(value, list):
        return [leaf for item in value for leaf in _leaves(item)]
    if isinstance(value, dict):
        return [leaf for item in value.values() for leaf in _leaves(item)]
    return [value]


def test_an_ended_subscription_is_kept_as_its_id_only() -> None:
    events = [sub("created", at(1, 1)), sub("deleted", at(2, 1), status="canceled")]
    state = last_state(events)
    assert state.ended == {"sub_1"} and state.subs == {}
    # Its later events change nothing, as in the whole replay.
    later = [sub("updated", at(3, 1)), b.invoice_event("paid", "in_9", "cus_1", "sub_1", at(3, 2))]
    resumed = resume_customer(state, [b.record(e) for e in later], b.Refs())
    assert resumed is not None and resumed.entries == []
    assert resumed.closing == {"sub_1": (0, 0)}


# --- corrupt, stale or foreign: refused ----------------------------------------------------


def reseal(sealed: str, edit: Callable[[str], str]) -> str:
    """The text with its body edited and the checksum made to match again."""
    header, _, body = sealed.partition("\n")
    fields = json.loads(header)
    body = edit(body)
    fields["sha256"] = sha256(body.encode()).hexdigest()
    return f"{json.dumps(fields)}\n{body}"


FIGURES = "[10000,"  # the start of the subscription's figures: (active, delinquent, ...)


def monthly_state() -> str:
    return states_of([sub("created", at(1, 1), items=[(10_000, "month", 1, 1)])])[0]


@pytest.mark.parametrize(
    ("corrupt", "reason"),
    [
        (lambda s: s.replace("10000", "10001", 1), "checksum"),
        (lambda s: s[:-1], "checksum"),
        (lambda s: s.replace(f'"format": {FORMAT}', '"format": 99'), "format"),
        (lambda s: s.replace(VERSION, "other-rules"), "computed under rules"),
        (lambda s: s.partition("\n")[2], "header"),
        (lambda s: "", "header"),
        (lambda s: reseal(s, lambda body: body.replace(FIGURES, "[10000.0,", 1)), "float"),
        (lambda s: reseal(s, lambda body: body.replace(FIGURES, "[true,", 1)), "does not decode"),
        (lambda s: reseal(s, lambda body: body.replace(FIGURES, '["10000",', 1)), "not int"),
        (lambda s: reseal(s, lambda body: body[:-1] + ",1]"), "parts"),
        (lambda s: reseal(s, lambda body: body.replace('"cus_1"', '"cus_2"', 1)), "customer"),
    ],
)
def test_a_corrupt_stale_or_foreign_checkpoint_is_refused(
    corrupt: Callable[[str], str], reason: str
) -> None:
    sealed = monthly_state()
    assert unseal(sealed, VERSION, "cus_1").subs["sub_1"].figures.active == 10_000
    with pytest.raises(UnusableCheckpoint, match=reason):
        unseal(corrupt(sealed), VERSION, "cus_1")


def test_a_checkpoint_of_another_customer_is_refused() -> None:
    with pytest.raises(UnusableCheckpoint, match="customer 'cus_1'"):
        unseal(monthly_state(), VERSION, "cus_2")


# --- reference terms that now read differently ---------------------------------------------


def discounted(refs: b.Refs | None = None) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """A subscription naming discount di_x by id only, and the event that later tells its
    terms (20% off)."""
    events = [
        sub("created", at(1, 1), discounts=["di_x"]),
        sub("updated", at(2, 1), discounts=["di_x"], items=[(10_000, "month", 1, 2)]),
    ]
    terms = b.discount_event(
        "created", "di_x", "cus_1", at(3, 1), b.coupon_object("co_q", percent_off=20),
        subscription="sub_1", shape="old",
    )  # fmt: skip
    return events, terms


def test_terms_a_later_event_carries_make_an_earlier_checkpoint_unusable() -> None:
    events, terms = discounted()
    state = last_state(events)
    assert resume_customer(state, [b.record(terms)], b.Refs()) is None
    # ...because the whole replay prices the first events with those terms.
    whole = replay_customer("cus_1", [b.record(e) for e in [*events, terms]], b.Refs())
    assert [e.amount for e in whole.entries] == [8_000, 8_000]


def test_a_reference_stored_since_makes_a_checkpoint_unusable() -> None:
    events, _ = discounted()
    state = last_state(events)
    stored = b.Refs(
        {("discount", "di_x"): b.discount_object("di_x", "cus_1", "co_q", subscription="sub_1"),
         ("coupon", "co_q"): b.coupon_object("co_q", percent_off=20)}
    )  # fmt: skip
    later = [b.record(sub("updated", at(4, 1), discounts=["di_x"]))]
    assert resume_customer(state, later, stored) is None
    unchanged = resume_customer(last_state(events), later, b.Refs())
    assert unchanged is not None
    assert [(e.category, e.amount) for e in unchanged.entries] == [(Category.CONTRACTION, -10_000)]


def test_tiers_that_changed_in_the_stored_references_make_a_checkpoint_unusable() -> None:
    def tiered(unit: int) -> dict[str, Any]:
        tiers = [{"up_to": None, "unit_amount": unit}]
        return b.price(None, tiers=tiers, tiers_mode="volume", price_id="p_t")

    bare = {"price": b.price(None, tiers=[{"up_to": None, "unit_amount": 1}],
                             tiers_mode="volume", price_id="p_t", expand_tiers=False)}  # fmt: skip
    events = [sub("created", at(1, 1), items=[{**bare, "quantity": 2}])]
    state = last_state(events, b.Refs({("price", "p_t"): tiered(500)}))
    assert state.answers.tiers and state.depends_on == {("price", "p_t")}
    later = [b.record(sub("updated", at(2, 1), items=[{**bare, "quantity": 3}]))]
    assert resume_customer(state, later, b.Refs({("price", "p_t"): tiered(700)})) is None
    same = last_state(events, b.Refs({("price", "p_t"): tiered(500)}))
    resumed = resume_customer(same, later, b.Refs({("price", "p_t"): tiered(500)}))
    assert resumed is not None and [e.amount for e in resumed.entries] == [500]


def test_resuming_gives_only_the_later_events_entries() -> None:
    events = [b.record(sub("created", at(1, 1))), b.record(sub("updated", at(2, 1),
              items=[(10_000, "month", 1, 3)]))]  # fmt: skip
    whole = replay_customer("cus_1", events, b.Refs(), Saving(VERSION, 1))
    state = unseal(whole.checkpoints[0].sealed, VERSION, "cus_1")
    resumed = resume_customer(state, events, b.Refs())
    assert resumed is not None
    assert keyed(resumed) == keyed(Replay(whole.entries[1:]))


# --- where checkpoints are left --------------------------------------------------------------


def test_checkpoints_thin_out_with_distance_from_the_newest() -> None:
    saving = Saving(VERSION, 16)
    newest = 20_000
    kept = [n for n in range(16, newest + 1, 16) if saving.keeps(n, newest)]
    assert kept[-1] == newest and len(kept) <= 4 * 11
    # A late event d events back finds a checkpoint at most about d events before it.
    for earlier, later in itertools.pairwise(kept):
        assert later - earlier <= max(16, newest - later)


def test_no_checkpoint_at_or_after_the_ceiling() -> None:
    events = [b.record(sub("updated", at(1, d), items=[(1_000 * d, "month", 1, 1)]))
              for d in range(1, 9)]  # fmt: skip
    ceiling = events[5].sort_key
    replay = replay_customer("cus_1", events, b.Refs(), Saving(VERSION, 2, ceiling, recent=99))
    assert [c.events for c in replay.checkpoints] == [2, 4]
    assert all(c.position < ceiling for c in replay.checkpoints)
