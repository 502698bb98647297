"""What no replay may produce, checked before anything is appended (docs/mrr-rules.md §10.2).

The payload readers refuse what Stripe never sends, so a breach here is a bug in the rules:
its event fails with the breach as the reason, and no entry of it reaches the ledger.
"""

from __future__ import annotations

from collections.abc import Sequence

from ledger.rules.entries import DesiredEntry, active_effect, delinquent_effect
from ledger.rules.payloads import INT64_MAX

__all__ = ["BrokenInvariant", "check_balances"]


class BrokenInvariant(Exception):
    """The rules produced a balance that cannot be: a bug to report, never a ledger entry."""


def check_balances(
    entries: Sequence[DesiredEntry], balances: dict[str, tuple[int, int]] | None = None
) -> None:
    """After each entry, every subscription's and every customer's active and delinquent MRR
    (per currency) is >= 0 and fits the ledger's 64-bit minor units.

    `balances`: each holder's (active, delinquent) MRR before the first entry (none if it is
    missing), brought up to date. A holder back at zero is left out, so a long history keeps
    only its live ones; a replay carries them from one checkpoint to the next.
    """
    found = {} if balances is None else balances
    for entry in entries:
        customer = f"customer {entry.customer_id} ({entry.currency})"
        for holder in (f"subscription {entry.subscription_id}", customer):
            active, delinquent = found.get(holder, (0, 0))
            active += active_effect(entry.category, entry.amount)
            delinquent += delinquent_effect(entry.category, entry.amount)
            if active or delinquent:
                found[holder] = (active, delinquent)
            else:
                found.pop(holder, None)
            if not (0 <= active <= INT64_MAX and 0 <= delinquent <= INT64_MAX):
                raise BrokenInvariant(
                    f"{entry.category.value} {entry.amount} from {entry.source_event_id} would "
                    f"leave {holder} with active MRR {active} and delinquent MRR {delinquent}"
                )
