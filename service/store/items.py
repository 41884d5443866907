"""Items: counts by status, the failed ones, one by custom_id, the ones a pass takes, the ones a chunk holds."""

from __future__ import annotations

from collections.abc import AsyncIterator, Collection, Sequence
from typing import Any

from sqlalchemy import func, update
from sqlalchemy import select as sa_select
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from service.models import Attempt, Item, ItemStatus

SPOOL_FETCH_ROWS = 1000


async def status_counts(session: AsyncSession, batch_id: str) -> dict[str, int]:
    rows = await session.execute(
        select(Item.status, func.count()).where(Item.batch_id == batch_id).group_by(Item.status)
    )
    return {status: count for status, count in rows}


async def failed_bodies(session: AsyncSession, batch_id: str) -> dict[str, dict[str, Any]]:
    """custom_id -> body of every item that currently counts as failed."""
    rows = await session.execute(
        sa_select(col(Item.custom_id), col(Item.body)).where(
            col(Item.batch_id) == batch_id, col(Item.status) == ItemStatus.FAILED
        )
    )
    return {custom_id: body for custom_id, body in rows}


async def find(session: AsyncSession, batch_id: str, custom_id: str) -> Item | None:
    result = await session.exec(select(Item).where(Item.batch_id == batch_id, Item.custom_id == custom_id))
    return result.first()


async def for_pass(
    session: AsyncSession, batch_id: str, *, failed_only: bool, custom_ids: Collection[str] | None
) -> list[Any]:
    """(id, custom_id, body) of the items a pass takes, in submission order."""
    query = sa_select(col(Item.id), col(Item.custom_id), col(Item.body)).where(col(Item.batch_id) == batch_id)
    if failed_only:
        query = query.where(col(Item.status) == ItemStatus.FAILED)
    rows = list((await session.execute(query.order_by(col(Item.position)))).all())
    if custom_ids is not None:
        wanted = set(custom_ids)
        rows = [row for row in rows if row.custom_id in wanted]
    return rows


async def mark_pending(session: AsyncSession, item_ids: Sequence[int]) -> None:
    if item_ids:
        await session.execute(update(Item), [{"id": item_id, "status": ItemStatus.PENDING} for item_id in item_ids])


async def decide(session: AsyncSession, decisions: Sequence[tuple[int, str, int]]) -> None:
    """(item id, status, deciding attempt id): the merged row of each item follows its deciding attempt."""
    if decisions:
        await session.execute(
            update(Item),
            [
                {"id": item_id, "status": status, "deciding_attempt_id": attempt_id}
                for item_id, status, attempt_id in decisions
            ],
        )


async def stream_for_chunk(session: AsyncSession, chunk_id: int) -> AsyncIterator[tuple[str, dict[str, Any]]]:
    """(custom_id, body) of every item in a chunk, in submission order, fetched a thousand rows at a time."""
    query = (
        sa_select(col(Item.custom_id), col(Item.body))
        .join(Attempt, col(Attempt.item_id) == col(Item.id))
        .where(col(Attempt.provider_batch_row_id) == chunk_id)
        .order_by(col(Item.position))
        .execution_options(yield_per=SPOOL_FETCH_ROWS)
    )
    result = await session.stream(query)
    async for custom_id, body in result:
        yield custom_id, body
