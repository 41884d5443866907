"""Counting what the provider bills as prompt tokens: messages, tool definitions, tool calls; non-text parts
found (a budget refuses them); and the output budget a line's worst case reserves."""

from __future__ import annotations

from typing import Any

import pytest

from service.batches.chunks.budget import worst_case
from service.pipeline.catalogue import Catalogue, LineFormat
from service.pipeline.lines import PassRequestSpec
from service.pipeline.tokens import O200K, count_input_tokens, count_o200k, uncountable_part

CATALOGUE = Catalogue.build()
WORDS = "the reviewer reads each changed function and writes down what it does and why "


def description(kilobytes: int) -> str:
    return (WORDS * (kilobytes * 1024 // len(WORDS) + 1))[: kilobytes * 1024]


def tool(text: str) -> dict[str, Any]:
    return {
        "type": "function",
        "function": {
            "name": "review",
            "description": text,
            "parameters": {"type": "object", "properties": {"verdict": {"type": "string", "description": text}}},
        },
    }


USER = {"role": "user", "content": "Review this."}


@pytest.mark.parametrize("vocabulary", [O200K, None], ids=["o200k", "bytes"])
def test_tool_definitions_count_at_least_their_text(vocabulary: str | None) -> None:
    """A 300 KB tool description was counted as 55 tokens: the budget reserved nothing for it."""
    text = description(300)
    counted = count_input_tokens(vocabulary, {"messages": [USER], "tools": [tool(text)]}).tokens
    assert counted >= 2 * count_o200k(text)  # the description appears twice in the tool
    without = count_input_tokens(vocabulary, {"messages": [USER]}).tokens
    assert counted > without + 2 * count_o200k(text)


def test_tool_call_arguments_and_names_count() -> None:
    arguments = '{"verdict": "' + description(50) + '"}'
    call = {"id": "call_1", "type": "function", "function": {"name": "review", "arguments": arguments}}
    body = {
        "messages": [
            USER,
            {"role": "assistant", "content": None, "tool_calls": [call]},
            {"role": "tool", "tool_call_id": "call_1", "content": "ok"},
        ]
    }
    assert count_input_tokens(O200K, body).tokens >= count_o200k(arguments)


def test_a_named_tool_choice_counts() -> None:
    choice = {"type": "function", "function": {"name": "x" * 5000}}
    plain = count_input_tokens(O200K, {"messages": [USER]}).tokens
    assert count_input_tokens(O200K, {"messages": [USER], "tool_choice": choice}).tokens > plain + 500


def test_text_parts_count_and_other_parts_are_found() -> None:
    text_only = {"messages": [{"role": "user", "content": [{"type": "text", "text": description(10)}]}]}
    assert uncountable_part(text_only) is None
    assert count_input_tokens(O200K, text_only).tokens >= count_o200k(description(10))
    image = {"type": "image_url", "image_url": {"url": "https://example.com/a.png"}}
    with_image = {"messages": [USER, {"role": "user", "content": [{"type": "text", "text": "see"}, image]}]}
    assert uncountable_part(with_image) == "messages[1].content[1]"
    audio = {"type": "input_audio", "input_audio": {"data": "AAAA", "format": "wav"}}
    assert uncountable_part({"messages": [{"role": "user", "content": [audio]}]}) == "messages[0].content[0]"


def spec(model: str) -> PassRequestSpec:
    entry = CATALOGUE.get(model)
    assert entry is not None
    return PassRequestSpec(entry=entry, params={}, pass_params={}, output_schema=None)


@pytest.mark.parametrize(
    "model", ["openai/gpt-oss-20b", "openai:gpt-4.1-mini", "openai:gpt-5.4-mini", "anthropic:claude-haiku-4-5"]
)
def test_the_reserved_output_is_what_the_provider_applies(model: str) -> None:
    """Both max_tokens and max_completion_tokens: the providers apply max_completion_tokens; the Responses API
    raises a budget below its minimum of 16 (the line sends 16, so 16 are reserved, not 5)."""
    line_spec = spec(model)
    body = {"messages": [USER], "max_tokens": 4000, "max_completion_tokens": 5}
    built = line_spec.build("c-1", body)
    expected = 16 if line_spec.entry.line_format == LineFormat.RESPONSES else 5
    assert built.max_completion_tokens == expected
    entry = line_spec.entry
    input_tokens = count_input_tokens(entry.tokenizer, built.request).tokens
    input_price = max(entry.input_pico_per_token, entry.cached_input_pico_per_token, entry.cache_write_pico_per_token)
    assert worst_case(entry, built) == input_tokens * input_price + expected * entry.output_pico_per_token
