"""Advancing a batch (a worker step, under the batch's lease): lay out planned passes, close finished ones,
plan the fallback pass, finish. What to do next is decided by `service/pipeline/next_step.py`."""

from __future__ import annotations

import logging

from service.batches.config import LifecycleConfig
from service.batches.finishing import finish
from service.batches.layout import lay_out
from service.kit.clock import utcnow
from service.models import Batch, BatchStatus, ItemStatus, PassKind, PassStatus
from service.pipeline.next_step import BatchProgress, NextStep, next_step
from service.store import Session
from service.store import batches as batches_store
from service.store import items as items_store
from service.store import passes as passes_store

logger = logging.getLogger(__name__)

FINAL_STATUS = {
    NextStep.FINISH_COMPLETED: BatchStatus.COMPLETED,
    NextStep.FINISH_FAILED: BatchStatus.FAILED,
    NextStep.FINISH_CANCELLED: BatchStatus.CANCELLED,
}


async def advance(session: Session, config: LifecycleConfig, batch: Batch) -> Batch:
    """One step of the batch's lifecycle, in the caller's (fenced) transaction; the batch as it ends up."""
    passes = await passes_store.of_batch(session, batch.id)
    status = batch.status
    for pass_ in passes:
        assert pass_.id is not None
        if pass_.status == PassStatus.PLANNED:
            if batch.cancel_requested:
                await passes_store.set_status(session, pass_.id, PassStatus.CANCELLED, finished_at=utcnow())
                pass_.status = PassStatus.CANCELLED
            else:
                count = await lay_out(session, config, batch, pass_)
                pass_.status = PassStatus.RUNNING if count else PassStatus.COMPLETED
                logger.info("batch %s: pass %d laid out with %d items", batch.id, pass_.number, count)
                if status == BatchStatus.QUEUED:
                    status = BatchStatus.RUNNING
                    await batches_store.set_status(session, batch.id, status)
        elif pass_.status == PassStatus.RUNNING and await passes_store.open_chunk_count(session, pass_.id) == 0:
            pass_.status = PassStatus.CANCELLED if batch.cancel_requested else PassStatus.COMPLETED
            await passes_store.set_status(session, pass_.id, pass_.status, finished_at=utcnow())
    counts = await items_store.status_counts(session, batch.id)
    progress = BatchProgress(
        has_active_pass=any(p.status in (PassStatus.PLANNED, PassStatus.RUNNING) for p in passes),
        has_fallback_pass=any(p.kind != PassKind.PRIMARY for p in passes),
        fallback_enabled=batch.fallback_enabled,
        cancel_requested=batch.cancel_requested,
        succeeded=counts.get(ItemStatus.SUCCEEDED, 0),
        failed=counts.get(ItemStatus.FAILED, 0),
        pending=counts.get(ItemStatus.PENDING, 0),
    )
    step = next_step(progress)
    if step == NextStep.PLAN_FALLBACK:
        fallback = await passes_store.insert(
            session, batch.id, kind=PassKind.FALLBACK, model=batch.fallback_model, params=batch.fallback_params
        )
        count = await lay_out(session, config, batch, fallback)
        logger.info("batch %s: fallback pass on %s with %d items", batch.id, batch.fallback_model, count)
    elif step in FINAL_STATUS:
        finished = await finish(session, config, batch, FINAL_STATUS[step])
        logger.info("batch %s finished: %s %s", batch.id, finished.status, counts)
        return finished
    fresh = await batches_store.get_batch_fresh(session, batch.id)
    assert fresh is not None
    return fresh
