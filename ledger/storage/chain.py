"""The ledger's hash chain: what each link hashes, and `mrr verify`'s recomputation.

A database trigger (migration 0003) appends one `ledger_chain` link per inserted ledger entry,
in one serialized sequence `seq` = 1, 2, 3...: `prev_hash` is the previous link's `row_hash`
(GENESIS for the first) and `row_hash = sha256_hex(canonical(prev_hash, entry))`, where the
canonical text (version 1) is

    prev_hash | F(id) | F(customer_id) | F(subscription_id) | F(category) | F(currency)
              | F(amount) | F(effective_at) | F(recorded_at) | F(source_event_id)
              | F(cause_event_id) | F(reversal_of) | F(explanation)

joined by "|" with no spaces, each field F(v) = "<number of characters of v>:<v>" (so a "|"
inside a value cannot move content between fields); integers in decimal, `reversal_of` empty
when null, times as UTC "YYYY-MM-DDTHH:MM:SS.ffffffZ", `explanation` the stored JSON text;
sha256_hex is the lowercase hex SHA-256 of the UTF-8 bytes. Verification is plain
recomputation here, independent of the SQL that wrote the links.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any, cast

from sqlalchemy import Connection, func, select

from ledger.storage.schema import ledger_chain, ledger_entries

__all__ = [
    "GENESIS",
    "HASHED_COLUMNS",
    "Link",
    "Problem",
    "ProblemKind",
    "Verdict",
    "canonical",
    "check_links",
    "row_hash",
    "verify",
]

GENESIS = "0" * 64

HASHED_COLUMNS = (
    "id",
    "customer_id",
    "subscription_id",
    "category",
    "currency",
    "amount",
    "effective_at",
    "recorded_at",
    "source_event_id",
    "cause_event_id",
    "reversal_of",
    "explanation",
)


@dataclass(frozen=True, slots=True)
class Link:
    seq: int
    entry_id: int
    prev_hash: str
    row_hash: str


class ProblemKind(StrEnum):
    CONTENT_CHANGED = "content changed"
    CHAIN_BROKEN = "chain broken"
    ENTRY_MISSING = "entry missing"
    UNCHAINED = "unchained entry"


@dataclass(frozen=True, slots=True)
class Problem:
    kind: ProblemKind
    entry_id: int
    seq: int | None
    detail: str


@dataclass(frozen=True, slots=True)
class Verdict:
    verified: int
    head: str
    problem: Problem | None

    @property
    def ok(self) -> bool:
        return self.problem is None


def _text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, datetime):
        if value.tzinfo is None:
            raise ValueError("naive datetime in a ledger entry")
        naive = value.astimezone(UTC).replace(tzinfo=None)
        return naive.isoformat(timespec="microseconds") + "Z"
    if isinstance(value, bool):
        raise TypeError("booleans are not ledger content")
    if isinstance(value, int | str):
        return str(value)
    raise TypeError(f"unexpected ledger value {type(value).__name__}")


def canonical(prev_hash: str, entry: Mapping[str, Any]) -> str:
    fields = (_text(entry[name]) for name in HASHED_COLUMNS)
    return "|".join([prev_hash, *(f"{len(text)}:{text}" for text in fields)])


def row_hash(prev_hash: str, entry: Mapping[str, Any]) -> str:
    return hashlib.sha256(canonical(prev_hash, entry).encode("utf-8")).hexdigest()


def check_links(rows: Iterable[tuple[Link, Mapping[str, Any] | None]]) -> Verdict:
    """Walk links in `seq` order with their entries (None if missing); stop at the first problem."""
    expected_prev, expected_seq, verified = GENESIS, 1, 0
    for link, entry in rows:
        if link.seq != expected_seq or link.prev_hash != expected_prev:
            why = (
                f"link {link.seq} follows link {expected_seq - 1}"
                if link.seq != expected_seq
                else "its prev_hash is not the previous link's row_hash"
            )
            return Verdict(
                verified,
                expected_prev,
                Problem(ProblemKind.CHAIN_BROKEN, link.entry_id, link.seq, why),
            )
        if entry is None:
            problem = Problem(
                ProblemKind.ENTRY_MISSING, link.entry_id, link.seq, "the chain names a missing row"
            )
            return Verdict(verified, expected_prev, problem)
        if row_hash(link.prev_hash, entry) != link.row_hash:
            problem = Problem(
                ProblemKind.CONTENT_CHANGED,
                link.entry_id,
                link.seq,
                "the row no longer hashes to the hash recorded when it was inserted",
            )
            return Verdict(verified, expected_prev, problem)
        expected_prev, expected_seq, verified = link.row_hash, expected_seq + 1, verified + 1
    return Verdict(verified, expected_prev, None)


def _joined_rows(conn: Connection) -> Iterable[tuple[Link, Mapping[str, Any] | None]]:
    query = (
        select(ledger_chain, *(ledger_entries.c[name] for name in HASHED_COLUMNS))
        .select_from(
            ledger_chain.outerjoin(ledger_entries, ledger_entries.c.id == ledger_chain.c.entry_id)
        )
        .order_by(ledger_chain.c.seq)
    )
    streamed = conn.execution_options(stream_results=True, yield_per=2000).execute(query)
    for row in streamed.mappings():
        link = Link(
            int(row["seq"]), int(row["entry_id"]), str(row["prev_hash"]), str(row["row_hash"])
        )
        yield link, (None if row["id"] is None else cast(Mapping[str, Any], row))


def verify(conn: Connection) -> Verdict:
    """Recompute the whole chain, then make sure no ledger row was added outside it."""
    verdict = check_links(_joined_rows(conn))
    if verdict.problem is not None:
        return verdict
    unchained = conn.execute(
        select(func.min(ledger_entries.c.id))
        .select_from(
            ledger_entries.outerjoin(ledger_chain, ledger_chain.c.entry_id == ledger_entries.c.id)
        )
        .where(ledger_chain.c.entry_id.is_(None))
    ).scalar_one_or_none()
    if unchained is not None:
        problem = Problem(
            ProblemKind.UNCHAINED,
            int(unchained),
            None,
            "the row has no link in the chain (inserted behind the triggers' back)",
        )
        return Verdict(verdict.verified, verdict.head, problem)
    return verdict
