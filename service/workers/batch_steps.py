"""The worker's step on a batch: advance it under its lease (renewed meanwhile), sending Groq the cancels a
cancelled batch needs first. The lifecycle itself is `service/batches/advance.py`."""

from __future__ import annotations

import logging

from service.batches.advance import advance
from service.models import Batch
from service.providers.groq import PROVIDER_TERMINAL_STATUSES, PermanentProviderError, ProviderError
from service.store import batches as batches_store
from service.store import chunks as chunks_store
from service.store import leases as leases_store
from service.store import transaction
from service.workers.circuit import record_failure
from service.workers.context import WorkerContext
from service.workers.leasing import LeaseLost, run_with_lease

logger = logging.getLogger(__name__)


async def _advance_held(ctx: WorkerContext, batch_id: str) -> None:
    async with ctx.sessions() as session:
        cancel_requested = await batches_store.cancel_requested(session, batch_id)
    if cancel_requested:
        try:
            await send_cancellations(ctx, batch_id)
        except ProviderError as error:  # the cancels are sent again on the next sweep
            logger.warning("cancelling batch %s: %s", batch_id, error)
            await record_failure(ctx, error)
    async with transaction(ctx.sessions) as session:
        if await batches_store.fence_open_batch(session, batch_id, ctx.worker_id):
            batch = await batches_store.get_batch(session, batch_id)
            assert batch is not None
            await advance(session, ctx.config, batch)


async def advance_held_batch(ctx: WorkerContext, batch_id: str) -> None:
    """Advance a batch this worker has just leased (the sweep's claim), then release it."""
    try:
        await run_with_lease(ctx, Batch, batch_id, lambda: _advance_held(ctx, batch_id))
    except LeaseLost:
        logger.warning("lost the lease on batch %s while advancing it; its new owner carries on", batch_id)
    finally:
        await leases_store.release(ctx.sessions, Batch, batch_id, ctx.worker_id)


async def advance_batch(ctx: WorkerContext, batch_id: str) -> None:
    """Lease a batch (unless another worker holds it) and advance it."""
    if await leases_store.claim(ctx.sessions, Batch, batch_id, ctx.worker_id, ctx.lease_seconds):
        await advance_held_batch(ctx, batch_id)


async def send_cancellations(ctx: WorkerContext, batch_id: str) -> None:
    """Ask Groq to cancel every live provider batch of a cancelled batch; polling ingests what they kept."""
    async with ctx.sessions() as session:
        chunks = await chunks_store.submitted_of_batch(session, batch_id)
    for chunk in chunks:
        if chunk.id is None or chunk.provider_batch_id is None:
            continue
        if chunk.provider_status in (*PROVIDER_TERMINAL_STATUSES, "cancelling"):
            continue
        try:
            status = (await ctx.provider.cancel(chunk.provider_batch_id)).status
        except PermanentProviderError as error:
            # Typically: it finished meanwhile. The next poll ingests whatever it holds.
            logger.info("cancel of %s refused: %s", chunk.provider_batch_id, error)
            status = chunk.provider_status or "unknown"
        async with transaction(ctx.sessions) as session:
            await chunks_store.note_cancel_sent(session, chunk.id, status)
