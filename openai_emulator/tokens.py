"""Prompt tokens as OpenAI bills them: o200k for the gpt-4o, gpt-4.1 and gpt-5 families (offline, in pieces
of at most 40,000 characters: ``groq_emulator.tokens``), a quarter of the characters otherwise.

Chat messages cost their text plus ``PER_MESSAGE`` tokens each and ``REPLY_PRIMING`` once (OpenAI's counting
recipe); a json_schema response format is counted as its JSON text.
"""

from __future__ import annotations

import math
from typing import Any

import orjson

from groq_emulator.text import message_texts
from groq_emulator.tokens import count_o200k
from openai_emulator.config import CHAT

PER_MESSAGE = 3
REPLY_PRIMING = 3


def _parts_text(content: Any) -> list[str]:
    if isinstance(content, str):
        return [content]
    if isinstance(content, list):
        return [part["text"] for part in content if isinstance(part, dict) and isinstance(part.get("text"), str)]
    return []


def responses_messages(body: dict[str, Any]) -> list[list[str]]:
    """The texts of each input message of a /v1/responses body, ``instructions`` first."""
    messages: list[list[str]] = []
    if isinstance(body.get("instructions"), str):
        messages.append([body["instructions"]])
    given = body.get("input")
    if isinstance(given, str):
        messages.append([given])
    elif isinstance(given, list):
        messages.extend(_parts_text(item.get("content")) for item in given if isinstance(item, dict))
    return messages


def chat_messages(body: dict[str, Any]) -> list[list[str]]:
    messages = body.get("messages")
    if not isinstance(messages, list):
        return []
    return [message_texts([message]) for message in messages]


def schema_of(body: dict[str, Any], endpoint: str) -> Any:
    """The json_schema a body asks for, or None."""
    if endpoint == CHAT:
        rf = body.get("response_format")
        spec = rf.get("json_schema") if isinstance(rf, dict) and rf.get("type") == "json_schema" else None
    else:
        text = body.get("text")
        spec = text.get("format") if isinstance(text, dict) else None
        spec = spec if isinstance(spec, dict) and spec.get("type") == "json_schema" else None
    return spec.get("schema") if isinstance(spec, dict) else None


def count_text(text: str, o200k: bool) -> int:
    return count_o200k(text) if o200k else math.ceil(len(text) / 4)


def count_messages(messages: list[list[str]], o200k: bool) -> int:
    text = "\n".join("\n".join(parts) for parts in messages)
    return count_text(text, o200k) + PER_MESSAGE * len(messages)


def prompt_tokens(body: dict[str, Any], endpoint: str, o200k: bool) -> int:
    messages = chat_messages(body) if endpoint == CHAT else responses_messages(body)
    total = count_messages(messages, o200k) + REPLY_PRIMING
    schema = schema_of(body, endpoint)
    if schema is not None:
        total += count_text(orjson.dumps(schema).decode(), o200k)
    return total


def prefix(body: dict[str, Any], endpoint: str) -> list[list[str]]:
    """The messages before the last: what automatic prompt caching can reuse across requests."""
    messages = chat_messages(body) if endpoint == CHAT else responses_messages(body)
    return messages[:-1]
