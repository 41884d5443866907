"""Passes: one row per run of a batch's items through the Batch API on one model."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import func, update
from sqlalchemy.exc import IntegrityError
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from service.models import ChunkState, Pass, ProviderBatch


class PassNumberTaken(Exception):
    """Another transaction created a pass with the same number first (two retries at once)."""


async def of_batch(session: AsyncSession, batch_id: str) -> list[Pass]:
    result = await session.exec(select(Pass).where(col(Pass.batch_id) == batch_id).order_by(col(Pass.number)))
    return list(result.all())


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


async def open_chunk_count(session: AsyncSession, pass_id: int) -> int:
    count = await session.scalar(
        select(func.count())
        .select_from(ProviderBatch)
        .where(ProviderBatch.pass_id == pass_id, ProviderBatch.state != ChunkState.DONE)
    )
    return int(count or 0)
