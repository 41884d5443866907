"""The model catalogue: defaults from GROQ_BATCH_API.md, operator overrides, exact prices, lifecycle."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

import pytest

from service.pipeline.catalogue import (
    Catalogue,
    CatalogueError,
    Lifecycle,
    StructuredOutput,
    lower_effort,
)
from service.pipeline.cost import Usage


@pytest.fixture
def catalogue() -> Catalogue:
    return Catalogue.build()


def test_defaults_follow_the_wire_reference(catalogue: Catalogue) -> None:
    small, large = catalogue.get("openai/gpt-oss-20b"), catalogue.get("openai/gpt-oss-120b")
    assert small is not None and large is not None
    assert (small.input_usd_per_million, small.output_usd_per_million) == (Decimal("0.0375"), Decimal("0.15"))
    assert (large.input_usd_per_million, large.output_usd_per_million) == (Decimal("0.075"), Decimal("0.30"))
    assert small.structured_output == large.structured_output == StructuredOutput.STRICT
    assert small.reasoning and small.max_completion_tokens == 65536
    llama = catalogue.get("llama-3.3-70b-versatile")
    assert llama is not None and llama.lifecycle == Lifecycle.DECOMMISSIONED
    assert llama.shutdown_date == date(2026, 8, 16) and llama.replacement == "openai/gpt-oss-120b"
    assert "decommissioned" in llama.lifecycle_text() and "openai/gpt-oss-120b" in llama.lifecycle_text()


def test_cost_is_usage_times_price_in_exact_picodollars(catalogue: Catalogue) -> None:
    # 0.0375 USD per 1M input tokens = 37,500 pico per token; 0.15 per 1M output = 150,000 pico per token
    assert catalogue.cost_pico("openai/gpt-oss-20b", Usage(1000, 200)) == 1000 * 37_500 + 200 * 150_000


def test_model_prices_and_overrides_are_laid_over_the_defaults() -> None:
    catalogue = Catalogue.build(
        overrides={
            "qwen/qwen3-32b": {"structured_output": "best_effort", "context_window": 32768},
            "openai/gpt-oss-20b": {"lifecycle": "deprecated", "shutdown_date": "2027-03-01"},
        },
        prices={"qwen/qwen3-32b": (0.145, 0.295)},
    )
    qwen = catalogue.get("qwen/qwen3-32b")
    assert qwen is not None and qwen.priced and qwen.context_window == 32768
    assert qwen.input_usd_per_million == Decimal("0.145")
    small = catalogue.get("openai/gpt-oss-20b")
    assert small is not None and small.lifecycle == Lifecycle.DEPRECATED and small.priced
    assert "deprecated" in small.lifecycle_text() and "2027-03-01" in small.lifecycle_text()


@pytest.mark.parametrize(
    ("overrides", "words"),
    [
        ({"m": {"input_usd_per_million": "0.0000001"}}, "more than six decimals"),
        ({"m": {"input_usd_per_million": -1}}, "non-negative"),
        ({"m": {"structured_output": "sometimes"}}, "m:"),
        ({"m": {"max_completion_tokens": 0}}, "positive integer"),
        ({"m": {"colour": "blue"}}, "unknown field 'colour'"),
    ],
)
def test_an_unusable_override_names_the_model_and_field(overrides: dict[str, object], words: str) -> None:
    with pytest.raises(CatalogueError, match=words):
        Catalogue.build(overrides=overrides)


def test_a_model_without_prices_cannot_be_costed(catalogue: Catalogue) -> None:
    with pytest.raises(CatalogueError, match="MODEL_PRICES"):
        catalogue.cost_pico("openai/gpt-oss-safeguard-20b", Usage(1, 1))


@pytest.mark.parametrize(("effort", "lower"), [("high", "medium"), ("medium", "low"), ("low", "low"), (None, "low")])
def test_reasoning_effort_goes_one_step_lower(effort: str | None, lower: str) -> None:
    assert lower_effort(effort) == lower
