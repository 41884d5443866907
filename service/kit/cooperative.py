"""Long loops on the event loop give way to it every few hundred steps.

The API and the workers share one event loop per process: a loop over thousands of rows that never awaits holds
every request (`/healthz` included) until it ends. Looping through `each` lets the loop run between slices, so
no single turn of it lasts more than a few tens of milliseconds whatever the size of the batch.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Iterable
from typing import TypeVar

T = TypeVar("T")

STEPS_PER_TURN = 250  # rows handled between two turns of the event loop (~10-30 ms of work on this machine)
TURN_SECONDS = 0.01  # the longest a loop whose steps vary in cost holds the event loop (see Turns)


async def give_way() -> None:
    """Let the event loop run whatever is ready before going on."""
    await asyncio.sleep(0)


async def each(items: Iterable[T], per_turn: int = STEPS_PER_TURN) -> AsyncIterator[T]:
    """The items, one by one, giving way to the event loop after every `per_turn` of them."""
    for count, item in enumerate(items, 1):
        yield item
        if count % per_turn == 0:
            await give_way()


class Turns:
    """Gives way to the event loop once the current turn has lasted TURN_SECONDS, however the work is divided:
    for loops whose steps vary in cost by orders of magnitude (an item of 200 bytes, or of 2 MB), where a count
    of steps bounds nothing. Call `check()` after each step; a single step longer than a turn belongs in a
    thread."""

    def __init__(self, seconds: float = TURN_SECONDS) -> None:
        self.seconds = seconds
        self.started = time.monotonic()

    async def check(self) -> None:
        if time.monotonic() - self.started >= self.seconds:
            await give_way()
            self.started = time.monotonic()
