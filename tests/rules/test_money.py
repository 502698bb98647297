from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ledger.rules.money import exponent, format_major, major_text, to_major


@pytest.mark.parametrize(
    ("currency", "places"), [("usd", 2), ("EUR", 2), ("jpy", 0), ("KRW", 0), ("kwd", 3), ("bhd", 3)]
)
def test_exponents(currency: str, places: int) -> None:
    assert exponent(currency) == places


def test_all_listed_zero_and_three_decimal_currencies() -> None:
    zero = [
        "BIF",
        "CLP",
        "DJF",
        "GNF",
        "JPY",
        "KMF",
        "KRW",
        "MGA",
        "PYG",
        "RWF",
        "UGX",
        "VND",
        "VUV",
        "XAF",
        "XOF",
        "XPF",
    ]
    three = ["BHD", "JOD", "KWD", "OMR", "TND"]
    assert all(exponent(c) == 0 for c in zero)
    assert all(exponent(c) == 3 for c in three)


def test_to_major_uses_the_currency_decimals() -> None:
    assert to_major(2_750_000, "usd") == Decimal("27500.00")
    assert str(to_major(8333, "usd")) == "83.33"
    assert str(to_major(1500, "jpy")) == "1500"
    assert str(to_major(12_345, "kwd")) == "12.345"
    assert str(to_major(-5, "kwd")) == "-0.005"


def test_to_major_refuses_non_integers() -> None:
    with pytest.raises(TypeError):
        to_major(1.5, "usd")  # type: ignore[arg-type]


def test_format_major() -> None:
    assert format_major(2_750_000, "usd") == "27,500.00 USD"
    assert format_major(1_000_000, "jpy") == "1,000,000 JPY"
    assert format_major(1_234_567, "kwd", grouping=False) == "1234.567 KWD"


@given(st.integers(-(2**63), 2**63 - 1), st.sampled_from(["usd", "jpy", "kwd", "eur"]))
def test_major_text_is_the_exact_decimal_written_out(amount: int, currency: str) -> None:
    assert major_text(amount, currency) == f"{to_major(amount, currency):f}"
