"""The worker's step on a batch: lease it (renewed meanwhile), have its provider batches cancelled if the batch
is being cancelled, advance it (`service/batches/advance.py`), release it."""

from __future__ import annotations

import logging

from service.batches.advance import advance_held
from service.batches.chunks.cancelling import cancel_if_requested
from service.kit.fencing import LeaseLost
from service.models import Batch
from service.providers.protocol import ProviderError
from service.store import leases as leases_store
from service.workers.circuit import record_failure
from service.workers.context import WorkerContext
from service.workers.leasing import run_with_lease

logger = logging.getLogger(__name__)


async def _advance_held(ctx: WorkerContext, batch_id: str) -> None:
    try:
        await cancel_if_requested(ctx, batch_id)
    except ProviderError as error:  # the cancels are sent again on the next sweep
        logger.warning("cancelling batch %s: %s", batch_id, error)
        await record_failure(ctx, error)
    await advance_held(ctx.sessions, ctx.config, ctx.worker_id, batch_id)


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
