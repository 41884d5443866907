"""How long to wait before trying the provider again: exponential, capped, jittered, Retry-After first."""

from __future__ import annotations

import random


def backoff_seconds(
    failures: int, *, base: float, cap: float, retry_after: float | None = None, jitter: float = 0.2
) -> float:
    """`base` * 2**`failures`, at most `cap`, spread by +-`jitter`; a provider's Retry-After (capped) wins."""
    if retry_after is not None:
        return float(min(retry_after, cap))
    delay = min(base * 2**failures, cap)
    return float(delay * random.uniform(1 - jitter, 1 + jitter))
