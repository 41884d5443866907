"""Plausible words and sentences for generated content, seeded from the prompt when possible."""

from __future__ import annotations

import random
import re
from collections.abc import Sequence
from typing import Any

FALLBACK_WORDS = [
    "change",
    "refactor",
    "handler",
    "request",
    "response",
    "cache",
    "database",
    "migration",
    "config",
    "service",
    "client",
    "error",
    "timeout",
    "retry",
    "logging",
    "metrics",
    "test",
    "coverage",
    "schema",
    "validation",
    "parser",
    "endpoint",
    "worker",
    "queue",
    "session",
    "token",
    "permission",
    "module",
    "function",
    "interface",
    "dependency",
    "release",
    "deployment",
    "performance",
    "memory",
    "latency",
    "security",
    "input",
    "output",
    "record",
    "update",
    "review",
    "commit",
    "branch",
]

_VERBS = ("updates", "refactors", "fixes", "adds", "removes", "improves", "simplifies", "documents", "tests")
_LINKS = ("in the", "for the", "and the", "to reduce", "without changing the", "so that the", "around the")
_STOPWORDS = frozenset(
    [
        "this",
        "that",
        "with",
        "from",
        "have",
        "will",
        "your",
        "what",
        "when",
        "where",
        "which",
        "their",
        "there",
        "these",
        "those",
        "about",
        "into",
        "only",
        "other",
        "than",
        "then",
        "them",
        "they",
        "were",
        "been",
        "being",
        "would",
        "could",
        "should",
        "must",
        "each",
        "every",
        "some",
        "such",
        "very",
        "also",
        "just",
        "like",
        "more",
        "most",
        "over",
        "under",
        "json",
        "schema",
        "respond",
        "object",
        "validates",
        "against",
        "following",
        "return",
        "answer",
        "please",
        "using",
        "given",
        "type",
        "string",
        "integer",
        "number",
        "boolean",
        "array",
        "null",
        "properties",
        "required",
        "items",
        "enum",
        "description",
        "additionalproperties",
        "false",
        "true",
    ]
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


def prompt_words(texts: Sequence[str], limit: int = 60) -> list[str]:
    """Distinct content words from the prompt, ignoring any embedded JSON Schema text."""
    words: dict[str, None] = {}
    for text in texts:
        cut = text.find(SCHEMA_MARKER)
        for match in _WORD_RE.finditer(text if cut < 0 else text[:cut]):
            word = match.group().lower()
            if word not in _STOPWORDS:
                words[word] = None
                if len(words) >= limit:
                    return list(words)
    return list(words)


class TextMaker:
    def __init__(self, rng: random.Random, words: Sequence[str]) -> None:
        self.rng = rng
        self.words = list(words)
        self._mix = 1.0 if len(self.words) >= 12 else 0.6 if self.words else 0.0  # share of prompt words

    def word(self) -> str:
        if self._mix and (self._mix == 1.0 or self.rng.random() < self._mix):
            return self.rng.choice(self.words)
        return self.rng.choice(FALLBACK_WORDS)

    def phrase(self, low: int = 1, high: int = 4) -> str:
        return " ".join(self.word() for _ in range(self.rng.randint(low, high)))

    def title(self) -> str:
        return self.phrase(2, 4).title()

    def sentence(self, low: int = 8, high: int = 18) -> str:
        """A sentence of roughly ``low``..``high`` words: verb, object, and a linking clause."""
        size = self.rng.randint(low, high)
        head = self.phrase(max(1, size // 2 - 2), max(1, size // 2))
        tail = self.phrase(max(1, size - size // 2 - 3), max(1, size - size // 2 - 1))
        text = f"{self.rng.choice(_VERBS)} the {head} {self.rng.choice(_LINKS)} {tail}"
        return text[0].upper() + text[1:] + "."

    def paragraph(self, low: int = 2, high: int = 4) -> str:
        return " ".join(self.sentence() for _ in range(self.rng.randint(low, high)))

    def path(self) -> str:
        ext = self.rng.choice(("py", "ts", "go", "sql", "yaml"))
        return f"src/{self.word()}/{self.word()}_{self.word()}.{ext}"

    def identifier(self) -> str:
        return f"{self.word()}-{self.rng.randint(1, 9999)}"
