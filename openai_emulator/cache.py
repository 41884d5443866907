"""Automatic prompt caching: a prompt whose prefix (every message but the last) an earlier request of the same
model sent within the TTL reads that prefix from the cache, in steps of ``increment`` tokens, once it is at
least ``min_tokens`` long. The first request with a prefix writes it (OpenAI reports no write count for it)."""

from __future__ import annotations

import hashlib
import threading

from openai_emulator.tokens import count_messages


class PromptCache:
    def __init__(self, min_tokens: int, increment: int, ttl: float) -> None:
        self.min_tokens = min_tokens
        self.increment = increment
        self.ttl = ttl
        self._seen: dict[str, float] = {}
        self._lock = threading.Lock()

    def clear(self) -> None:
        with self._lock:
            self._seen.clear()

    def cached_tokens(self, model: str, prefix: list[list[str]], o200k: bool, at: float) -> int:
        """Cached tokens of a prompt sent at ``at``, remembering its prefix for later ones."""
        if not prefix:
            return 0
        size = count_messages(prefix, o200k)
        if size < self.min_tokens:
            return 0
        digest = hashlib.sha256(model.encode())
        for parts in prefix:
            digest.update(b"\x1e" + "\x1f".join(parts).encode())
        key = digest.hexdigest()
        with self._lock:
            last = self._seen.get(key)
            self._seen[key] = at
        if last is None or at - last > self.ttl:
            return 0
        return size // self.increment * self.increment
