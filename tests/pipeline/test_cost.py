import pytest

from service.pipeline.cost import PriceTable, UnknownModelPrice, Usage, round_usd
from service.settings import DEFAULT_BATCH_PRICES


@pytest.fixture
def prices() -> PriceTable:
    return PriceTable(DEFAULT_BATCH_PRICES)


def test_usage_defaults_to_zero() -> None:
    assert Usage() == Usage(0, 0)
    assert Usage().total == 0


def test_usage_adds_field_by_field() -> None:
    assert Usage(10, 3) + Usage(5, 7) == Usage(input_tokens=15, output_tokens=10)


def test_usage_total() -> None:
    assert Usage(55, 45).total == 100


def test_usages_sum_from_zero() -> None:
    assert sum([Usage(1, 2), Usage(3, 4), Usage(5, 6)], Usage()) == Usage(9, 12)


@pytest.mark.parametrize(
    ("model", "usage", "expected_usd"),
    [
        ("openai/gpt-oss-20b", Usage(1_000_000, 1_000_000), 0.1875),
        ("openai/gpt-oss-20b", Usage(1_000_000, 0), 0.0375),
        ("openai/gpt-oss-20b", Usage(0, 1_000_000), 0.15),
        ("llama-3.3-70b-versatile", Usage(1_000_000, 1_000_000), 0.70),
        ("llama-3.3-70b-versatile", Usage(2_000, 500), 0.0008),
        ("openai/gpt-oss-20b", Usage(55, 55), 0.0000103125),
        ("openai/gpt-oss-20b", Usage(), 0.0),
    ],
)
def test_cost_is_tokens_times_price(prices: PriceTable, model: str, usage: Usage, expected_usd: float) -> None:
    assert prices.cost_usd(model, usage) == pytest.approx(expected_usd, rel=1e-12, abs=1e-15)


def test_design_example_rounds_to_exact_display_value(prices: PriceTable) -> None:
    assert round_usd(prices.cost_usd("openai/gpt-oss-20b", Usage(1_000_000, 1_000_000))) == 0.1875


def test_cost_is_additive_over_usage(prices: PriceTable) -> None:
    a, b = Usage(1234, 567), Usage(89, 1011)
    separate = prices.cost_usd("openai/gpt-oss-20b", a) + prices.cost_usd("openai/gpt-oss-20b", b)
    assert prices.cost_usd("openai/gpt-oss-20b", a + b) == pytest.approx(separate)


def test_custom_prices() -> None:
    table = PriceTable({"m": (1.0, 2.0)})
    assert table.price("m") == (1.0, 2.0)
    assert table.cost_usd("m", Usage(500_000, 250_000)) == pytest.approx(1.0)


def test_has(prices: PriceTable) -> None:
    assert prices.has("openai/gpt-oss-20b")
    assert not prices.has("mystery-model")


@pytest.mark.parametrize("call", ["price", "cost_usd"])
def test_unknown_model_raises_key_error_naming_the_model(prices: PriceTable, call: str) -> None:
    with pytest.raises(UnknownModelPrice) as raised:
        if call == "price":
            prices.price("mystery-model")
        else:
            prices.cost_usd("mystery-model", Usage(1, 1))
    assert isinstance(raised.value, KeyError)
    assert raised.value.model == "mystery-model"
    assert "'mystery-model'" in str(raised.value)


def test_price_table_copies_its_input() -> None:
    source = {"m": (1.0, 2.0)}
    table = PriceTable(source)
    source["m"] = (9.0, 9.0)
    assert table.price("m") == (1.0, 2.0)


@pytest.mark.parametrize(
    ("value", "rounded"),
    [(0.1875, 0.1875), (0.123456789, 0.12345679), (1e-9, 0.0), (0.1 + 0.2, 0.3)],
)
def test_round_usd_keeps_eight_decimals(value: float, rounded: float) -> None:
    assert round_usd(value) == rounded
