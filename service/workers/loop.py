"""The worker loop: find due work, claim it with a lease, run one step, commit, repeat.

Provider hiccups (429, 5xx, timeouts) only push a chunk's next attempt into the future, honouring
Retry-After; they never fail an item.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import or_, update
from sqlmodel import col, select

from service.db import rows_affected, transaction
from service.models import Batch, BatchStatus, ChunkState, ProviderBatch, utcnow
from service.providers.groq import ProviderError, RetryableProviderError
from service.workers.context import WorkerContext
from service.workers.ingestion import poll_chunk
from service.workers.leases import claim_chunk, release_chunk
from service.workers.progress import advance_batch, send_cancellations
from service.workers.submission import submit_chunk

logger = logging.getLogger(__name__)

CLAIM_BATCH_SIZE = 20


@dataclass
class ProviderHealth:
    """What /readyz reports about Groq, as the workers last saw it."""

    consecutive_failures: int = 0
    last_error: str | None = None
    last_error_at: datetime | None = None
    last_success_at: datetime | None = None
    backoff_until: datetime | None = field(default=None)

    @property
    def degraded(self) -> bool:
        return self.consecutive_failures > 0

    def succeeded(self) -> None:
        self.consecutive_failures = 0
        self.last_success_at = utcnow()
        self.backoff_until = None

    def failed(self, error: Exception, until: datetime) -> None:
        self.consecutive_failures += 1
        self.last_error = str(error)
        self.last_error_at = utcnow()
        self.backoff_until = until


def backoff_seconds(ctx: WorkerContext, retry_count: int, retry_after: float | None) -> float:
    if retry_after is not None:
        return float(min(retry_after, ctx.settings.provider_backoff_max_seconds))
    base = min(1.0, ctx.settings.poll_interval_seconds)
    delay = min(base * 2**retry_count, ctx.settings.provider_backoff_max_seconds)
    jitter: float = random.uniform(0.8, 1.2)
    return float(delay * jitter)


async def _due_chunk_ids(ctx: WorkerContext, states: tuple[str, ...]) -> list[int]:
    now = utcnow()
    async with ctx.sessions() as session:
        ids = await session.scalars(
            select(ProviderBatch.id)
            .where(
                col(ProviderBatch.state).in_(states),
                ProviderBatch.next_action_at <= now,
                or_(col(ProviderBatch.lease_owner).is_(None), col(ProviderBatch.lease_expires_at) < now),
            )
            .order_by(col(ProviderBatch.next_action_at))
            .limit(CLAIM_BATCH_SIZE)
        )
        return [row_id for row_id in ids if row_id is not None]


async def _open_batch_ids(ctx: WorkerContext) -> list[tuple[str, bool]]:
    now = utcnow()
    async with ctx.sessions() as session:
        rows = await session.execute(
            select(Batch.id, Batch.cancel_requested)
            .where(
                col(Batch.status).in_((BatchStatus.QUEUED, BatchStatus.RUNNING)),
                or_(col(Batch.lease_owner).is_(None), col(Batch.lease_expires_at) < now),
            )
            .order_by(col(Batch.created_at))
        )
        return [(batch_id, bool(cancel)) for batch_id, cancel in rows]


async def _run_chunk_step(
    ctx: WorkerContext,
    health: ProviderHealth,
    row_id: int,
    step: Callable[[WorkerContext, int], Awaitable[None]],
) -> None:
    async with transaction(ctx.sessions) as session:
        claimed = await session.execute(claim_chunk(row_id, ctx.worker_id, ctx.lease_seconds))
        if not rows_affected(claimed):
            return
    try:
        await step(ctx, row_id)
        health.succeeded()
    except ProviderError as error:
        await _defer_chunk(ctx, health, row_id, error)
    except Exception as error:  # a bug or a database hiccup: keep the loop alive, retry later
        logger.exception("step %s failed for chunk %s", step.__name__, row_id)
        await _defer_chunk(ctx, health, row_id, error)
    finally:
        async with transaction(ctx.sessions) as session:
            await session.execute(release_chunk(row_id, ctx.worker_id))


async def _defer_chunk(ctx: WorkerContext, health: ProviderHealth, row_id: int, error: Exception) -> None:
    async with transaction(ctx.sessions) as session:
        row = await session.get_one(ProviderBatch, row_id)
        retry_after = error.retry_after if isinstance(error, RetryableProviderError) else None
        delay = backoff_seconds(ctx, row.retry_count, retry_after)
        until = utcnow() + timedelta(seconds=delay)
        await session.execute(
            update(ProviderBatch)
            .where(col(ProviderBatch.id) == row_id, col(ProviderBatch.lease_owner) == ctx.worker_id)
            .values(next_action_at=until, retry_count=row.retry_count + 1, last_error=str(error)[:2000])
        )
    if isinstance(error, ProviderError):
        health.failed(error, until)
    logger.warning("chunk %s deferred %.2fs: %s", row_id, delay, error)


async def run_once(ctx: WorkerContext, health: ProviderHealth) -> None:
    """One sweep over every kind of due work."""
    for batch_id, cancel_requested in await _open_batch_ids(ctx):
        if cancel_requested:
            try:
                await send_cancellations(ctx, batch_id)
            except ProviderError as error:
                health.failed(error, utcnow())
                logger.warning("cancelling batch %s: %s", batch_id, error)
        try:
            await advance_batch(ctx, batch_id)
        except Exception:  # one broken batch must not stop every other batch's work
            logger.exception("advancing batch %s failed; retrying on the next sweep", batch_id)
    for row_id in await _due_chunk_ids(ctx, (ChunkState.PENDING, ChunkState.UPLOADING)):
        await _run_chunk_step(ctx, health, row_id, submit_chunk)
    for row_id in await _due_chunk_ids(ctx, (ChunkState.SUBMITTED,)):
        await _run_chunk_step(ctx, health, row_id, poll_chunk)


async def run_worker(ctx: WorkerContext, health: ProviderHealth, stop: asyncio.Event) -> None:
    logger.info("worker %s started", ctx.worker_id)
    idle = min(ctx.settings.worker_idle_seconds, ctx.settings.poll_interval_seconds)
    while not stop.is_set():
        try:
            await run_once(ctx, health)
        except Exception:
            logger.exception("worker sweep failed; retrying")
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), timeout=idle)
    logger.info("worker %s stopped", ctx.worker_id)
