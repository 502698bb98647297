"""Numbers and dates for people: Jinja filters of the workspace."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

from markupsafe import Markup, escape

from ledger.rules.money import exponent, to_major

NONE = "\N{EN DASH}"  # shown where there is no value
SYMBOLS = {"usd": "$", "eur": "€", "gbp": "£", "jpy": "¥", "inr": "₹", "krw": "₩"}


def money_text(amount: int | Decimal | None, currency: str, *, major: bool = False) -> str:
    """'$1,234.50', '-€12.00', '1,234.50 SEK': the currency's own decimals, grouped thousands.
    `amount` is in minor units unless `major`."""
    if amount is None:
        return NONE
    value = amount if major else to_major(int(amount), currency)
    places = exponent(currency)
    number = f"{abs(value):,.{places}f}"
    sign = "-" if value < 0 else ""
    symbol = SYMBOLS.get(currency.lower())
    return f"{sign}{symbol}{number}" if symbol else f"{sign}{number} {currency.upper()}"


def money_short(amount: int, currency: str) -> str:
    """An axis label: '$25k', '-€1.2M', '300 SEK'."""
    value = to_major(amount, currency)
    size = abs(value)
    if size >= 1_000_000:
        number = f"{size / 1_000_000:.1f}".removesuffix(".0") + "M"
    elif size >= 1_000:
        number = f"{size / 1_000:.1f}".removesuffix(".0") + "k"
    else:
        number = f"{size:.0f}"
    sign = "-" if value < 0 else ""
    symbol = SYMBOLS.get(currency.lower())
    return f"{sign}{symbol}{number}" if symbol else f"{sign}{number} {currency.upper()}"


def money(amount: int | Decimal | None, currency: str, major: bool = False) -> Markup:
    """`money_text` in a span marked negative when below zero (shown in red, printable)."""
    text = money_text(amount, currency, major=major)
    tone = "" if amount is None else " neg" if amount < 0 else " zero" if amount == 0 else ""
    return Markup('<span class="num{}">{}</span>').format(tone, escape(text))


def signed_money(amount: int | Decimal | None, currency: str, major: bool = False) -> Markup:
    """An amount that adds to or takes from MRR, coloured by its sign: '+$10.00' (green) or
    '-$10.00' (red)."""
    if amount is not None and amount > 0:
        text = "+" + money_text(amount, currency, major=major)
        return Markup('<span class="num pos">{}</span>').format(text)
    return money(amount, currency, major)


def signed_change(change: int | Decimal, kind: str, currency: str) -> str:
    """A headline figure's change on the month before, signed: '+$10.00', '-3', '+1.25 pts'.
    `kind` as in `ledger.reporting.overview.Figure`; colour comes from the figure's tone."""
    if kind in ("money", "arpu"):
        text = money_text(change, currency, major=kind == "arpu")
    elif kind == "count":
        text = count(int(change))
    else:
        text = f"{change * 100:,.2f} pts"
    return "+" + text if change > 0 else text


def count(value: int | None) -> str:
    return NONE if value is None else f"{value:,}"


def ratio(value: Decimal | None) -> str:
    return NONE if value is None else f"{value * 100:,.2f}%"


def share(part: int, whole: int) -> str:
    """`part` as a percentage of `whole` (two decimals), exact until shown."""
    return NONE if not whole else ratio(Decimal(part) / Decimal(whole))


def iso_time(value: datetime | int | None) -> str:
    """ISO 8601 in UTC to the second; an int is a Unix timestamp (Stripe's `created`)."""
    if value is None:
        return NONE
    moment = datetime.fromtimestamp(value, UTC) if isinstance(value, int) else value
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def iso_date(value: datetime | None) -> str:
    return NONE if value is None else value.astimezone(UTC).date().isoformat()


FILTERS = {
    "money": money,
    "signed_money": signed_money,
    "signed_change": signed_change,
    "count": count,
    "ratio": ratio,
    "share": share,
    "iso_time": iso_time,
    "iso_date": iso_date,
}
