"""Batch-level steps: lay out planned passes, close finished passes, plan the fallback pass, finish."""

from __future__ import annotations

import logging

from sqlalchemy import func, update
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from service.db import rows_affected, transaction
from service.models import (
    TERMINAL_BATCH_STATUSES,
    Batch,
    BatchStatus,
    ChunkState,
    Item,
    ItemStatus,
    Pass,
    PassKind,
    PassStatus,
    ProviderBatch,
    utcnow,
)
from service.pipeline.progress import BatchProgress, NextStep, next_step
from service.providers.groq import PROVIDER_TERMINAL_STATUSES, PermanentProviderError, ProviderError
from service.webhooks.events import queue_terminal_event
from service.workers.circuit import record_failure
from service.workers.context import WorkerContext
from service.workers.heartbeat import LeaseLost, run_with_lease
from service.workers.leases import claim_batch, release_batch
from service.workers.planning import lay_out_pass

logger = logging.getLogger(__name__)


async def item_counts(session: AsyncSession, batch_id: str) -> dict[str, int]:
    rows = await session.execute(
        select(Item.status, func.count()).where(Item.batch_id == batch_id).group_by(Item.status)
    )
    return {status: count for status, count in rows}


async def _open_chunks(session: AsyncSession, pass_id: int) -> int:
    count = await session.scalar(
        select(func.count())
        .select_from(ProviderBatch)
        .where(ProviderBatch.pass_id == pass_id, ProviderBatch.state != ChunkState.DONE)
    )
    return int(count or 0)


async def _advance(session: AsyncSession, ctx: WorkerContext, batch: Batch) -> None:
    passes = list((await session.exec(select(Pass).where(Pass.batch_id == batch.id))).all())
    for pass_ in sorted(passes, key=lambda p: p.number):
        if pass_.status == PassStatus.PLANNED:
            if batch.cancel_requested:
                pass_.status = PassStatus.CANCELLED
                pass_.finished_at = utcnow()
                session.add(pass_)
            else:
                count = await lay_out_pass(session, ctx, batch, pass_)
                logger.info("batch %s: pass %d laid out with %d items", batch.id, pass_.number, count)
                if batch.status == BatchStatus.QUEUED:
                    batch.status = BatchStatus.RUNNING
        elif pass_.status == PassStatus.RUNNING and pass_.id is not None and await _open_chunks(session, pass_.id) == 0:
            pass_.status = PassStatus.CANCELLED if batch.cancel_requested else PassStatus.COMPLETED
            pass_.finished_at = utcnow()
            session.add(pass_)
    counts = await item_counts(session, batch.id)
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
    if step == NextStep.WAIT:
        pass
    elif step == NextStep.PLAN_FALLBACK:
        fallback = Pass(
            batch_id=batch.id,
            number=max(p.number for p in passes) + 1,
            kind=PassKind.FALLBACK,
            model=batch.fallback_model,
            params=batch.fallback_params,
        )
        session.add(fallback)
        await session.flush()
        count = await lay_out_pass(session, ctx, batch, fallback)
        logger.info("batch %s: fallback pass on %s with %d items", batch.id, batch.fallback_model, count)
    else:
        batch.status = {
            NextStep.FINISH_COMPLETED: BatchStatus.COMPLETED,
            NextStep.FINISH_FAILED: BatchStatus.FAILED,
            NextStep.FINISH_CANCELLED: BatchStatus.CANCELLED,
        }[step]
        batch.finished_at = utcnow()
        logger.info("batch %s finished: %s %s", batch.id, batch.status, counts)
    batch.updated_at = utcnow()
    session.add(batch)
    if batch.status in TERMINAL_BATCH_STATUSES:
        # In this transaction: the webhook event exists if and only if the terminal state does.
        await queue_terminal_event(session, ctx.settings, batch)


async def _advance_leased(ctx: WorkerContext, batch_id: str) -> None:
    async with ctx.sessions() as session:
        cancel_requested = await session.scalar(select(Batch.cancel_requested).where(Batch.id == batch_id))
    if cancel_requested:
        try:
            await send_cancellations(ctx, batch_id)
        except ProviderError as error:  # the cancels are sent again on the next sweep
            logger.warning("cancelling batch %s: %s", batch_id, error)
            await record_failure(ctx, error)
    async with transaction(ctx.sessions) as session:
        # The fence is the first statement: it locks the batch row (the database, on SQLite) until commit, and
        # matches nothing once another worker holds the batch or it has finished.
        fenced = await session.execute(
            update(Batch)
            .where(
                col(Batch.id) == batch_id,
                col(Batch.lease_owner) == ctx.worker_id,
                col(Batch.status).in_((BatchStatus.QUEUED, BatchStatus.RUNNING)),
            )
            .values(updated_at=utcnow())
        )
        if rows_affected(fenced):
            batch = await session.get_one(Batch, batch_id)
            await _advance(session, ctx, batch)
            if batch.status in TERMINAL_BATCH_STATUSES:  # finished work holds no lease, even if we die right after
                batch.lease_owner = None
                batch.lease_expires_at = None
                session.add(batch)


async def advance_batch(ctx: WorkerContext, batch_id: str) -> None:
    """Lay out, close, plan and finish what is due in one batch, under its lease (renewed while this runs)."""
    async with transaction(ctx.sessions) as session:
        claimed = await session.execute(claim_batch(batch_id, ctx.worker_id, ctx.lease_seconds))
        if not rows_affected(claimed):
            return
    try:
        await run_with_lease(ctx, Batch, batch_id, lambda: _advance_leased(ctx, batch_id))
    except LeaseLost:
        logger.warning("lost the lease on batch %s while advancing it; its new owner carries on", batch_id)
    finally:
        async with transaction(ctx.sessions) as session:
            await session.execute(release_batch(batch_id, ctx.worker_id))


async def send_cancellations(ctx: WorkerContext, batch_id: str) -> None:
    """Ask Groq to cancel every live provider batch of a cancelled batch; polling ingests what they kept."""
    async with ctx.sessions() as session:
        rows = (
            await session.exec(
                select(ProviderBatch).where(
                    ProviderBatch.batch_id == batch_id,
                    ProviderBatch.state == ChunkState.SUBMITTED,
                )
            )
        ).all()
    for row in rows:
        if row.provider_batch_id is None or row.provider_status in (
            *PROVIDER_TERMINAL_STATUSES,
            "cancelling",
        ):
            continue
        try:
            status = (await ctx.provider.cancel(row.provider_batch_id)).status
        except PermanentProviderError as error:
            # Typically: it finished meanwhile. The next poll ingests whatever it holds.
            logger.info("cancel of %s refused: %s", row.provider_batch_id, error)
            status = row.provider_status or "unknown"
        async with transaction(ctx.sessions) as session:
            await session.execute(
                update(ProviderBatch)
                .where(col(ProviderBatch.id) == row.id, col(ProviderBatch.state) == ChunkState.SUBMITTED)
                .values(provider_status=status, next_action_at=utcnow())
            )
