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
from typing import Any

from sqlalchemy import update
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from service.db import transaction
from service.models import ChunkState, Pass, ProviderBatch, utcnow
from service.observability.logging import bind_log_context, log_context
from service.providers.groq import ProviderError, RetryableProviderError
from service.workers.circuit import read_circuit, record_failure, record_success
from service.workers.claims import claim_next_batch, claim_next_chunk
from service.workers.cleanup import delete_chunk_files
from service.workers.context import WorkerContext
from service.workers.heartbeat import LeaseLost, run_with_lease
from service.workers.ingestion import poll_chunk
from service.workers.leases import release_chunk
from service.workers.progress import advance_batch
from service.workers.submission import submit_chunk

logger = logging.getLogger(__name__)

CLAIM_BATCH_SIZE = 20  # chunk steps of each kind per sweep, so that every kind of work gets its turn
MAX_BATCHES_PER_SWEEP = 200


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


async def _chunk_log_fields(session: AsyncSession, row_id: int) -> dict[str, object]:
    row = (
        await session.execute(
            select(ProviderBatch.batch_id, Pass.number, ProviderBatch.provider_batch_id)
            .join(Pass, col(Pass.id) == col(ProviderBatch.pass_id))
            .where(col(ProviderBatch.id) == row_id)
        )
    ).one_or_none()
    if row is None:
        return {}
    batch_id, pass_number, provider_batch_id = row
    return {"batch_id": batch_id, "pass_number": pass_number, "provider_batch_id": provider_batch_id}


@dataclass
class _Sweep:
    """What one sweep learnt about the provider: whether failures are being counted (a success must reset
    them), and whether a failure just paused every worker (then this sweep makes no more provider calls)."""

    counting_failures: bool = False
    paused: bool = False


async def _run_chunk_step(
    ctx: WorkerContext,
    health: ProviderHealth,
    sweep: _Sweep,
    row_id: int,
    step: Callable[[WorkerContext, int], Awaitable[None]],
) -> None:
    """Run one step on a chunk this worker has just leased, renewing the lease meanwhile; release it after."""
    try:
        async with ctx.sessions() as session:
            bind_log_context(**await _chunk_log_fields(session, row_id))
        await run_with_lease(ctx, ProviderBatch, row_id, lambda: step(ctx, row_id))
        health.succeeded()
        if sweep.counting_failures:
            await record_success(ctx)
            sweep.counting_failures = False
    except LeaseLost:
        logger.warning("lost the lease on chunk %s during %s; its new owner carries on", row_id, step.__name__)
    except ProviderError as error:
        await _defer_chunk(ctx, health, row_id, error)
        if await record_failure(ctx, error) is not None:
            sweep.paused = True
        sweep.counting_failures = True
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


async def run_once(ctx: WorkerContext, health: ProviderHealth, stop: asyncio.Event | None = None) -> None:
    """One sweep over every kind of due work, each row claimed as it is taken up; no new claim once `stop` is
    set. While the provider is out (the shared circuit is open), only the database work of batches goes on."""

    def stopping() -> bool:
        return stop is not None and stop.is_set()

    seen: list[str] = []
    while not stopping() and len(seen) < MAX_BATCHES_PER_SWEEP:
        batch_id = await claim_next_batch(ctx, skip=seen)
        if batch_id is None:
            break
        seen.append(batch_id)
        with log_context(batch_id=batch_id):
            try:
                await advance_batch(ctx, batch_id)
            except Exception:  # one broken batch must not stop every other batch's work
                logger.exception("advancing batch %s failed; retrying on the next sweep", batch_id)
    circuit = await read_circuit(ctx)
    if circuit.paused_until is not None:
        return
    sweep = _Sweep(counting_failures=circuit.failures > 0 or health.degraded)
    kinds: list[tuple[tuple[str, ...], Callable[[WorkerContext, int], Awaitable[None]], list[Any]]] = [
        ((ChunkState.PENDING, ChunkState.UPLOADING), submit_chunk, []),
        ((ChunkState.SUBMITTED,), poll_chunk, []),
    ]
    if ctx.settings.provider_file_cleanup:
        kinds.append(((ChunkState.DONE,), delete_chunk_files, [col(ProviderBatch.files_deleted_at).is_(None)]))
    for states, step, conditions in kinds:
        for _ in range(CLAIM_BATCH_SIZE):
            if stopping() or sweep.paused:
                return
            row_id = await claim_next_chunk(ctx, states, *conditions)
            if row_id is None:
                break
            with log_context():
                await _run_chunk_step(ctx, health, sweep, row_id, step)


async def run_worker(ctx: WorkerContext, health: ProviderHealth, stop: asyncio.Event) -> None:
    logger.info("worker %s started", ctx.worker_id)
    idle = min(ctx.settings.worker_idle_seconds, ctx.settings.poll_interval_seconds)
    while not stop.is_set():
        try:
            await run_once(ctx, health, stop)
        except Exception:
            logger.exception("worker sweep failed; retrying")
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), timeout=idle)
    logger.info("worker %s stopped", ctx.worker_id)
