"""Idempotency keys: claimed by the first request, completed with its answer in the transaction of its work.

(tenant, key) is the primary key, which is what makes one key one request across replicas.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import delete, insert, or_, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from service.kit.clock import utcnow
from service.models import IdempotencyKey, IdempotencyState
from service.store.unit import rows_affected, transaction

PURGE_CHUNK = 1000


async def claim(
    sessions: async_sessionmaker[AsyncSession],
    *,
    tenant: str,
    key: str,
    request_hash: str,
    method: str,
    path: str,
    owner: str,
    locked_until: datetime,
    expires_at: datetime,
) -> bool:
    """Take the key for this request (True), or find it held (False). An expired key, or one whose holder
    died, is deleted first, as the first statement of the transaction (so SQLite takes its write lock at once)."""
    now = utcnow()
    try:
        async with transaction(sessions) as session:
            await session.execute(
                delete(IdempotencyKey).where(
                    col(IdempotencyKey.tenant) == tenant,
                    col(IdempotencyKey.key) == key,
                    or_(
                        col(IdempotencyKey.expires_at) < now,
                        (col(IdempotencyKey.state) == IdempotencyState.IN_PROGRESS)
                        & (col(IdempotencyKey.locked_until) < now),
                    ),
                )
            )
            await session.execute(
                insert(IdempotencyKey).values(
                    tenant=tenant,
                    key=key,
                    request_hash=request_hash,
                    method=method,
                    path=path,
                    state=IdempotencyState.IN_PROGRESS,
                    owner=owner,
                    locked_until=locked_until,
                    created_at=now,
                    expires_at=expires_at,
                )
            )
    except IntegrityError:
        return False
    return True


async def find(sessions: async_sessionmaker[AsyncSession], tenant: str, key: str) -> IdempotencyKey | None:
    async with sessions() as session:
        return await session.get(IdempotencyKey, (tenant, key))


async def complete(
    session: AsyncSession, *, tenant: str, key: str, owner: str, status: int, body: str, location: str | None
) -> bool:
    """Store the answer with the work, in the caller's transaction; False when our claim was taken over."""
    stored = await session.execute(
        update(IdempotencyKey)
        .where(
            col(IdempotencyKey.tenant) == tenant,
            col(IdempotencyKey.key) == key,
            col(IdempotencyKey.owner) == owner,
            col(IdempotencyKey.state) == IdempotencyState.IN_PROGRESS,
        )
        .values(
            state=IdempotencyState.COMPLETED,
            response_status=status,
            response_body=body,
            response_location=location,
        )
    )
    return rows_affected(stored) > 0


async def give_back(sessions: async_sessionmaker[AsyncSession], *, tenant: str, key: str, owner: str) -> None:
    async with transaction(sessions) as session:
        await session.execute(
            delete(IdempotencyKey).where(
                col(IdempotencyKey.tenant) == tenant,
                col(IdempotencyKey.key) == key,
                col(IdempotencyKey.owner) == owner,
                col(IdempotencyKey.state) == IdempotencyState.IN_PROGRESS,
            )
        )


async def purge_expired(sessions: async_sessionmaker[AsyncSession]) -> int:
    purged = 0
    while True:
        async with transaction(sessions) as session:
            expired = select(IdempotencyKey.key).where(col(IdempotencyKey.expires_at) < utcnow()).limit(PURGE_CHUNK)
            result = await session.execute(
                delete(IdempotencyKey).where(
                    col(IdempotencyKey.key).in_(expired), col(IdempotencyKey.expires_at) < utcnow()
                )
            )
        count = rows_affected(result)
        purged += count
        if count < PURGE_CHUNK:
            return purged
