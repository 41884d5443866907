"""The batch loop: find due work, claim it with a lease, run its lifecycle step (`service/batches/`), repeat.

Provider hiccups (429, 5xx, timeouts) only push a chunk's next attempt into the future (`deferring.py`),
honouring Retry-After; they never fail an item.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime

from service.batches.chunks.cleanup import clean_up_chunk
from service.batches.chunks.deferring import defer_chunk
from service.batches.chunks.ingesting import poll_chunk
from service.batches.chunks.reading import log_fields
from service.batches.chunks.sending import send_chunk
from service.kit.clock import utcnow
from service.kit.fencing import LeaseLost
from service.models import Chunk, ChunkState
from service.observability.logging import bind_log_context, log_context
from service.providers.protocol import ProviderError
from service.store import leases as leases_store
from service.workers.batch_steps import advance_held_batch
from service.workers.circuit import read_circuit, record_failure, record_success
from service.workers.context import WorkerContext
from service.workers.leasing import run_with_lease

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


async def _run_chunk_step(ctx: WorkerContext, sweep: _Sweep, chunk_id: int, step: ChunkStep) -> None:
    """Run one step on a chunk this worker has just leased, renewing the lease meanwhile; release it after."""
    try:
        bind_log_context(**await log_fields(ctx, chunk_id))
        await run_with_lease(ctx, Chunk, chunk_id, lambda: step(ctx, chunk_id))
        if sweep.counting_failures:
            await record_success(ctx)
            sweep.counting_failures = False
    except LeaseLost:
        logger.warning("lost the lease on chunk %s during %s; its new owner carries on", chunk_id, step.__name__)
    except ProviderError as error:
        await defer_chunk(ctx, chunk_id, error)
        # A chunk that keeps failing while no other does is its own trouble, not an outage: it backs off alone.
        if await record_failure(ctx, error, f"chunk {chunk_id}") is not None:
            sweep.paused = True
        sweep.counting_failures = True
    except Exception as error:  # a bug or a database hiccup: keep the loop alive, retry later
        logger.exception("step %s failed for chunk %s", step.__name__, chunk_id)
        await defer_chunk(ctx, chunk_id, error)
    finally:
        await leases_store.release(ctx.sessions, Chunk, chunk_id, ctx.worker_id)


def _chunk_kinds(ctx: WorkerContext) -> list[tuple[tuple[str, ...], ChunkStep, bool]]:
    """Each kind of chunk step: the states it takes chunks in, the step, whether only chunks with files left."""
    kinds: list[tuple[tuple[str, ...], ChunkStep, bool]] = [
        ((ChunkState.PENDING, ChunkState.UPLOADING), send_chunk, False),
        ((ChunkState.SUBMITTED,), poll_chunk, False),
    ]
    if ctx.settings.provider_file_cleanup:
        kinds.append(((ChunkState.DONE,), clean_up_chunk, True))
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
