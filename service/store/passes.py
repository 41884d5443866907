"""Passes: one row per run of a batch's items through the Batch API on one model, with kept counters; and the
failure counts by code of each pass and of the batch's final failures."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from sqlalchemy import delete, func, update
from sqlalchemy.exc import IntegrityError
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from service.models import Chunk, ChunkState, FailureCount, Pass
from service.store.dialect import add_failure_counts
from service.store.unit import add_in_place

FINAL = 0  # the pass_id under which a batch's final failures are counted


class PassNumberTaken(Exception):
    """Another transaction created a pass with the same number first (two retries at once)."""


async def of_batch(session: AsyncSession, batch_id: str) -> list[Pass]:
    result = await session.exec(
        select(Pass)
        .where(col(Pass.batch_id) == batch_id)
        .order_by(col(Pass.number))
        .execution_options(populate_existing=True)
    )
    return list(result.all())


async def with_chunks(session: AsyncSession, batch_id: str) -> list[tuple[Pass, list[Chunk]]]:
    """The batch's passes in order, each with its provider batches in order: one statement."""
    result = await session.execute(
        select(Pass, Chunk)
        .outerjoin(Chunk, col(Chunk.pass_id) == col(Pass.id))
        .where(col(Pass.batch_id) == batch_id)
        .order_by(col(Pass.number), col(Chunk.id))
        .execution_options(populate_existing=True)
    )
    passes: dict[int, tuple[Pass, list[Chunk]]] = {}
    for pass_, chunk in result:
        assert pass_.id is not None
        _pass, chunks = passes.setdefault(pass_.id, (pass_, []))
        if chunk is not None:
            chunks.append(chunk)
    return list(passes.values())


async def get(session: AsyncSession, pass_id: int) -> Pass:
    return await session.get_one(Pass, pass_id)


async def insert(session: AsyncSession, batch_id: str, *, kind: str, model: str, **values: Any) -> Pass:
    """The batch's next pass (number = the highest so far + 1). Raises PassNumberTaken when a concurrent
    transaction took that number first."""
    highest = await session.scalar(select(func.max(Pass.number)).where(col(Pass.batch_id) == batch_id))
    pass_ = Pass(batch_id=batch_id, number=int(highest or 0) + 1, kind=kind, model=model, **values)
    session.add(pass_)
    try:
        await session.flush()
    except IntegrityError as error:
        raise PassNumberTaken(batch_id) from error
    return pass_


async def set_status(session: AsyncSession, pass_id: int, status: str, *, finished_at: datetime | None = None) -> None:
    values: dict[str, Any] = {"status": status}
    if finished_at is not None:
        values["finished_at"] = finished_at
    await session.execute(update(Pass).where(col(Pass.id) == pass_id).values(**values))


async def laid_out(
    session: AsyncSession,
    pass_id: int,
    *,
    status: str,
    sent_because: Mapping[str, int],
    strict_mode: bool,
    **counts: int,
) -> None:
    """What lay-out decided: the pass's status, why its items were sent, whether its lines are strict, and its
    first counts."""
    changes: dict[str, Any] = {"status": status, "sent_because": dict(sent_because), "strict_mode": strict_mode}
    changes |= {name: col(getattr(Pass, name)) + delta for name, delta in counts.items() if delta}
    await session.execute(update(Pass).where(col(Pass.id) == pass_id).values(**changes))


async def delete_unused(session: AsyncSession, pass_id: int) -> None:
    """A pass that took no item (every one waits for room in the budget): no attempt or chunk refers to it."""
    await session.execute(delete(Pass).where(col(Pass.id) == pass_id))


async def set_planned_items(session: AsyncSession, pass_id: int, planned_items: int) -> None:
    """The pass holds fewer items than were planned for it (the others wait for room in the budget)."""
    await session.execute(update(Pass).where(col(Pass.id) == pass_id).values(planned_items=planned_items))


PASS_COUNTERS = ("items", "succeeded", "failed", "reused", "input_tokens", "output_tokens", "cost_pico", "saved_pico")


async def add_to_counters(session: AsyncSession, pass_id: int, **deltas: int) -> None:
    await add_in_place(session, Pass, pass_id, PASS_COUNTERS, deltas, "pass")


async def open_chunk_count(session: AsyncSession, pass_id: int) -> int:
    count = await session.scalar(
        select(func.count()).select_from(Chunk).where(Chunk.pass_id == pass_id, Chunk.state != ChunkState.DONE)
    )
    return int(count or 0)


async def count_failures(session: AsyncSession, batch_id: str, pass_id: int, codes: Mapping[str, int]) -> None:
    """Add to the failure counts of a pass (or, with FINAL, of the batch's final failures)."""
    await add_failure_counts(session, batch_id, pass_id, {code: n for code, n in codes.items() if n})


async def failure_counts(session: AsyncSession, batch_id: str) -> dict[int, dict[str, int]]:
    """Pass id (FINAL: the batch's final failures) -> code -> count."""
    rows = await session.execute(
        select(FailureCount.pass_id, FailureCount.code, FailureCount.count).where(FailureCount.batch_id == batch_id)
    )
    counts: dict[int, dict[str, int]] = {}
    for pass_id, code, count in rows:
        if count:
            counts.setdefault(int(pass_id), {})[code] = int(count)
    return counts


async def replace_final_failures(session: AsyncSession, batch_id: str, codes: Mapping[str, int]) -> None:
    """Set the batch's final failure counts anew (after a retry took some failed items back)."""
    await session.execute(
        delete(FailureCount).where(col(FailureCount.batch_id) == batch_id, col(FailureCount.pass_id) == FINAL)
    )
    await add_failure_counts(session, batch_id, FINAL, codes)
