"""Long loops on the event loop give way to it every few hundred steps.

The API and the workers share one event loop per process: a loop over thousands of rows that never awaits holds
every request (`/healthz` included) until it ends. Looping through `each` lets the loop run between slices, so
no single turn of it lasts more than a few tens of milliseconds whatever the size of the batch.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterable
from typing import TypeVar

T = TypeVar("T")

STEPS_PER_TURN = 250  # rows handled between two turns of the event loop (~10-30 ms of work on this machine)


async def give_way() -> None:
    """Let the event loop run whatever is ready before going on."""
    await asyncio.sleep(0)


async def each(items: Iterable[T], per_turn: int = STEPS_PER_TURN) -> AsyncIterator[T]:
    """The items, one by one, giving way to the event loop after every `per_turn` of them."""
    for count, item in enumerate(items, 1):
        yield item
        if count % per_turn == 0:
            await give_way()
