"""Deleting a batch's content and keeping its tombstone: marking it deleted, finding the batches a purge sweep is
due for, and the purge itself (one transaction, fenced on the purging worker's lease).

What goes: every item's request body, the items' metadata, routing overrides and error texts, every attempt's
output, content, error text, overrides and request hash (so reuse can never find it again), the chunks' provider
error texts and spool digests, the batch's params and output schema. What stays: the rows themselves with their
counts, statuses, tokens and cost, custom_ids, the tiers and passes, the timestamps.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import and_, delete, func, update
from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from service.kit.clock import utcnow
from service.models import TERMINAL_BATCH_STATUSES, Attempt, Batch, Chunk, Item, ItemBody, Pass
from service.store.leases import lease_first, lease_is_free
from service.store.unit import rows_affected

_TERMINAL = sorted(TERMINAL_BATCH_STATUSES)


async def mark_deleted(session: AsyncSession, batch_id: str) -> bool:
    """Record the DELETE (its first one only); whether this call recorded it."""
    result = await session.execute(
        update(Batch)
        .where(col(Batch.id) == batch_id, col(Batch.deleted_at).is_(None))
        .values(deleted_at=utcnow(), updated_at=utcnow())
    )
    return rows_affected(result) > 0


def due_for_purge(now: datetime, finished_before: datetime | None) -> list[Any]:
    """The batches a purge sweep takes: not purged, finished (nothing of them at the provider any more), nobody
    holding them, and deleted or (with retention on) finished before `finished_before`."""
    conditions = [
        col(Batch.purged_at).is_(None),
        col(Batch.status).in_(_TERMINAL),
        lease_is_free(Batch, now),
    ]
    deleted = and_(col(Batch.deleted_at).is_not(None), *conditions)
    if finished_before is None:
        return [deleted]
    expired = and_(col(Batch.finished_at).is_not(None), col(Batch.finished_at) < finished_before, *conditions)
    return [deleted, expired]


async def next_due(session: AsyncSession, finished_before: datetime | None, skip: Sequence[str] = ()) -> str | None:
    """A batch a purge is due for (a read: a sweep with nothing to purge takes no write lock)."""
    now = utcnow()
    for condition in due_for_purge(now, finished_before):
        query = select(Batch.id).where(condition)
        if skip:
            query = query.where(col(Batch.id).not_in(list(skip)))
        found = await session.scalar(query.limit(1))
        if found is not None:
            return str(found)
    return None


async def chunks_with_files(session: AsyncSession, batch_id: str) -> list[tuple[Chunk, int]]:
    """The batch's chunks whose files at the provider are not known to be deleted, with their pass numbers."""
    rows = await session.execute(
        select(Chunk, Pass.number)
        .join(Pass, col(Pass.id) == col(Chunk.pass_id))
        .where(col(Chunk.batch_id) == batch_id, col(Chunk.files_deleted_at).is_(None))
        .order_by(col(Chunk.id))
    )
    return [(chunk, int(number)) for chunk, number in rows]


async def chunk_ids(session: AsyncSession, batch_id: str) -> list[int]:
    rows = await session.execute(select(Chunk.id).where(col(Chunk.batch_id) == batch_id))
    return [int(row[0]) for row in rows]


async def note_files_deleted(session: AsyncSession, chunk_id: int) -> None:
    await session.execute(
        update(Chunk)
        .where(col(Chunk.id) == chunk_id, col(Chunk.files_deleted_at).is_(None))
        .values(files_deleted_at=utcnow())
    )


async def purge(session: AsyncSession, batch_id: str, worker_id: str) -> bool:
    """Purge the batch's content (the batch stays leased: `mark_purged` follows once the database's files are
    rid of it too); False (nothing changed) when the worker no longer holds it or it is open again. The fence is
    the first statement: it locks the row, so a retry cannot reopen the batch half-purged (nor after: it is
    marked deleted)."""
    now = utcnow()
    fenced = await session.execute(
        update(Batch)
        .where(
            col(Batch.id) == batch_id,
            col(Batch.lease_owner) == worker_id,
            col(Batch.status).in_(_TERMINAL),
            col(Batch.purged_at).is_(None),
        )
        .values(
            deleted_at=func.coalesce(col(Batch.deleted_at), now),  # a retention purge: its content is gone too
            params={},
            output_schema=None,
            updated_at=now,
        )
    )
    if rows_affected(fenced) == 0:
        return False
    items = select(Item.id).where(col(Item.batch_id) == batch_id).scalar_subquery()
    await session.execute(delete(ItemBody).where(col(ItemBody.item_id).in_(items)))
    await session.execute(
        update(Attempt)
        .where(col(Attempt.item_id).in_(items))
        .values(content=None, output_json=None, error_message=None, overrides_json=None, request_hash=None)
        .execution_options(synchronize_session=False)
    )
    await session.execute(
        update(Item)
        .where(col(Item.batch_id) == batch_id)
        .values(metadata_json=None, next_overrides_json=None, error_message=None)
        .execution_options(synchronize_session=False)
    )
    await session.execute(
        update(Chunk)
        .where(col(Chunk.batch_id) == batch_id)
        .values(provider_errors=None, last_error=None, spool_sha256=None)
        .execution_options(synchronize_session=False)
    )
    return True


async def mark_purged(session: AsyncSession, batch_id: str, worker_id: str) -> bool:
    """The purge of a batch this worker holds is complete: `purged_at` set, its lease released."""
    now = utcnow()
    result = await session.execute(
        update(Batch)
        .where(col(Batch.id) == batch_id, col(Batch.lease_owner) == worker_id, col(Batch.purged_at).is_(None))
        .values(purged_at=now, lease_owner=None, lease_expires_at=None, updated_at=now)
    )
    return rows_affected(result) > 0


async def claim_next(
    sessions: async_sessionmaker[AsyncSession],
    owner: str,
    lease_seconds: float,
    finished_before: datetime | None,
    skip: Sequence[str] = (),
) -> str | None:
    """Lease a batch a purge is due for (deleted ones first); its id, or None."""
    for condition in due_for_purge(utcnow(), finished_before):
        due = select(Batch.id).where(condition).order_by(col(Batch.id))
        if skip:
            due = due.where(col(Batch.id).not_in(list(skip)))
        row = await lease_first(
            sessions, Batch, due, owner=owner, lease_seconds=lease_seconds, returning=[col(Batch.id)]
        )
        if row is not None:
            return str(row[0])
    return None
