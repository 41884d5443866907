"""service.kit.cooperative: a long loop through `each` lets other tasks run between slices, and only there."""

from __future__ import annotations

import asyncio

from service.kit.cooperative import each


async def _turns_taken_by_others(items: int, per_turn: int) -> tuple[list[int], int]:
    """Iterate `items` through `each` without awaiting anything else; how often a concurrent task ran."""
    turns = 0
    stop = asyncio.Event()

    async def other_task() -> None:
        nonlocal turns
        while not stop.is_set():
            turns += 1
            await asyncio.sleep(0)

    task = asyncio.create_task(other_task())
    await asyncio.sleep(0)  # the other task is now waiting for its next turn
    turns = 0
    seen = [item async for item in each(range(items), per_turn)]
    taken = turns
    stop.set()
    await task
    return seen, taken


async def test_every_item_comes_through_in_order() -> None:
    seen, _ = await _turns_taken_by_others(1000, 250)
    assert seen == list(range(1000))


async def test_the_event_loop_runs_once_per_slice() -> None:
    _, turns = await _turns_taken_by_others(1000, 250)
    assert turns == 4


async def test_a_loop_shorter_than_a_slice_never_gives_way() -> None:
    _, turns = await _turns_taken_by_others(249, 250)
    assert turns == 0
