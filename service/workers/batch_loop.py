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
from dataclasses import dataclass, field
from datetime import datetime

from service.batches.chunks.cleanup import clean_up_chunk
from service.batches.chunks.deferring import defer_chunk, postpone_chunk
from service.batches.chunks.ingesting import poll_chunk
from service.batches.chunks.reading import log_fields
from service.batches.chunks.sending import send_chunk
from service.kit.clock import utcnow
from service.kit.fencing import LeaseLost, TryLater
from service.models import Chunk, ChunkState
from service.observability.logging import bind_log_context, log_context
from service.providers.protocol import ProviderError
from service.store import leases as leases_store
from service.workers.batch_steps import advance_held_batch
from service.workers.circuit import read_circuits, record_failure, record_success
from service.workers.context import WorkerContext
from service.workers.leasing import run_with_lease
from service.workers.purge_steps import purge_due

logger = logging.getLogger(__name__)

CLAIM_BATCH_SIZE = 20  # chunk steps of each kind per sweep, so that every kind of work gets its turn
MAX_BATCHES_PER_SWEEP = 200

ChunkStep = Callable[[WorkerContext, int], Awaitable[None]]


@dataclass
class _Sweep:
    """What one sweep learnt about the providers: which are counting failures (a success must reset them), and
    which a failure just paused (this sweep makes no more calls to them)."""

    counting: set[str] = field(default_factory=set)
    paused: set[str] = field(default_factory=set)


async def _run_chunk_step(ctx: WorkerContext, sweep: _Sweep, claimed: tuple[int, str], step: ChunkStep) -> None:
    """Run one step on a chunk this worker has just leased, renewing the lease meanwhile; release it after."""
    chunk_id, provider = claimed
    try:
        bind_log_context(**await log_fields(ctx, chunk_id))
        await run_with_lease(ctx, Chunk, chunk_id, lambda: step(ctx, chunk_id))
        if provider in sweep.counting:
            await record_success(ctx, provider)
            sweep.counting.discard(provider)
    except LeaseLost:
        logger.warning("lost the lease on chunk %s during %s; its new owner carries on", chunk_id, step.__name__)
    except TryLater as later:
        await postpone_chunk(ctx, chunk_id, later)
    except ProviderError as error:
        await defer_chunk(ctx, chunk_id, error)
        # A chunk that keeps failing while no other does is its own trouble, not an outage: it backs off alone.
        if await record_failure(ctx, error, f"chunk {chunk_id}", provider) is not None:
            sweep.paused.add(provider)
        sweep.counting.add(provider)
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
    up; no new claim once `stop` is set. While a provider is out (its shared circuit is open), its chunks wait;
    the other providers' and the batches' work goes on. Returns when the next chunk step is due (None: no chunk
    waits for one)."""

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
    if batches and not stopping():
        await purge_due(ctx, stopping)
    circuits = await read_circuits(ctx)
    paused = {name for name, health in circuits.items() if health.backoff_until is not None}
    resume = min((health.backoff_until for health in circuits.values() if health.backoff_until), default=None)
    kinds = _chunk_kinds(ctx)
    claims = [(states, files_left) for states, _step, files_left in kinds]
    due = await leases_store.next_chunk_due(ctx.sessions, claims, skip_providers=paused)
    if due is None or due > utcnow():
        return _earliest(due, resume)  # nothing to claim: no write transaction for each kind to find that out
    counting = {name for name, health in circuits.items() if health.consecutive_failures > 0}
    await _run_due_chunks(ctx, _Sweep(counting=counting, paused=paused), kinds, stopping)
    return _earliest(await leases_store.next_chunk_due(ctx.sessions, claims, skip_providers=paused), resume)


def _earliest(*moments: datetime | None) -> datetime | None:
    return min((moment for moment in moments if moment is not None), default=None)


async def _run_due_chunks(
    ctx: WorkerContext,
    sweep: _Sweep,
    kinds: list[tuple[tuple[str, ...], ChunkStep, bool]],
    stopping: Callable[[], bool],
) -> None:
    """Up to CLAIM_BATCH_SIZE due chunks of each kind, each claimed and stepped; none more once stopping, and
    none of a provider once a failure paused it (the other providers' work goes on)."""
    for states, step, files_left in kinds:
        for _ in range(CLAIM_BATCH_SIZE):
            if stopping():
                return
            claimed = await leases_store.claim_next_chunk(
                ctx.sessions,
                ctx.worker_id,
                ctx.lease_seconds,
                states,
                files_left=files_left,
                skip_providers=sweep.paused,
            )
            if claimed is None:
                break
            with log_context():
                await _run_chunk_step(ctx, sweep, claimed, step)


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
