"""Token usage and its price. Money is integer picodollars (1e-12 USD): exact to add up, exact to compare."""

from __future__ import annotations

from decimal import Decimal
from functools import lru_cache
from typing import NamedTuple

PICO_PER_USD = 10**12
# A price in USD per 1M tokens, times this, is the price of one token in picodollars.
PICO_PER_USD_PER_MILLION = PICO_PER_USD // 10**6


class Usage(NamedTuple):
    """A NamedTuple: an ingest makes one per result line, and a tuple is made several times faster than a
    frozen dataclass. `+` adds the counts (it does not concatenate).

    `input_tokens` is every prompt token the provider billed, whatever its price; `cached_input_tokens` and
    `cache_write_tokens` are the part of them read from and written to the provider's prompt cache."""

    input_tokens: int = 0
    output_tokens: int = 0
    cached_input_tokens: int = 0
    cache_write_tokens: int = 0

    def __add__(self, other: tuple[int, ...]) -> Usage:  # type: ignore[override]
        assert isinstance(other, Usage)
        return Usage(*(mine + theirs for mine, theirs in zip(self, other, strict=True)))

    @property
    def total(self) -> int:
        return self.input_tokens + self.output_tokens


def pico_of_usd(amount: Decimal) -> int:
    """USD as whole picodollars (a budget: any finer fraction is dropped, never rounded up)."""
    return int(amount * PICO_PER_USD)


def usd(pico: int) -> Decimal:
    """Picodollars as exact USD."""
    return Decimal(pico) / PICO_PER_USD


@lru_cache(maxsize=4_096)
def usd_text(pico: int) -> str:
    """Exact USD as a decimal string without exponent or trailing zeros (`"0.0256051875"`, `"0"`). Integer
    arithmetic, and remembered: an export writes it for every row and every attempt, mostly the same few
    amounts."""
    whole, fraction = divmod(abs(pico), PICO_PER_USD)
    sign = "-" if pico < 0 else ""
    if not fraction:
        return f"{sign}{whole}"
    return f"{sign}{whole}.{fraction:012d}".rstrip("0")


def usd_float(pico: int) -> float:
    """The same amount as a JSON number for callers that read floats (int / int is correctly rounded)."""
    return pico / PICO_PER_USD
