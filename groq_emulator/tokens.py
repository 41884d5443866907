"""Offline o200k token counting that no text length can make fail (shared by the emulators)."""

from __future__ import annotations

import functools
from typing import Any

PIECE_CHARS = 40_000  # characters counted in one call of the tokenizer (a character is at most 4 tokens)


@functools.lru_cache(maxsize=1)
def o200k() -> Any:
    import bpe_openai

    return bpe_openai.get_encoding("o200k_base")


def pieces(text: str) -> list[str]:
    """The tokenizer refuses one call over 200,000 tokens or 1,000,000 characters: long text goes in pieces,
    each cut before a whitespace where one is near (so a piece ends where a pretoken does)."""
    parts: list[str] = []
    start = 0
    while len(text) - start > PIECE_CHARS:
        end = start + PIECE_CHARS
        cut = max(text.rfind(" ", end - 1_000, end), text.rfind("\n", end - 1_000, end))
        end = cut if cut > start else end
        parts.append(text[start:end])
        start = end
    parts.append(text[start:])
    return parts


def count_o200k(text: str) -> int:
    """The o200k tokens of ``text``, whatever its length."""
    encoding = o200k()
    return sum(len(encoding.encode_ordinary(piece)) for piece in pieces(text))
