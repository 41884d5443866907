"""Chunks: the provider batches of a pass (`provider_batches`), each at most one Groq batch.

Every write a worker makes to a chunk it holds goes through `update_held` (the fence: the expected state and
this worker's lease), so a worker that was paused past its lease changes nothing when it wakes.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any

from sqlalchemy import update
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from service.kit.clock import utcnow
from service.models import Batch, Chunk, ChunkState, Pass
from service.store.unit import rows_affected


async def insert(session: AsyncSession, chunks: Iterable[Chunk]) -> None:
    session.add_all(list(chunks))
    await session.flush()


async def save(session: AsyncSession, chunk: Chunk) -> None:
    session.add(chunk)
    await session.flush()


async def get(session: AsyncSession, chunk_id: int) -> Chunk:
    return await session.get_one(Chunk, chunk_id)


async def with_pass_and_batch(session: AsyncSession, chunk_id: int) -> tuple[Chunk, Pass, Batch]:
    chunk = await session.get_one(Chunk, chunk_id)
    pass_ = await session.get_one(Pass, chunk.pass_id)
    batch = await session.get_one(Batch, chunk.batch_id)
    return chunk, pass_, batch


async def submitted_of_batch(session: AsyncSession, batch_id: str) -> list[Chunk]:
    result = await session.exec(
        select(Chunk).where(
            Chunk.batch_id == batch_id,
            Chunk.state == ChunkState.SUBMITTED,
        )
    )
    return list(result.all())


async def log_fields(session: AsyncSession, chunk_id: int) -> dict[str, object]:
    """The batch, pass number and provider batch of a chunk, for the log lines of a step on it."""
    row = (
        await session.execute(
            select(Chunk.batch_id, Pass.number, Chunk.provider_batch_id)
            .join(Pass, col(Pass.id) == col(Chunk.pass_id))
            .where(col(Chunk.id) == chunk_id)
        )
    ).one_or_none()
    if row is None:
        return {}
    batch_id, pass_number, provider_batch_id = row
    return {"batch_id": batch_id, "pass_number": pass_number, "provider_batch_id": provider_batch_id}


async def update_held(
    session: AsyncSession, worker_id: str, chunk_id: int, expected_state: str, **values: object
) -> bool:
    """Write to a chunk only while it is in `expected_state` and this worker holds its lease (the fence)."""
    result = await session.execute(
        update(Chunk)
        .where(
            col(Chunk.id) == chunk_id,
            col(Chunk.state) == expected_state,
            col(Chunk.lease_owner) == worker_id,
        )
        .values(**values)
    )
    return rows_affected(result) > 0


async def record_provider_state(session: AsyncSession, chunk_id: int, values: Mapping[str, Any]) -> None:
    """What Groq last said of the chunk's batch (id, status, counts, files, errors)."""
    await session.execute(update(Chunk).where(col(Chunk.id) == chunk_id).values(**values))


async def defer_held(
    session: AsyncSession, worker_id: str, chunk_id: int, *, until: datetime, retry_count: int, error: str
) -> None:
    await session.execute(
        update(Chunk)
        .where(col(Chunk.id) == chunk_id, col(Chunk.lease_owner) == worker_id)
        .values(next_action_at=until, retry_count=retry_count, last_error=error[:2000])
    )


async def note_cancel_sent(session: AsyncSession, chunk_id: int, provider_status: str) -> None:
    """After asking Groq to cancel: poll the chunk at once to ingest whatever it kept."""
    await session.execute(
        update(Chunk)
        .where(col(Chunk.id) == chunk_id, col(Chunk.state) == ChunkState.SUBMITTED)
        .values(provider_status=provider_status, next_action_at=utcnow())
    )
