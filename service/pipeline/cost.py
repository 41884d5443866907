"""Token usage and its price at Groq's batch rates."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

TOKENS_PER_PRICE_UNIT = 1_000_000
USD_DECIMALS = 8


@dataclass(frozen=True)
class Usage:
    input_tokens: int = 0
    output_tokens: int = 0

    def __add__(self, other: Usage) -> Usage:
        return Usage(self.input_tokens + other.input_tokens, self.output_tokens + other.output_tokens)

    @property
    def total(self) -> int:
        return self.input_tokens + self.output_tokens


class UnknownModelPrice(KeyError):
    def __init__(self, model: str) -> None:
        super().__init__(model)
        self.model = model

    def __str__(self) -> str:
        return f"no batch price is configured for model {self.model!r} (set MODEL_PRICES)"


class PriceTable:
    """Batch prices in USD per 1M tokens, as ``{model: (input, output)}``."""

    def __init__(self, prices: Mapping[str, tuple[float, float]]) -> None:
        self._prices = {model: (float(pin), float(pout)) for model, (pin, pout) in prices.items()}

    def has(self, model: str) -> bool:
        return model in self._prices

    def price(self, model: str) -> tuple[float, float]:
        try:
            return self._prices[model]
        except KeyError:
            raise UnknownModelPrice(model) from None

    def cost_usd(self, model: str, usage: Usage) -> float:
        input_price, output_price = self.price(model)
        return (
            usage.input_tokens * input_price / TOKENS_PER_PRICE_UNIT
            + usage.output_tokens * output_price / TOKENS_PER_PRICE_UNIT
        )


def round_usd(x: float) -> float:
    return round(x, USD_DECIMALS)
