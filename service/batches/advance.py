"""Advancing a batch (a worker step, under the batch's lease): lay out planned passes, close finished ones,
start the cascade's next round, finish.

The cascade runs in rounds: while any pass is planned or running, the batch waits; when none is, every tier
with items queued for it gets a pass (the same tier again for a raised budget or a resend, a later tier for
an escalation), laid out at once, tier by tier from the first. With nothing queued, the batch finishes. A
cancelled batch lays out nothing more; whatever was not sent fails with `cancelled`.

With a budget, a round's passes share what is left of it (`layout.budget_plan`), the first tier first: its
items are the cheapest to finish, so they complete the most items per dollar. Items that do not fit wait for
the next round while the round's own reservations are out; the batch says how many wait (`budget_waiting`).
"""

from __future__ import annotations

import logging

from service.batches.config import LifecycleConfig
from service.batches.finishing import finish
from service.batches.layout import budget_plan, lay_out
from service.batches.tiers import tiers_of
from service.kit.clock import utcnow
from service.models import Batch, BatchStatus, Pass, PassKind, PassStatus
from service.pipeline import failure_codes as codes
from service.pipeline.budgeting import BudgetPlan
from service.store import Session, Sessions, transaction
from service.store import batches as batches_store
from service.store import items as items_store
from service.store import passes as passes_store
from service.store.passes import FINAL

logger = logging.getLogger(__name__)

CANCELLED_MESSAGE = "the batch was cancelled before this item was sent"


def final_status(batch: Batch) -> BatchStatus:
    if batch.cancel_requested:
        return BatchStatus.CANCELLED
    if batch.succeeded == 0 and batch.failed > 0:
        return BatchStatus.FAILED
    return BatchStatus.COMPLETED


async def _cancel_unsent(session: Session, batch: Batch) -> None:
    """Items no pass will send now fail with `cancelled` (every item still ends with one merged row)."""
    pending, queued = await items_store.fail_unstarted(session, batch.id, codes.CANCELLED, CANCELLED_MESSAGE)
    if pending or queued:
        await batches_store.add_to_counters(
            session, batch.id, pending=-pending, retrying=-queued, failed=pending + queued
        )
        await passes_store.count_failures(session, batch.id, FINAL, {codes.CANCELLED: pending + queued})


async def _next_round(session: Session, config: LifecycleConfig, batch: Batch, plan: BudgetPlan) -> int:
    """A pass for every tier with items queued (and one more on a retry's model for the items a retry pass left
    waiting for budget); how many passes."""
    queued = await items_store.queued_tiers(session, batch.id)
    tiers = tiers_of(batch)
    for tier_index in sorted(queued):
        tier = tiers[tier_index]
        pass_ = await passes_store.insert(
            session,
            batch.id,
            kind=PassKind.CASCADE,
            provider=tier.provider,
            model=tier.model,
            tier=tier_index,
            params=tier.params,
            strict_mode=batch.strict_mode,
            planned_items=queued[tier_index],
        )
        count = await lay_out(session, config, batch, pass_, plan)
        logger.info(
            "batch %s: pass %d on tier %d (%s) with %d items", batch.id, pass_.number, tier_index, tier.name, count
        )
    retry_waiting = await items_store.retry_queued(session, batch.id)
    if retry_waiting:
        await _retry_again(session, config, batch, plan, retry_waiting)
    return len(queued) + (1 if retry_waiting else 0)


async def _retry_again(session: Session, config: LifecycleConfig, batch: Batch, plan: BudgetPlan, items: int) -> None:
    """Items a retry pass left waiting for budget go out on that retry's model, in a pass like it."""
    last: Pass = next(p for p in reversed(await passes_store.of_batch(session, batch.id)) if p.kind == PassKind.RETRY)
    pass_ = await passes_store.insert(
        session,
        batch.id,
        kind=PassKind.RETRY,
        provider=last.provider,
        model=last.model,
        tier=last.tier,
        params=last.params,
        strict_mode=batch.strict_mode,
        planned_items=items,
    )
    count = await lay_out(session, config, batch, pass_, plan)
    logger.info("batch %s: retry pass %d again with %d items", batch.id, pass_.number, count)


async def advance(session: Session, config: LifecycleConfig, batch: Batch) -> Batch:
    """One step of the batch's lifecycle, in the caller's (fenced) transaction; the batch as it ends up."""
    if batch.cancel_requested:
        await _cancel_unsent(session, batch)
    plan: BudgetPlan | None = None
    for pass_ in await passes_store.of_batch(session, batch.id):
        assert pass_.id is not None
        if pass_.status == PassStatus.PLANNED:
            if batch.cancel_requested:
                await passes_store.set_status(session, pass_.id, PassStatus.CANCELLED, finished_at=utcnow())
                continue
            plan = plan or await budget_plan(session, batch)
            count = await lay_out(session, config, batch, pass_, plan)
            logger.info("batch %s: pass %d laid out with %d items", batch.id, pass_.number, count)
            if batch.status == BatchStatus.QUEUED:
                await batches_store.set_status(session, batch.id, BatchStatus.RUNNING)
        elif pass_.status == PassStatus.RUNNING and await passes_store.open_chunk_count(session, pass_.id) == 0:
            closed = PassStatus.CANCELLED if batch.cancel_requested else PassStatus.COMPLETED
            await passes_store.set_status(session, pass_.id, closed, finished_at=utcnow())
    if plan is not None:
        await batches_store.set_budget_waiting(session, batch.id, plan.waiting)
    passes = await passes_store.of_batch(session, batch.id)
    if any(p.status in (PassStatus.PLANNED, PassStatus.RUNNING) for p in passes):
        return await _fresh(session, batch.id)
    if not batch.cancel_requested:
        plan = await budget_plan(session, batch)
        if await _next_round(session, config, batch, plan):
            await batches_store.set_budget_waiting(session, batch.id, plan.waiting)
            return await _fresh(session, batch.id)
    if batch.budget_waiting:  # a cancelled batch's waiting items failed with `cancelled`
        await batches_store.set_budget_waiting(session, batch.id, 0)
    current = await _fresh(session, batch.id)
    finished = await finish(session, config, current, final_status(current))
    logger.info(
        "batch %s finished: %s (%d succeeded, %d failed)",
        batch.id,
        finished.status,
        finished.succeeded,
        finished.failed,
    )
    return finished


async def advance_held(sessions: Sessions, config: LifecycleConfig, worker_id: str, batch_id: str) -> None:
    """Advance a batch `worker_id` holds, in one transaction whose first write is fenced on its lease (a worker
    that lost the batch, or a batch that has finished, changes nothing)."""
    async with transaction(sessions) as session:
        if await batches_store.fence_open_batch(session, batch_id, worker_id):
            batch = await batches_store.get_batch(session, batch_id)
            assert batch is not None
            await advance(session, config, batch)


async def _fresh(session: Session, batch_id: str) -> Batch:
    batch = await batches_store.get_batch(session, batch_id)
    assert batch is not None
    return batch
