"""The unit of work: one transaction per request or worker step, committed at its edge."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from sqlalchemy.ext.asyncio import async_sessionmaker
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
