"""The ledger's vocabulary: movement categories and the entries the rules ask for."""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol


class Category(enum.StrEnum):
    NEW = "new"
    REACTIVATION = "reactivation"
    EXPANSION = "expansion"
    CONTRACTION = "contraction"
    CHURN = "churn"
    DELINQUENT = "delinquent"
    RECOVERED = "recovered"
    DELINQUENT_CHURN = "delinquent_churn"
    DELINQUENT_CHANGE = "delinquent_change"


# Categories that move the active MRR balance (closing_mrr); the rest move only the delinquent one.
ACTIVE_CATEGORIES = frozenset(
    {
        Category.NEW,
        Category.REACTIVATION,
        Category.EXPANSION,
        Category.CONTRACTION,
        Category.CHURN,
        Category.DELINQUENT,
        Category.RECOVERED,
    }
)


def delinquent_effect(category: Category, amount: int) -> int:
    """How an entry moves the delinquent balance (docs/mrr-rules.md §6.1)."""
    if category in (Category.DELINQUENT, Category.RECOVERED):
        return -amount
    if category in (Category.DELINQUENT_CHURN, Category.DELINQUENT_CHANGE):
        return amount
    return 0


def active_effect(category: Category, amount: int) -> int:
    """How an entry moves the active MRR balance (docs/mrr-rules.md §6.1)."""
    return amount if category in ACTIVE_CATEGORIES else 0


EntryKey = tuple[str, str, str, str, int, datetime]


class Keyed(Protocol):
    """What identifies an entry, whether wanted by the rules or already stored."""

    @property
    def source_event_id(self) -> str: ...
    @property
    def subscription_id(self) -> str: ...
    @property
    def category(self) -> Category: ...
    @property
    def currency(self) -> str: ...
    @property
    def amount(self) -> int: ...
    @property
    def effective_at(self) -> datetime: ...


def entry_key(entry: Keyed) -> EntryKey:
    """Identity used to diff the ledger in effect against what the rules want."""
    return (
        entry.source_event_id,
        entry.subscription_id,
        entry.category.value,
        entry.currency,
        entry.amount,
        entry.effective_at,
    )


@dataclass(frozen=True, slots=True)
class DesiredEntry:
    """One ledger entry that the rules say should exist, in integer minor units.

    `amount` carries its sign as docs/mrr-rules.md §5.1 defines it per category.
    `effective_at` is timezone-aware UTC.
    """

    customer_id: str
    subscription_id: str
    category: Category
    currency: str
    amount: int
    effective_at: datetime
    source_event_id: str
    explanation: Mapping[str, Any] = field(default_factory=dict, compare=False, hash=False)

    def key(self) -> EntryKey:
        return entry_key(self)
