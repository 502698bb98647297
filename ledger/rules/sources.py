"""Sources: a Stripe account and a mode (live or test). Figures never mix two modes, and a
customer or subscription id means something only within its source.

`account` is "" for the endpoint's own account when Stripe does not name it (events carry
`account` only on Connect endpoints), otherwise an `acct_…` id.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, NamedTuple

LIVE, TEST = "live", "test"
MODES = (LIVE, TEST)
ANY = "*"


class Unit(NamedTuple):
    """What one replay covers: a customer of one source. A tuple, so that SQL compares it as
    a row value and it sorts and hashes as one."""

    customer_id: str
    account: str
    livemode: bool


def mode_name(livemode: bool) -> str:
    return LIVE if livemode else TEST


def parse_mode(text: str) -> bool:
    """`live` or `test` as a livemode flag; anything else is a ValueError saying so."""
    cleaned = text.strip().lower()
    if cleaned not in MODES:
        raise ValueError(f"mode must be 'live' or 'test', got {text!r}")
    return cleaned == LIVE


def account_of(body: dict[str, Any]) -> str:
    """The `account` an event names (Connect), or "" for the endpoint's own account."""
    value = body.get("account")
    return value if isinstance(value, str) else ""


@dataclass(frozen=True, slots=True)
class SecretBinding:
    """A webhook secret and the source it may sign for: `ANY` matches every account or mode."""

    secret: str
    account: str = ANY
    mode: str = ANY

    def mismatch(self, account: str, livemode: bool) -> str | None:
        """Why an event of this source may not be signed with this secret, if it may not."""
        if self.mode != ANY and self.mode != mode_name(livemode):
            return (
                f"the event is {mode_name(livemode)} mode but the secret that signed it is "
                f"bound to {self.mode} mode"
            )
        if self.account != ANY and account and account != self.account:
            return (
                f"the event names account {account} but the secret that signed it is bound "
                f"to account {self.account}"
            )
        return None

    def account_for(self, account: str) -> str:
        """The event's account: its own, or the bound one when it names none."""
        return account or ("" if self.account == ANY else self.account)


def parse_secret(entry: str) -> SecretBinding:
    """`whsec_…` (any source) or `ACCOUNT:MODE:whsec_…`, ACCOUNT `acct_…` or `*`, MODE
    `live`, `test` or `*`; a ValueError names what is wrong."""
    parts = entry.strip().split(":")
    if len(parts) == 1:
        return SecretBinding(parts[0])
    if len(parts) != 3:
        raise ValueError("a webhook secret is whsec_… or ACCOUNT:MODE:whsec_…")
    account, mode, secret = (p.strip() for p in parts)
    if account != ANY and not account.startswith("acct_"):
        raise ValueError(f"a bound secret's account is acct_… or *, got {account!r}")
    if mode != ANY and mode not in MODES:
        raise ValueError(f"a bound secret's mode is live, test or *, got {mode!r}")
    if not secret:
        raise ValueError("a bound webhook secret has no secret after ACCOUNT:MODE:")
    return SecretBinding(secret, account, mode)


def key_mode(api_key: str) -> bool:
    """The livemode of a Stripe API key from its prefix (sk_live_, sk_test_, rk_live_,
    rk_test_); a ValueError for any other."""
    for prefix in ("sk_", "rk_"):
        if api_key.startswith(prefix + "live_"):
            return True
        if api_key.startswith(prefix + "test_"):
            return False
    raise ValueError("a Stripe API key starts sk_live_, sk_test_, rk_live_ or rk_test_")
