"""Currency exponents and conversion of minor units to major units (docs/mrr-rules.md §1)."""

from __future__ import annotations

from decimal import ROUND_HALF_EVEN, Decimal

__all__ = [
    "THREE_DECIMAL",
    "ZERO_DECIMAL",
    "exponent",
    "format_major",
    "major_text",
    "round_major",
    "to_major",
]

ZERO_DECIMAL = frozenset(
    {
        "bif", "clp", "djf", "gnf", "jpy", "kmf", "krw", "mga",
        "pyg", "rwf", "ugx", "vnd", "vuv", "xaf", "xof", "xpf",
    }
)  # fmt: skip
THREE_DECIMAL = frozenset({"bhd", "jod", "kwd", "omr", "tnd"})


def exponent(currency: str) -> int:
    """Number of decimals of the currency's major unit."""
    code = currency.lower()
    if code in ZERO_DECIMAL:
        return 0
    if code in THREE_DECIMAL:
        return 3
    return 2


def to_major(amount_minor: int, currency: str) -> Decimal:
    """An integer amount in minor units as an exact Decimal in major units."""
    if isinstance(amount_minor, bool) or not isinstance(amount_minor, int):
        raise TypeError("amount_minor must be an int of minor units")
    places = exponent(currency)
    quantum = Decimal(1).scaleb(-places)
    return Decimal(amount_minor).scaleb(-places).quantize(quantum, rounding=ROUND_HALF_EVEN)


_PLACES: dict[str, int] = {}


def major_text(amount_minor: int, currency: str) -> str:
    """`f"{to_major(amount_minor, currency):f}"` by integer arithmetic: '-12.05', '0.00', '1234'.
    Reports write thousands of these."""
    places = _PLACES.get(currency)
    if places is None:
        places = _PLACES[currency] = exponent(currency)
    if places == 0:
        return str(amount_minor)
    whole, part = divmod(abs(amount_minor), 10**places)
    return f"{'-' if amount_minor < 0 else ''}{whole}.{part:0{places}d}"


def format_major(amount_minor: int, currency: str, *, grouping: bool = True) -> str:
    """Major units with the currency's own decimals and the code, e.g. '1,234.50 USD'."""
    major = to_major(amount_minor, currency)
    number = f"{major:,f}" if grouping else f"{major:f}"
    return f"{number} {currency.upper()}"


def round_major(value: Decimal, currency: str) -> Decimal:
    """A major-unit Decimal rounded half-even to the currency's own decimals."""
    return value.quantize(Decimal(1).scaleb(-exponent(currency)), rounding=ROUND_HALF_EVEN)
