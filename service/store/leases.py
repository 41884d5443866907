"""Leases: claiming the next due row for one worker, renewing, releasing. Two workers never own one row.

`lease_first` picks and leases in one statement, `UPDATE … WHERE id = (SELECT id … LIMIT 1 FOR UPDATE SKIP
LOCKED) RETURNING …`, inside `write_transaction` (which takes SQLite's write lock first; see dialect.py).
Every later write by the owner is fenced on `lease_owner`.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, Select, and_, case, func, or_, update
from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from service.kit.clock import utcnow
from service.models import OPEN_BATCH_STATUSES, Batch, Chunk, WebhookDelivery, WebhookState
from service.store.dialect import write_transaction
from service.store.unit import rows_affected, transaction

LEASED_TABLES = (Chunk, Batch, WebhookDelivery)


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


async def claim_next_chunk(
    sessions: async_sessionmaker[AsyncSession],
    owner: str,
    lease_seconds: float,
    states: Collection[str],
    *,
    files_left: bool = False,
    skip_providers: Collection[str] = (),
) -> tuple[int, str] | None:
    """Lease the chunk in one of `states` that has been due longest and that nobody holds, of a provider not in
    `skip_providers`; its id and provider, or None. `files_left`: only chunks whose files on their provider are
    not deleted yet."""
    now = utcnow()
    due = (
        select(Chunk.id)
        .where(
            _chunks_in(states, files_left, skip_providers),
            col(Chunk.next_action_at) <= now,
            lease_is_free(Chunk, now),
        )
        .order_by(col(Chunk.next_action_at), col(Chunk.id))
    )
    returning = [col(Chunk.id), col(Chunk.provider)]
    row = await lease_first(sessions, Chunk, due, owner=owner, lease_seconds=lease_seconds, returning=returning)
    return None if row is None else (int(row[0]), str(row[1]))


def _chunks_in(states: Collection[str], files_left: bool, skip_providers: Collection[str] = ()) -> ColumnElement[bool]:
    condition: ColumnElement[bool] = col(Chunk.state).in_(states)
    if skip_providers:
        condition = and_(condition, col(Chunk.provider).not_in(sorted(skip_providers)))
    return and_(condition, col(Chunk.files_deleted_at).is_(None)) if files_left else condition


async def next_chunk_due(
    sessions: async_sessionmaker[AsyncSession],
    kinds: Sequence[tuple[Collection[str], bool]],
    *,
    skip_providers: Collection[str] = (),
) -> datetime | None:
    """When the first chunk of one of `kinds` ((states, files_left) as `claim_next_chunk` takes them) of a
    provider not in `skip_providers` can be claimed: its next action's time, or its lease's end if someone holds
    it longer. None: no such chunk."""
    held_longer = and_(
        col(Chunk.lease_owner).is_not(None),
        col(Chunk.lease_expires_at) > col(Chunk.next_action_at),
    )
    claimable_at = case((held_longer, col(Chunk.lease_expires_at)), else_=col(Chunk.next_action_at))
    async with sessions() as session:
        due = await session.scalar(
            select(func.min(claimable_at)).where(
                or_(*(_chunks_in(states, files, skip_providers) for states, files in kinds))
            )
        )
    return due if isinstance(due, datetime) else None


async def claim_next_batch(
    sessions: async_sessionmaker[AsyncSession], owner: str, lease_seconds: float, skip: Collection[str] = ()
) -> str | None:
    """Lease the oldest open batch that nobody holds and that is not in `skip` (those this sweep already saw)."""
    now = utcnow()
    due = (
        select(Batch.id)
        .where(col(Batch.status).in_(OPEN_BATCH_STATUSES), lease_is_free(Batch, now))
        .order_by(col(Batch.created_at), col(Batch.id))
    )
    if skip:
        due = due.where(col(Batch.id).not_in(list(skip)))
    row = await lease_first(sessions, Batch, due, owner=owner, lease_seconds=lease_seconds, returning=[col(Batch.id)])
    return None if row is None else str(row[0])


async def claim_next_delivery(
    sessions: async_sessionmaker[AsyncSession], owner: str, lease_seconds: float
) -> tuple[Any, ...] | None:
    """Lease the webhook delivery due longest: (id, message_id, url, payload, attempts, schedule_attempts)."""
    now = utcnow()
    due = (
        select(WebhookDelivery.id)
        .where(
            col(WebhookDelivery.state) == WebhookState.PENDING,
            col(WebhookDelivery.next_attempt_at) <= now,
            lease_is_free(WebhookDelivery, now),
        )
        .order_by(col(WebhookDelivery.next_attempt_at), col(WebhookDelivery.id))
    )
    return await lease_first(
        sessions,
        WebhookDelivery,
        due,
        owner=owner,
        lease_seconds=lease_seconds,
        returning=[
            col(WebhookDelivery.id),
            col(WebhookDelivery.message_id),
            col(WebhookDelivery.url),
            col(WebhookDelivery.payload),
            col(WebhookDelivery.attempts),
            col(WebhookDelivery.schedule_attempts),
        ],
    )


async def renew(session: AsyncSession, table: Any, row_id: Any, owner: str, lease_seconds: float) -> bool:
    """Extend a lease we still hold; False once another worker has taken it over."""
    result = await session.execute(
        update(table)
        .where(table.id == row_id, table.lease_owner == owner)
        .values(lease_expires_at=utcnow() + timedelta(seconds=lease_seconds))
    )
    return rows_affected(result) > 0


async def owner_of(session: AsyncSession, table: Any, row_id: Any) -> str | None:
    owner: str | None = await session.scalar(select(table.lease_owner).where(table.id == row_id))
    return owner


async def release(sessions: async_sessionmaker[AsyncSession], table: Any, row_id: Any, owner: str) -> None:
    async with transaction(sessions) as session:
        await session.execute(
            update(table)
            .where(table.id == row_id, table.lease_owner == owner)
            .values(lease_owner=None, lease_expires_at=None)
        )


async def release_everything(sessions: async_sessionmaker[AsyncSession], owner: str) -> None:
    """A stopping worker's last word: whatever it still holds is free at once, not when the lease runs out."""
    async with transaction(sessions) as session:
        for table in LEASED_TABLES:
            await session.execute(
                update(table).where(col(table.lease_owner) == owner).values(lease_owner=None, lease_expires_at=None)
            )


async def claim(
    sessions: async_sessionmaker[AsyncSession], table: Any, row_id: Any, owner: str, lease_seconds: float
) -> bool:
    """Lease one given row if nobody else holds it (or this owner already does)."""
    now = utcnow()
    async with transaction(sessions) as session:
        result = await session.execute(
            update(table)
            .where(table.id == row_id)
            .where(or_(table.lease_owner.is_(None), table.lease_owner == owner, table.lease_expires_at < now))
            .values(lease_owner=owner, lease_expires_at=now + timedelta(seconds=lease_seconds))
        )
    return rows_affected(result) > 0
