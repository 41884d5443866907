"""The batch loop: find due work, claim it with a lease, run one step, commit, repeat.

Provider hiccups (429, 5xx, timeouts) only push a chunk's next attempt into the future, honouring
Retry-After; they never fail an item.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from service.kit.clock import utcnow
from service.models import Chunk, ChunkState
from service.observability.logging import bind_log_context, log_context
from service.pipeline.backoff import backoff_seconds
from service.providers.groq import ProviderError, RetryableProviderError
from service.store import chunks as chunks_store
from service.store import leases as leases_store
from service.store import transaction
from service.workers.batch_steps import advance_held_batch
from service.workers.chunk_ingestion import poll_chunk
from service.workers.chunk_submission import submit_chunk
from service.workers.circuit import read_circuit, record_failure, record_success
from service.workers.context import WorkerContext
from service.workers.file_cleanup import delete_chunk_files
from service.workers.leasing import LeaseLost, run_with_lease

logger = logging.getLogger(__name__)

CLAIM_BATCH_SIZE = 20  # chunk steps of each kind per sweep, so that every kind of work gets its turn
MAX_BATCHES_PER_SWEEP = 200

ChunkStep = Callable[[WorkerContext, int], Awaitable[None]]


@dataclass
class _Sweep:
    """What one sweep learnt about the provider: whether failures are being counted (a success must reset
    them), and whether a failure just paused every worker (then this sweep makes no more provider calls)."""

    counting_failures: bool = False
    paused: bool = False


def chunk_retry_delay(ctx: WorkerContext, retry_count: int, error: Exception) -> float:
    retry_after = error.retry_after if isinstance(error, RetryableProviderError) else None
    return backoff_seconds(
        retry_count,
        base=min(1.0, ctx.settings.poll_interval_seconds),
        cap=ctx.settings.provider_backoff_max_seconds,
        retry_after=retry_after,
    )


async def _defer_chunk(ctx: WorkerContext, chunk_id: int, error: Exception) -> None:
    async with transaction(ctx.sessions) as session:
        chunk = await chunks_store.get(session, chunk_id)
        delay = chunk_retry_delay(ctx, chunk.retry_count, error)
        await chunks_store.defer_held(
            session,
            ctx.worker_id,
            chunk_id,
            until=utcnow() + timedelta(seconds=delay),
            retry_count=chunk.retry_count + 1,
            error=str(error),
        )
    logger.warning("chunk %s deferred %.2fs: %s", chunk_id, delay, error)


async def _run_chunk_step(ctx: WorkerContext, sweep: _Sweep, chunk_id: int, step: ChunkStep) -> None:
    """Run one step on a chunk this worker has just leased, renewing the lease meanwhile; release it after."""
    try:
        async with ctx.sessions() as session:
            bind_log_context(**await chunks_store.log_fields(session, chunk_id))
        await run_with_lease(ctx, Chunk, chunk_id, lambda: step(ctx, chunk_id))
        if sweep.counting_failures:
            await record_success(ctx)
            sweep.counting_failures = False
    except LeaseLost:
        logger.warning("lost the lease on chunk %s during %s; its new owner carries on", chunk_id, step.__name__)
    except ProviderError as error:
        await _defer_chunk(ctx, chunk_id, error)
        # A chunk that keeps failing while no other does is its own trouble, not an outage: it backs off alone.
        if await record_failure(ctx, error, f"chunk {chunk_id}") is not None:
            sweep.paused = True
        sweep.counting_failures = True
    except Exception as error:  # a bug or a database hiccup: keep the loop alive, retry later
        logger.exception("step %s failed for chunk %s", step.__name__, chunk_id)
        await _defer_chunk(ctx, chunk_id, error)
    finally:
        await leases_store.release(ctx.sessions, Chunk, chunk_id, ctx.worker_id)


def _chunk_kinds(ctx: WorkerContext) -> list[tuple[tuple[str, ...], ChunkStep, bool]]:
    """Each kind of chunk step: the states it takes chunks in, the step, whether only chunks with files left."""
    kinds: list[tuple[tuple[str, ...], ChunkStep, bool]] = [
        ((ChunkState.PENDING, ChunkState.UPLOADING), submit_chunk, False),
        ((ChunkState.SUBMITTED,), poll_chunk, False),
    ]
    if ctx.settings.provider_file_cleanup:
        kinds.append(((ChunkState.DONE,), delete_chunk_files, True))
    return kinds


async def run_once(ctx: WorkerContext, stop: asyncio.Event | None = None, *, batches: bool = True) -> datetime | None:
    """One sweep over every kind of due work (the batches' only if `batches`), each row claimed as it is taken
    up; no new claim once `stop` is set. While the provider is out (the shared circuit is open), only the
    database work of batches goes on. Returns when the next chunk step is due (None: no chunk waits for one)."""

    def stopping() -> bool:
        return stop is not None and stop.is_set()

    seen: list[str] = []
    while batches and not stopping() and len(seen) < MAX_BATCHES_PER_SWEEP:
        batch_id = await leases_store.claim_next_batch(ctx.sessions, ctx.worker_id, ctx.lease_seconds, skip=seen)
        if batch_id is None:
            break
        seen.append(batch_id)
        with log_context(batch_id=batch_id):
            try:
                await advance_held_batch(ctx, batch_id)
            except Exception:  # one broken batch must not stop every other batch's work
                logger.exception("advancing batch %s failed; retrying on the next sweep", batch_id)
    circuit = await read_circuit(ctx)
    if circuit.backoff_until is not None:
        return circuit.backoff_until
    kinds = _chunk_kinds(ctx)
    claims = [(states, files_left) for states, _step, files_left in kinds]
    due = await leases_store.next_chunk_due(ctx.sessions, claims)
    if due is None or due > utcnow():
        return due  # nothing to claim: no write transaction for each kind to find that out
    await _run_due_chunks(ctx, _Sweep(counting_failures=circuit.consecutive_failures > 0), kinds, stopping)
    return await leases_store.next_chunk_due(ctx.sessions, claims)


async def _run_due_chunks(
    ctx: WorkerContext,
    sweep: _Sweep,
    kinds: list[tuple[tuple[str, ...], ChunkStep, bool]],
    stopping: Callable[[], bool],
) -> None:
    """Up to CLAIM_BATCH_SIZE due chunks of each kind, each claimed and stepped; none more once stopping or
    once a failure paused the provider."""
    for states, step, files_left in kinds:
        for _ in range(CLAIM_BATCH_SIZE):
            if stopping() or sweep.paused:
                return
            chunk_id = await leases_store.claim_next_chunk(
                ctx.sessions, ctx.worker_id, ctx.lease_seconds, states, files_left=files_left
            )
            if chunk_id is None:
                break
            with log_context():
                await _run_chunk_step(ctx, sweep, chunk_id, step)


async def idle_wait(ctx: WorkerContext, stop: asyncio.Event, seconds: float) -> bool:
    """Until the next sweep: `seconds`, or less when the process wakes its workers (or stops them). Whether
    they were woken."""
    waiters = [asyncio.ensure_future(stop.wait()), asyncio.ensure_future(ctx.wakeup.wait())]
    try:
        await asyncio.wait(waiters, timeout=seconds, return_when=asyncio.FIRST_COMPLETED)
        return ctx.wakeup.is_set()
    finally:
        for waiter in waiters:
            waiter.cancel()
        ctx.wakeup.clear()


async def run_worker(ctx: WorkerContext, stop: asyncio.Event) -> None:
    """Sweeps until stopped. Batches are swept when the process is woken (a submission, a finished pass, a
    cancel) and every WORKER_IDLE_SECONDS; chunks when their next step falls due. Between two sweeps at
    least the old fixed pace, min(WORKER_IDLE_SECONDS, POLL_INTERVAL_SECONDS), unless woken: a step that
    leaves its chunk due never makes the loop spin."""
    logger.info("worker %s started", ctx.worker_id)
    idle = ctx.settings.worker_idle_seconds
    least = min(idle, ctx.settings.poll_interval_seconds)
    batches_swept = -math.inf
    woken = True
    while not stop.is_set():
        sweep_batches = woken or time.monotonic() - batches_swept >= idle
        if sweep_batches:
            batches_swept = time.monotonic()
        wait = idle
        try:
            due = await run_once(ctx, stop, batches=sweep_batches)
            if due is not None:
                wait = min(idle, max(least, (due - utcnow()).total_seconds()))
        except Exception:
            logger.exception("worker sweep failed; retrying")
        woken = await idle_wait(ctx, stop, wait)
    logger.info("worker %s stopped", ctx.worker_id)
