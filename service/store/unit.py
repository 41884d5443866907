"""The unit of work: one transaction per request or worker step, committed at its edge."""

from __future__ import annotations

from collections.abc import AsyncIterator, Collection
from contextlib import asynccontextmanager
from typing import Any

from sqlalchemy import update
from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel import col
from sqlmodel.ext.asyncio.session import AsyncSession

Session = AsyncSession


@asynccontextmanager
async def transaction(sessions: async_sessionmaker[AsyncSession]) -> AsyncIterator[AsyncSession]:
    """One unit of work: commits at the edge, rolls back on any error."""
    async with sessions() as session, session.begin():
        yield session


def rows_affected(result: object) -> int:
    """Rows an UPDATE/DELETE matched: how conditional updates tell whether they won."""
    return int(getattr(result, "rowcount", 0) or 0)


async def add_in_place(
    session: AsyncSession, table: Any, row_id: object, counters: Collection[str], deltas: dict[str, int], what: str
) -> None:
    """`counter = counter + delta` for each of `deltas` in one statement on the row `row_id` of `table`:
    concurrent writers add up, never overwrite. A name that is not one of `counters` is a ValueError."""
    unknown = set(deltas) - set(counters)
    if unknown:
        raise ValueError(f"not a {what} counter: {sorted(unknown)}")
    changes = {name: col(getattr(table, name)) + delta for name, delta in deltas.items() if delta}
    if changes:
        await session.execute(update(table).where(col(table.id) == row_id).values(**changes))
