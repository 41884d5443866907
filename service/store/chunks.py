"""Chunks: the parts of a pass (table `provider_batches`), each run as at most one provider batch.

Every write a worker makes to a chunk it holds goes through `update_held` (the fence: the expected state and
this worker's lease), so a worker that was paused past its lease changes nothing when it wakes.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from sqlalchemy import update
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from service.kit.clock import utcnow
from service.models import Batch, Chunk, ChunkState, Pass
from service.providers.protocol import ProviderBatchInfo
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


async def to_cancel(session: AsyncSession, batch_id: str) -> list[tuple[Chunk, Pass]]:
    """The batch's chunks with a live provider batch that no cancel was sent for yet, with their pass."""
    result = await session.execute(
        select(Chunk, Pass)
        .join(Pass, col(Pass.id) == col(Chunk.pass_id))
        .where(
            col(Chunk.batch_id) == batch_id,
            col(Chunk.state) == ChunkState.SUBMITTED,
            col(Chunk.provider_batch_id).is_not(None),
            col(Chunk.cancel_sent_at).is_(None),
        )
    )
    return [(chunk, pass_) for chunk, pass_ in result.all()]


async def recorded_elsewhere(session: AsyncSession, chunk_id: int, provider_batch_ids: list[str]) -> set[str]:
    """Which of these provider batches other chunks have recorded as theirs."""
    rows = await session.execute(
        select(Chunk.provider_batch_id).where(
            col(Chunk.provider_batch_id).in_(provider_batch_ids), col(Chunk.id) != chunk_id
        )
    )
    return {str(found) for (found,) in rows}


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


async def record_provider_state(session: AsyncSession, chunk_id: int, info: ProviderBatchInfo) -> None:
    """What the provider last said of the chunk's batch (id, status, counts, files, errors)."""
    await session.execute(
        update(Chunk)
        .where(col(Chunk.id) == chunk_id)
        .values(
            provider_batch_id=info.id,
            input_file_id=info.input_file_id,
            provider_status=info.status,
            request_total=info.request_counts.total,
            request_completed=info.request_counts.completed,
            request_failed=info.request_counts.failed,
            output_file_id=info.output_file_id,
            error_file_id=info.error_file_id,
            provider_errors=info.errors or None,
        )
    )


async def defer_held(
    session: AsyncSession, worker_id: str, chunk_id: int, *, until: datetime, retry_count: int, error: str
) -> None:
    await session.execute(
        update(Chunk)
        .where(col(Chunk.id) == chunk_id, col(Chunk.lease_owner) == worker_id)
        .values(next_action_at=until, retry_count=retry_count, last_error=error[:2000])
    )


async def note_cancel_sent(session: AsyncSession, chunk_id: int, provider_status: str) -> None:
    """After asking the provider to cancel: poll the chunk at once to ingest whatever it kept."""
    now = utcnow()
    await session.execute(
        update(Chunk)
        .where(col(Chunk.id) == chunk_id, col(Chunk.state) == ChunkState.SUBMITTED)
        .values(provider_status=provider_status, cancel_sent_at=now, next_action_at=now)
    )
