"""A chunk step the provider failed (429, 5xx, a timeout) is not an item's failure: the chunk's next step is
pushed into the future by its own back-off, honouring Retry-After, and tried again then."""

from __future__ import annotations

import logging
from datetime import timedelta

from service.batches.chunks.context import StepContext
from service.kit.clock import utcnow
from service.kit.fencing import TryLater
from service.pipeline.backoff import backoff_seconds
from service.providers.protocol import RetryableProviderError
from service.store import chunks as chunks_store
from service.store import transaction

logger = logging.getLogger(__name__)


def retry_delay(ctx: StepContext, retry_count: int, error: Exception) -> float:
    retry_after = error.retry_after if isinstance(error, RetryableProviderError) else None
    return backoff_seconds(
        retry_count,
        base=min(1.0, ctx.settings.poll_interval_seconds),
        cap=ctx.settings.provider_backoff_max_seconds,
        retry_after=retry_after,
    )


async def defer_chunk(ctx: StepContext, chunk_id: int, error: Exception) -> None:
    """The step failed: again after the chunk's own back-off (longer at each failure in a row)."""
    async with transaction(ctx.sessions) as session:
        chunk = await chunks_store.get(session, chunk_id)
        delay = retry_delay(ctx, chunk.retry_count, error)
        await chunks_store.defer_held(
            session,
            ctx.worker_id,
            chunk_id,
            until=utcnow() + timedelta(seconds=delay),
            retry_count=chunk.retry_count + 1,
            error=str(error),
        )
    logger.warning("chunk %s deferred %.2fs: %s", chunk_id, delay, error)


async def postpone_chunk(ctx: StepContext, chunk_id: int, later: TryLater) -> None:
    """The step could not go on now, for a reason of ours: again in `later.seconds`, no failure counted."""
    async with transaction(ctx.sessions) as session:
        chunk = await chunks_store.get(session, chunk_id)
        await chunks_store.defer_held(
            session,
            ctx.worker_id,
            chunk_id,
            until=utcnow() + timedelta(seconds=later.seconds),
            retry_count=chunk.retry_count,
            error=str(later),
        )
