"""Money is integer picodollars: exact to add up, shown exactly as decimal strings."""

from __future__ import annotations

from decimal import Decimal

import pytest

from service.pipeline.cost import PICO_PER_USD, Usage, usd, usd_float, usd_text


def test_usage_adds_field_by_field() -> None:
    assert Usage(10, 3) + Usage(5, 7) == Usage(input_tokens=15, output_tokens=10)
    assert sum([Usage(1, 2), Usage(3, 4)], Usage()) == Usage(4, 6)
    assert Usage(55, 45).total == 100


@pytest.mark.parametrize(
    ("pico", "text"),
    [(0, "0"), (1, "0.000000000001"), (25_605_187_500, "0.0256051875"), (PICO_PER_USD * 36, "36")],
)
def test_usd_text_is_exact_without_trailing_zeros(pico: int, text: str) -> None:
    assert usd_text(pico) == text
    assert usd(pico) == Decimal(text)


def test_rows_add_up_exactly_where_floats_rounded_one_by_one_do_not() -> None:
    """300 rows of 1/3 of a microdollar: exact in picodollars, not in floats rounded to 8 decimals."""
    rows = [333_333] * 300
    assert sum(usd(pico) for pico in rows) == usd(sum(rows))
    assert usd_float(sum(rows)) == pytest.approx(sum(usd_float(p) for p in rows))
