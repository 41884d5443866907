"""Cancelling a batch: asked here, carried out by the worker (provider batches cancelled, items failed)."""

from __future__ import annotations

from service.batches.reading import batch_or_404
from service.kit.problems import conflict
from service.models import TERMINAL_BATCH_STATUSES, Batch
from service.store import Session
from service.store import batches as batches_store
from service.store import notifications as notifications_store


async def request_cancel(session: Session, batch_id: str, tenant: str | None) -> Batch:
    """Mark the batch for cancelling (flushed, not committed); 409 once it has finished."""
    batch = await batch_or_404(session, batch_id, tenant)
    if batch.status in TERMINAL_BATCH_STATUSES or not await batches_store.request_cancel(session, batch_id):
        raise conflict(f"batch {batch_id} is already {batch.status}")
    await notifications_store.announce_work(session)
    fresh = await batches_store.get_batch(session, batch_id)
    assert fresh is not None
    return fresh
