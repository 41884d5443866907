"""Picking due work with a lease: the one module where SQLite and PostgreSQL differ for the workers.

One statement picks the next due row and leases it: `UPDATE … WHERE id = (SELECT id … LIMIT 1 FOR UPDATE SKIP
LOCKED) RETURNING id`. On PostgreSQL, SKIP LOCKED lets concurrent workers pass over a row another one is
claiming instead of queueing behind it, so no two workers ever pick the same row. SQLite has no row locks
(SQLAlchemy leaves FOR UPDATE out there); the claim runs inside `BEGIN IMMEDIATE` instead, which takes the
database's single write lock before reading (queueing on the busy timeout, with WAL so readers go on), so the
pick and the lease are one atomic step across processes as well.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Collection, Sequence
from contextlib import asynccontextmanager
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, Select, or_, text, update
from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from service.models import Batch, BatchStatus, ProviderBatch, utcnow
from service.workers.context import WorkerContext


def _is_sqlite(session: AsyncSession) -> bool:
    return session.get_bind().dialect.name == "sqlite"


@asynccontextmanager
async def write_transaction(sessions: async_sessionmaker[AsyncSession]) -> AsyncIterator[AsyncSession]:
    """A transaction whose reads must still hold when it writes. SQLite: BEGIN IMMEDIATE takes the write lock
    first. PostgreSQL: a plain transaction; callers lock what they decide on (FOR UPDATE, or a conditional
    UPDATE as the first statement)."""
    async with sessions() as session, session.begin():
        if _is_sqlite(session):
            await session.execute(text("BEGIN IMMEDIATE"))
        yield session


async def lease_first(
    sessions: async_sessionmaker[AsyncSession],
    table: Any,
    due: Select[Any],
    *,
    owner: str,
    lease_seconds: float,
    returning: Sequence[Any],
) -> tuple[Any, ...] | None:
    """Lease the first row `due` selects (its id column) in one statement; the `returning` columns of it, or None.
    `due` must already filter out rows whose lease is held and unexpired."""
    pick = due.limit(1).with_for_update(skip_locked=True)
    async with write_transaction(sessions) as session:
        claimed = await session.execute(
            update(table)
            .where(table.id == pick.scalar_subquery())
            .values(lease_owner=owner, lease_expires_at=utcnow() + timedelta(seconds=lease_seconds))
            .returning(*returning)
            .execution_options(synchronize_session=False)
        )
        row = claimed.one_or_none()
    return None if row is None else tuple(row)


def lease_is_free(table: Any, now: datetime) -> ColumnElement[bool]:
    return or_(col(table.lease_owner).is_(None), col(table.lease_expires_at) < now)


async def claim_next_chunk(ctx: WorkerContext, states: Collection[str], *conditions: ColumnElement[bool]) -> int | None:
    """Lease the chunk in one of `states` (and meeting `conditions`) that has been due longest and that nobody
    holds; its id, or None."""
    now = utcnow()
    due = (
        select(ProviderBatch.id)
        .where(
            col(ProviderBatch.state).in_(states),
            col(ProviderBatch.next_action_at) <= now,
            lease_is_free(ProviderBatch, now),
            *conditions,
        )
        .order_by(col(ProviderBatch.next_action_at), col(ProviderBatch.id))
    )
    row = await lease_first(
        ctx.sessions,
        ProviderBatch,
        due,
        owner=ctx.worker_id,
        lease_seconds=ctx.lease_seconds,
        returning=[col(ProviderBatch.id)],
    )
    return None if row is None else int(row[0])


async def claim_next_batch(ctx: WorkerContext, skip: Collection[str] = ()) -> str | None:
    """Lease the oldest open batch that nobody holds and that is not in `skip` (those this sweep already saw)."""
    now = utcnow()
    due = (
        select(Batch.id)
        .where(
            col(Batch.status).in_((BatchStatus.QUEUED, BatchStatus.RUNNING)),
            lease_is_free(Batch, now),
        )
        .order_by(col(Batch.created_at), col(Batch.id))
    )
    if skip:
        due = due.where(col(Batch.id).not_in(list(skip)))
    row = await lease_first(
        ctx.sessions, Batch, due, owner=ctx.worker_id, lease_seconds=ctx.lease_seconds, returning=[col(Batch.id)]
    )
    return None if row is None else str(row[0])
