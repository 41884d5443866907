"""Prompt tokens and prompt caching. No Anthropic vocabulary exists offline, so tokens are counted with a
fixed ratio, deterministically: ``ceil(characters / chars_per_token)`` of each part (tools as JSON, system,
each message's text, the output schema as JSON) plus ``PER_MESSAGE`` tokens a message.

A part marked ``cache_control`` ends a cacheable prefix (tools, then system, then messages, in that order; a
top-level ``cache_control`` marks the last part). The first request with a prefix of at least the model's
``min_cache_tokens`` writes it (``cache_creation_input_tokens``, split by ``ttl`` 5m/1h); a later one within
the TTL reads it (``cache_read_input_tokens``); ``input_tokens`` is the rest.
"""

from __future__ import annotations

import hashlib
import math
import random
import threading
from dataclasses import dataclass
from typing import Any

import orjson

PER_MESSAGE = 4
TTLS = {"5m": 300.0, "1h": 3600.0}


@dataclass(frozen=True)
class Part:
    text: str
    breakpoint: str | None  # the cache_control ttl ("5m"/"1h") when the part ends a cacheable prefix
    message: bool = False  # a message's first part (carries the per-message tokens)


def _ttl(block: Any) -> str | None:
    control = block.get("cache_control") if isinstance(block, dict) else None
    if not isinstance(control, dict):
        return None
    ttl = control.get("ttl", "5m")
    return ttl if ttl in TTLS else "5m"


def _blocks(content: Any) -> list[tuple[str, str | None]]:
    if isinstance(content, str):
        return [(content, None)]
    if not isinstance(content, list):
        return []
    found: list[tuple[str, str | None]] = []
    for block in content:
        if isinstance(block, dict):
            text = block["text"] if isinstance(block.get("text"), str) else orjson.dumps(block).decode()
            found.append((text, _ttl(block)))
    return found


def parts(params: dict[str, Any], schema: Any) -> list[Part]:
    """The prompt in order, with its cache breakpoints."""
    found: list[Part] = []
    tools = params.get("tools")
    if isinstance(tools, list):
        found.extend(Part(orjson.dumps(tool).decode(), _ttl(tool)) for tool in tools)
    found.extend(Part(text, ttl) for text, ttl in _blocks(params.get("system")))
    messages = params.get("messages")
    for message in messages if isinstance(messages, list) else []:
        blocks = _blocks(message.get("content")) if isinstance(message, dict) else []
        found.extend(Part(text, ttl, index == 0) for index, (text, ttl) in enumerate(blocks or [("", None)]))
    if schema is not None:
        found.append(Part(orjson.dumps(schema).decode(), None))
    top = _ttl(params)
    if top is not None and found:
        last = len(found) - 1 - (schema is not None)
        if last >= 0:
            found[last] = Part(found[last].text, found[last].breakpoint or top, found[last].message)
    return found


def count(part: Part, chars_per_token: float) -> int:
    return math.ceil(len(part.text) / chars_per_token) + (PER_MESSAGE if part.message else 0)


@dataclass(frozen=True)
class Split:
    uncached: int
    written: int
    read: int
    ttl: str | None

    @property
    def total(self) -> int:
        return self.uncached + self.written + self.read


class PromptCache:
    def __init__(self) -> None:
        self._until: dict[str, float] = {}
        self._lock = threading.Lock()

    def clear(self) -> None:
        with self._lock:
            self._until.clear()

    def split(
        self, model: str, prompt: list[Part], ratio: float, minimum: int, at: float, hit: random.Random, rate: float
    ) -> Split:
        """How the prompt's tokens are billed at ``at``: cache reads, cache writes, the rest."""
        counts = [count(part, ratio) for part in prompt]
        total = sum(counts)
        ends = [i for i, part in enumerate(prompt) if part.breakpoint is not None]
        if not ends:
            return Split(total, 0, 0, None)
        end = ends[-1]
        prefix = sum(counts[: end + 1])
        if prefix < minimum:
            return Split(total, 0, 0, None)
        ttl = prompt[end].breakpoint or "5m"
        digest = hashlib.sha256(model.encode())
        for part in prompt[: end + 1]:
            digest.update(b"\x1e" + part.text.encode())
        key = digest.hexdigest()
        with self._lock:
            warm = self._until.get(key, -math.inf) >= at and hit.random() < rate
            self._until[key] = max(self._until.get(key, -math.inf), at + TTLS[ttl])
        if warm:
            return Split(total - prefix, 0, prefix, ttl)
        return Split(total - prefix, prefix, 0, ttl)
