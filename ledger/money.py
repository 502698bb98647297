"""Placeholder until the rules branch lands (it owns this module)."""

from __future__ import annotations

from decimal import Decimal

ZERO_DECIMAL = frozenset(
    "BIF CLP DJF GNF JPY KMF KRW MGA PYG RWF UGX VND VUV XAF XOF XPF".lower().split()
)
THREE_DECIMAL = frozenset("BHD JOD KWD OMR TND".lower().split())


def exponent(currency: str) -> int:
    code = currency.lower()
    return 0 if code in ZERO_DECIMAL else 3 if code in THREE_DECIMAL else 2


def to_major(amount: int, currency: str) -> Decimal:
    return Decimal(amount).scaleb(-exponent(currency))
