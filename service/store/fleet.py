"""What every replica shares about the fleet: live workers (`worker_heartbeats`) and each provider's health as
the workers last saw it (`provider_health`, a row per provider: its shared back-off, or circuit, and what /readyz
reports)."""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import delete, func, or_, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from service.kit.clock import utcnow
from service.models import Chunk, ChunkState, ProviderHealthRecord, WorkerHeartbeat
from service.store.unit import rows_affected, transaction

PROVIDER = "groq"  # the first provider, and the one a caller that names none means
ERROR_TEXT_LIMIT = 2000


# -- workers --------------------------------------------------------------------------------------------


async def announce_worker(
    sessions: async_sessionmaker[AsyncSession], worker_id: str, loops: list[str], *, stale_after: timedelta
) -> None:
    """Say this worker is alive (insert its row, or renew it); prune the rows of workers long dead."""
    now = utcnow()
    async with transaction(sessions) as session:
        renewed = await session.execute(
            update(WorkerHeartbeat).where(col(WorkerHeartbeat.worker_id) == worker_id).values(last_seen_at=now)
        )
        if not rows_affected(renewed):
            session.add(
                WorkerHeartbeat(
                    worker_id=worker_id,
                    hostname=socket.gethostname()[:255],
                    pid=os.getpid(),
                    loops=",".join(loops)[:255],
                    started_at=now,
                    last_seen_at=now,
                )
            )
        await session.execute(delete(WorkerHeartbeat).where(col(WorkerHeartbeat.last_seen_at) < now - stale_after))


async def retire_worker(sessions: async_sessionmaker[AsyncSession], worker_id: str) -> None:
    async with transaction(sessions) as session:
        await session.execute(delete(WorkerHeartbeat).where(col(WorkerHeartbeat.worker_id) == worker_id))


# -- the provider's health ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class ProviderHealth:
    """The shared record: failures in a row (any worker's) and the pause every worker observes."""

    consecutive_failures: int = 0
    last_error: str | None = None
    backoff_until: datetime | None = None  # only while in the future

    @property
    def degraded(self) -> bool:
        return self.consecutive_failures > 0 or self.backoff_until is not None


def _health(record: ProviderHealthRecord, now: datetime) -> ProviderHealth:
    until = record.backoff_until if record.backoff_until is not None and record.backoff_until > now else None
    degraded = record.consecutive_failures > 0 or until is not None
    return ProviderHealth(record.consecutive_failures, record.last_error if degraded else None, until)


async def provider_health(session: AsyncSession, provider: str = PROVIDER) -> ProviderHealth:
    record = await session.get(ProviderHealthRecord, provider)
    return ProviderHealth() if record is None else _health(record, utcnow())


async def every_provider_health(session: AsyncSession) -> dict[str, ProviderHealth]:
    """Each provider's record (a provider never seen failing has none)."""
    now = utcnow()
    return {record.provider: _health(record, now) for record in await session.exec(select(ProviderHealthRecord))}


async def count_failure(
    sessions: async_sessionmaker[AsyncSession], error: str, source: str | None = None, provider: str = PROVIDER
) -> tuple[int, bool]:
    """One more provider failure in a row, by `source` (a row's step, or None); the new count, and whether the
    failure before it came from the same source (one row failing again)."""
    now = utcnow()
    last_error = error[:ERROR_TEXT_LIMIT]
    this_provider = col(ProviderHealthRecord.provider) == provider
    for _ in range(2):  # the first failure ever inserts the row; two workers may race to do it
        try:
            async with transaction(sessions) as session:
                before = await session.scalar(select(ProviderHealthRecord.last_failure_source).where(this_provider))
                result = await session.execute(
                    update(ProviderHealthRecord)
                    .where(this_provider)
                    .values(
                        consecutive_failures=col(ProviderHealthRecord.consecutive_failures) + 1,
                        last_failure_source=source,
                        last_error=last_error,
                        last_error_at=now,
                    )
                    .returning(col(ProviderHealthRecord.consecutive_failures))
                )
                failures = result.scalar_one_or_none()
                if failures is not None:
                    return int(failures), source is not None and before == source
                session.add(
                    ProviderHealthRecord(
                        provider=provider,
                        consecutive_failures=1,
                        last_failure_source=source,
                        last_error=last_error,
                        last_error_at=now,
                    )
                )
                return 1, False
        except IntegrityError:
            continue
    return 1, False


async def pause_until(sessions: async_sessionmaker[AsyncSession], until: datetime, provider: str = PROVIDER) -> None:
    """Every worker pauses its work on `provider` until `until` (a later pause already set is kept)."""
    async with transaction(sessions) as session:
        await session.execute(
            update(ProviderHealthRecord)
            .where(
                col(ProviderHealthRecord.provider) == provider,
                or_(col(ProviderHealthRecord.backoff_until).is_(None), col(ProviderHealthRecord.backoff_until) < until),
            )
            .values(backoff_until=until)
        )


async def count_success(sessions: async_sessionmaker[AsyncSession], provider: str = PROVIDER) -> bool:
    """Close `provider`'s circuit; True if it was open or counting failures."""
    async with transaction(sessions) as session:
        result = await session.execute(
            update(ProviderHealthRecord)
            .where(col(ProviderHealthRecord.provider) == provider, col(ProviderHealthRecord.consecutive_failures) > 0)
            .values(consecutive_failures=0, last_failure_source=None, backoff_until=None, last_success_at=utcnow())
        )
        return rows_affected(result) > 0


async def take_send_slot(sessions: async_sessionmaker[AsyncSession], provider: str, chunk_id: int) -> bool:
    """The provider's send slot for `chunk_id`: free, this chunk's already, or held by a chunk that is no longer
    being sent (done, or gone); whether it was taken."""
    unresolved = select(Chunk.id).where(col(Chunk.state).in_((ChunkState.PENDING, ChunkState.UPLOADING)))
    free = or_(
        col(ProviderHealthRecord.sending_chunk_id).is_(None),
        col(ProviderHealthRecord.sending_chunk_id) == chunk_id,
        col(ProviderHealthRecord.sending_chunk_id).not_in(unresolved.scalar_subquery()),
    )
    for _ in range(2):  # the row may not exist yet; two workers may race to insert it
        try:
            async with transaction(sessions) as session:
                result = await session.execute(
                    update(ProviderHealthRecord)
                    .where(col(ProviderHealthRecord.provider) == provider, free)
                    .values(sending_chunk_id=chunk_id)
                    .execution_options(synchronize_session=False)
                )
                if rows_affected(result):
                    return True
                if await session.get(ProviderHealthRecord, provider) is not None:
                    return False
                session.add(ProviderHealthRecord(provider=provider, sending_chunk_id=chunk_id))
                return True
        except IntegrityError:
            continue
    return False


async def free_send_slot(sessions: async_sessionmaker[AsyncSession], provider: str, chunk_id: int) -> None:
    async with transaction(sessions) as session:
        await session.execute(
            update(ProviderHealthRecord)
            .where(
                col(ProviderHealthRecord.provider) == provider, col(ProviderHealthRecord.sending_chunk_id) == chunk_id
            )
            .values(sending_chunk_id=None)
        )


# -- what /readyz reads ------------------------------------------------------------------------------------


async def live_workers(session: AsyncSession, within: timedelta) -> int:
    count = await session.scalar(
        select(func.count()).select_from(WorkerHeartbeat).where(col(WorkerHeartbeat.last_seen_at) >= utcnow() - within)
    )
    return int(count or 0)


async def ping(session: AsyncSession) -> None:
    await session.execute(select(1))
