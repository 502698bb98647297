"""The account breakdown: one report per Stripe account of a mode, beside the consolidated one.

Each account's report is built from its own entries (a customer id means one customer only
within its account), so the accounts' balances add up to the consolidated balance; `check`
compares them month by month and names any figure that does not.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields, replace

from sqlalchemy import Engine, false, select, true

from ledger.reporting import projector
from ledger.reporting.balances import MonthBalance
from ledger.reporting.reports import BadInput, Report, ReportQuery, build_report

# Every figure of a month but its name and currency adds up across accounts (a customer id
# is one customer per account); rates and averages, computed from these, do not.
ADDITIVE = tuple(f.name for f in fields(MonthBalance) if f.name not in ("month", "currency"))


@dataclass(frozen=True, slots=True)
class Breakdown:
    consolidated: Report
    accounts: list[tuple[str, Report]]  # "" is the endpoint's own account, id not known
    mismatches: list[str] = field(default_factory=list)


def accounts_of(engine: Engine, livemode: bool) -> list[str]:
    """The accounts whose events gave the ledger entries of one mode."""
    query = projector.with_source(select(projector.SOURCE_ACCOUNT).distinct()).where(
        projector.SOURCE_LIVEMODE.is_(true() if livemode else false())
    )
    with engine.connect() as conn:
        return sorted(str(account) for (account,) in conn.execute(query))


def build_breakdown(engine: Engine, query: ReportQuery) -> Breakdown:
    if query.account is not None:
        raise BadInput("by", "the account breakdown covers every account: not with a source")
    consolidated = build_report(engine, query)
    pinned = replace(query, livemode=consolidated.mode.livemode)
    if query.currency is None:
        pinned = replace(pinned, currency=consolidated.main.currency)
    accounts = [
        (account, build_report(engine, replace(pinned, account=account)))
        for account in accounts_of(engine, consolidated.mode.livemode)
    ]
    return Breakdown(consolidated, accounts, check(consolidated, [r for _, r in accounts]))


def check(consolidated: Report, parts: list[Report]) -> list[str]:
    """Each month's additive figures that the accounts do not add up to."""
    found: list[str] = []
    by_month = [{b.month: b for b in part.main.months} for part in parts]
    for total in consolidated.main.months:
        months = [m[total.month] for m in by_month if total.month in m]
        for name in ADDITIVE:
            summed = sum(_figure(b, name) for b in months)
            if summed != _figure(total, name):
                whole = _figure(total, name)
                found.append(f"{total.month} {name}: accounts {summed}, consolidated {whole}")
    return found


def _figure(balance: MonthBalance, name: str) -> int:
    return int(getattr(balance, name))
