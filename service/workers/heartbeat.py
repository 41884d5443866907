"""Heartbeats: a step's lease is renewed in a side task while the step runs, and each worker process says
it is alive in `worker_heartbeats` so that any replica's /readyz can count the live workers.

A lease is renewed every third of its length. When it cannot be renewed (another worker took the row over
after this process was paused past the lease, or the database stayed unreachable until the lease ran out),
the step is cancelled: it must not go on as if it still owned the row. A step marks the few lines that must
run to the end once started (a provider call and the write recording it) with `protected()`; cancellation
waits for them.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, TypeVar

from sqlalchemy import delete, func, update
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from service.db import rows_affected, transaction
from service.models import ProviderHealthRecord, WorkerHeartbeat, utcnow
from service.workers.context import WorkerContext
from service.workers.leases import renew

logger = logging.getLogger(__name__)

T = TypeVar("T")

# A worker row not renewed for this many leases belongs to a dead process: it is deleted.
STALE_WORKER_LEASES = 20


class LeaseLost(Exception):
    """Another worker holds the row now: stop, and write nothing more about it."""


class _Guard:
    """Counts the protected sections running in a step; cancellation waits until none is."""

    def __init__(self) -> None:
        self.depth = 0
        self.unprotected = asyncio.Event()
        self.unprotected.set()


_current_guard: ContextVar[_Guard | None] = ContextVar("lease_guard", default=None)


@asynccontextmanager
async def protected() -> AsyncIterator[None]:
    """Run to the end even if the lease is lost meanwhile (a no-op outside `run_with_lease`)."""
    guard = _current_guard.get()
    if guard is None:
        yield
        return
    guard.depth += 1
    guard.unprotected.clear()
    try:
        yield
    finally:
        guard.depth -= 1
        if guard.depth == 0:
            guard.unprotected.set()


async def _keep_lease(ctx: WorkerContext, table: Any, row_id: Any) -> bool:
    """Renew the lease every third of its length. Returns True once it is lost, False once the step itself has
    let go of the row (work that finishes clears its lease in the same transaction)."""
    loop = asyncio.get_running_loop()
    interval = ctx.lease_seconds / 3
    held_until = loop.time() + ctx.lease_seconds
    while True:
        await asyncio.sleep(interval)
        try:
            async with transaction(ctx.sessions) as session:
                renewed = rows_affected(await session.execute(renew(table, row_id, ctx.worker_id, ctx.lease_seconds)))
                owner = None if renewed else await session.scalar(select(table.lease_owner).where(table.id == row_id))
        except Exception as error:  # a database hiccup: the lease holds until it runs out, keep trying
            logger.warning("could not renew the lease on %s %s: %s", table.__tablename__, row_id, error)
            if loop.time() >= held_until:
                return True
            continue
        if not renewed:
            return owner is not None
        held_until = loop.time() + ctx.lease_seconds


async def run_with_lease(ctx: WorkerContext, table: Any, row_id: Any, step: Callable[[], Awaitable[T]]) -> T:
    """Run `step` on a row this worker has leased, renewing the lease meanwhile. Raises LeaseLost (after
    cancelling the step) when the lease is lost before the step ends."""
    guard = _Guard()

    async def guarded() -> T:
        _current_guard.set(guard)
        return await step()

    step_task = asyncio.ensure_future(guarded())
    keeper = asyncio.create_task(_keep_lease(ctx, table, row_id))
    try:
        await asyncio.wait({step_task, keeper}, return_when=asyncio.FIRST_COMPLETED)
        if not step_task.done() and not keeper.result():
            await asyncio.wait({step_task})
        if not step_task.done():
            unprotected = asyncio.create_task(guard.unprotected.wait())
            await asyncio.wait({step_task, unprotected}, return_when=asyncio.FIRST_COMPLETED)
            unprotected.cancel()
            if not step_task.done():
                logger.warning("lost the lease on %s %s; stopping its step", table.__tablename__, row_id)
                step_task.cancel()
                with contextlib.suppress(asyncio.CancelledError, LeaseLost):
                    await step_task
                raise LeaseLost(f"{table.__tablename__} {row_id}")
        return step_task.result()
    finally:
        for task in (step_task, keeper):
            if not task.done():
                task.cancel()
        await asyncio.gather(step_task, keeper, return_exceptions=True)


async def ensure_lease(session: AsyncSession, ctx: WorkerContext, table: Any, row_id: Any) -> None:
    """Renew the lease right before a side effect on Groq; raise LeaseLost if it is no longer ours."""
    if not rows_affected(await session.execute(renew(table, row_id, ctx.worker_id, ctx.lease_seconds))):
        raise LeaseLost(f"{table.__tablename__} {row_id}")


# -- worker presence -------------------------------------------------------------------------------------


async def announce_worker(ctx: WorkerContext, loops: list[str]) -> None:
    """Say this worker is alive (insert its row, or renew it); prune rows of workers long dead."""
    now = utcnow()
    async with transaction(ctx.sessions) as session:
        renewed = await session.execute(
            update(WorkerHeartbeat).where(col(WorkerHeartbeat.worker_id) == ctx.worker_id).values(last_seen_at=now)
        )
        if not rows_affected(renewed):
            session.add(
                WorkerHeartbeat(
                    worker_id=ctx.worker_id,
                    hostname=socket.gethostname()[:255],
                    pid=os.getpid(),
                    loops=",".join(loops)[:255],
                    started_at=now,
                    last_seen_at=now,
                )
            )
        stale = now - timedelta(seconds=ctx.lease_seconds * STALE_WORKER_LEASES)
        await session.execute(delete(WorkerHeartbeat).where(col(WorkerHeartbeat.last_seen_at) < stale))


async def retire_worker(ctx: WorkerContext) -> None:
    async with transaction(ctx.sessions) as session:
        await session.execute(delete(WorkerHeartbeat).where(col(WorkerHeartbeat.worker_id) == ctx.worker_id))


@dataclass(frozen=True)
class FleetHealth:
    """What /readyz reports about the workers and the provider, read from the database every replica shares."""

    live_workers: int
    provider_degraded: bool
    provider_last_error: str | None
    provider_backoff_until: datetime | None


async def read_fleet_health(session: AsyncSession, lease_seconds: float) -> FleetHealth:
    now = utcnow()
    live = await session.scalar(
        select(func.count())
        .select_from(WorkerHeartbeat)
        .where(col(WorkerHeartbeat.last_seen_at) >= now - timedelta(seconds=lease_seconds))
    )
    record = (await session.exec(select(ProviderHealthRecord))).first()
    degraded = record is not None and (
        record.consecutive_failures > 0 or (record.backoff_until is not None and record.backoff_until > now)
    )
    return FleetHealth(
        live_workers=int(live or 0),
        provider_degraded=degraded,
        provider_last_error=record.last_error if record is not None and degraded else None,
        provider_backoff_until=(
            record.backoff_until
            if record is not None and record.backoff_until is not None and record.backoff_until > now
            else None
        ),
    )
