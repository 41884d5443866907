"""Batches: inserting one with its items, reading, listing, and the conditional writes of its status."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import insert, update
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from service.kit.clock import utcnow
from service.models import OPEN_BATCH_STATUSES, Batch, BatchStatus, Item
from service.store.unit import rows_affected


async def insert_batch(session: AsyncSession, batch: Batch, items: Sequence[tuple[str, dict[str, Any]]]) -> None:
    """The batch and its items, in the caller's transaction (all or nothing)."""
    session.add(batch)
    await session.flush()
    await session.execute(
        insert(Item),
        [
            {"batch_id": batch.id, "custom_id": custom_id, "position": position, "body": body, "status": "pending"}
            for position, (custom_id, body) in enumerate(items)
        ],
    )


async def get_batch(session: AsyncSession, batch_id: str) -> Batch | None:
    return await session.get(Batch, batch_id)


async def get_batch_fresh(session: AsyncSession, batch_id: str) -> Batch | None:
    """The batch as the database has it now, not as this session last saw it."""
    return await session.get(Batch, batch_id, populate_existing=True)


async def list_batches(
    session: AsyncSession, *, status: str | None, after: str | None, limit: int
) -> tuple[list[Batch], bool]:
    query = select(Batch).order_by(col(Batch.id).desc())
    if status:
        query = query.where(Batch.status == status)
    if after:
        query = query.where(Batch.id < after)
    rows = list((await session.exec(query.limit(limit + 1))).all())
    return rows[:limit], len(rows) > limit


async def cancel_requested(session: AsyncSession, batch_id: str) -> bool:
    return bool(await session.scalar(select(Batch.cancel_requested).where(Batch.id == batch_id)))


async def request_cancel(session: AsyncSession, batch_id: str) -> bool:
    """Mark an open batch for cancelling; False when it is already finished."""
    result = await session.execute(
        update(Batch)
        .where(col(Batch.id) == batch_id, col(Batch.status).in_(OPEN_BATCH_STATUSES))
        .values(cancel_requested=True, updated_at=utcnow())
    )
    return rows_affected(result) > 0


async def reopen(session: AsyncSession, batch_id: str, expected_status: str) -> bool:
    """A finished batch runs again (a retry); False when its status is no longer `expected_status`."""
    result = await session.execute(
        update(Batch)
        .where(col(Batch.id) == batch_id, col(Batch.status) == expected_status)
        .values(status=BatchStatus.RUNNING, cancel_requested=False, finished_at=None, updated_at=utcnow())
    )
    return rows_affected(result) > 0


async def fence_open_batch(session: AsyncSession, batch_id: str, worker_id: str) -> bool:
    """The first statement of a worker's step on a batch: it locks the row (the database, on SQLite) until
    commit, and matches nothing once another worker holds the batch or it has finished."""
    result = await session.execute(
        update(Batch)
        .where(
            col(Batch.id) == batch_id,
            col(Batch.lease_owner) == worker_id,
            col(Batch.status).in_(OPEN_BATCH_STATUSES),
        )
        .values(updated_at=utcnow())
    )
    return rows_affected(result) > 0


async def set_status(
    session: AsyncSession, batch_id: str, status: str, *, finished_at: datetime | None = None, release: bool = False
) -> None:
    """Write the batch's status (the lifecycle layer is the only caller). `release`: a finished batch holds no
    lease, even if its worker dies right after."""
    values: dict[str, Any] = {"status": status, "updated_at": utcnow()}
    if finished_at is not None:
        values["finished_at"] = finished_at
    if release:
        values |= {"lease_owner": None, "lease_expires_at": None}
    await session.execute(update(Batch).where(col(Batch.id) == batch_id).values(**values))
