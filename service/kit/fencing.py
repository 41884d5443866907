"""Fencing a step on a leased row: the error that stops it once its lease is lost, and the few lines it marks to
run to the end even then (a provider call and the write recording it). The renewal that detects a loss is the
workers' (`service/workers/leasing.py`); the steps that use these are the lifecycle's.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from contextvars import ContextVar


class LeaseLost(Exception):
    """Another worker holds the row now: stop, and write nothing more about it."""


class TryLater(Exception):
    """The step cannot go on now, for a reason of ours (not the provider's, not a failure): run it again later."""

    def __init__(self, reason: str, seconds: float) -> None:
        super().__init__(reason)
        self.seconds = seconds


class Guard:
    """Counts the protected sections running in a step; cancellation waits until none is."""

    def __init__(self) -> None:
        self.depth = 0
        self.unprotected = asyncio.Event()
        self.unprotected.set()


current_guard: ContextVar[Guard | None] = ContextVar("lease_guard", default=None)


@asynccontextmanager
async def protected() -> AsyncIterator[None]:
    """Run to the end even if the lease is lost meanwhile (a no-op outside a leased step)."""
    guard = current_guard.get()
    if guard is None:
        yield
        return
    guard.depth += 1
    guard.unprotected.clear()
    try:
        yield
    finally:
        guard.depth -= 1
        if guard.depth == 0:
            guard.unprotected.set()
