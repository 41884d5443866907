"""Plausible words and sentences for generated content, seeded from the prompt when possible."""

from __future__ import annotations

import functools
import random
import re
from collections.abc import Sequence
from typing import Any


def _wordlist(text: str) -> tuple[str, ...]:
    return tuple(text.split())


FALLBACK_WORDS = _wordlist(
    """change refactor handler request response cache database migration config service client error timeout
    retry logging metrics test coverage schema validation parser endpoint worker queue session token permission
    module function interface dependency release deployment performance memory latency security input output
    record update review commit branch"""
)
_VERBS = ("updates", "refactors", "fixes", "adds", "removes", "improves", "simplifies", "documents", "tests")
_LINKS = ("in the", "for the", "and the", "to reduce", "without changing the", "so that the", "around the")
_STOPWORDS = frozenset(
    _wordlist(
        """this that with from have will your what when where which their there these those about into only other
        than then them they were been being would could should must each every some such very also just like more
        most over under json schema respond object validates against following return answer please using given
        type string integer number boolean array null properties required items enum description
        additionalproperties false true"""
    )
)
_WORD_RE = re.compile(r"[A-Za-z][a-z]{3,14}")
SCHEMA_MARKER = "JSON Schema:"


def message_texts(messages: Any) -> list[str]:
    """The text of every message (string content or ``{"type":"text","text":...}`` parts)."""
    texts: list[str] = []
    if not isinstance(messages, list):
        return texts
    for message in messages:
        if not isinstance(message, dict):
            continue
        content = message.get("content")
        if isinstance(content, str):
            texts.append(content)
        elif isinstance(content, list):
            for part in content:
                if isinstance(part, dict) and isinstance(part.get("text"), str):
                    texts.append(part["text"])
    return texts


@functools.lru_cache(maxsize=1024)
def _words_of(text: str, limit: int) -> tuple[str, ...]:
    cut = text.find(SCHEMA_MARKER)
    words: dict[str, None] = {}
    for word in _WORD_RE.findall(text if cut < 0 else text[:cut]):
        word = word.lower()
        if word not in _STOPWORDS:
            words[word] = None
            if len(words) >= limit:
                break
    return tuple(words)


def prompt_words(texts: Sequence[str], limit: int = 60) -> list[str]:
    """Distinct content words from the prompt, ignoring any embedded JSON Schema text."""
    words: dict[str, None] = {}
    for text in texts:
        words.update(dict.fromkeys(_words_of(text[:2000], limit)))
        if len(words) >= limit:
            break
    return list(words)[:limit]


class TextMaker:
    """Words, phrases and sentences; prompt words are preferred, all randomness from ``rng``."""

    def __init__(self, rng: random.Random, words: Sequence[str]) -> None:
        self.rng = rng
        self.words = tuple(words)
        self._mix = 1.0 if len(self.words) >= 12 else 0.6 if self.words else 0.0  # share of prompt words

    def pick(self, options: Sequence[str]) -> str:
        return options[int(self.rng.random() * len(options))]

    def count(self, low: int, high: int) -> int:
        return low + int(self.rng.random() * (high - low + 1))

    def word(self) -> str:
        rnd = self.rng.random
        if self._mix == 1.0 or (self._mix and rnd() < self._mix):
            return self.words[int(rnd() * len(self.words))]
        return FALLBACK_WORDS[int(rnd() * len(FALLBACK_WORDS))]

    def phrase(self, low: int = 1, high: int = 4) -> str:
        return " ".join([self.word() for _ in range(self.count(low, high))])

    def title(self) -> str:
        return self.phrase(2, 4).title()

    def sentence(self, low: int = 8, high: int = 18) -> str:
        """A sentence of roughly ``low``..``high`` words: verb, object, and a linking clause."""
        size = self.count(low, high)
        head = self.phrase(max(1, size // 2 - 2), max(1, size // 2))
        tail = self.phrase(max(1, size - size // 2 - 3), max(1, size - size // 2 - 1))
        text = f"{self.pick(_VERBS)} the {head} {self.pick(_LINKS)} {tail}"
        return text[0].upper() + text[1:] + "."

    def paragraph(self, low: int = 2, high: int = 4) -> str:
        return " ".join([self.sentence() for _ in range(self.count(low, high))])

    def path(self) -> str:
        return f"src/{self.word()}/{self.word()}_{self.word()}.{self.pick(('py', 'ts', 'go', 'sql', 'yaml'))}"

    def identifier(self) -> str:
        return f"{self.word()}-{self.count(1, 9999)}"
