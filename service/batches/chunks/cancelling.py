"""Cancelling a cancelled batch's chunks at the provider: each live provider batch is asked once to cancel, and
its chunk is polled at once to ingest whatever it kept (items it never ran fail as cancelled)."""

from __future__ import annotations

import logging

from service.batches.chunks.context import StepContext, provider_of
from service.providers.protocol import PermanentProviderError
from service.store import batches as batches_store
from service.store import chunks as chunks_store
from service.store import transaction

logger = logging.getLogger(__name__)


async def send_cancellations(ctx: StepContext, batch_id: str) -> None:
    """Ask the provider to cancel every live provider batch of a cancelled batch. Retryable provider errors
    propagate (the cancels not yet sent are sent on the next sweep)."""
    async with ctx.sessions() as session:
        chunks = await chunks_store.to_cancel(session, batch_id)
    for chunk, pass_ in chunks:
        assert chunk.id is not None and chunk.provider_batch_id is not None
        provider = provider_of(ctx, pass_)
        try:
            status = (await provider.cancel(chunk.provider_batch_id)).status
        except PermanentProviderError as error:
            # Typically: it finished meanwhile. The next poll ingests whatever it holds.
            logger.info("cancel of %s refused: %s", chunk.provider_batch_id, error)
            status = chunk.provider_status or "unknown"
        async with transaction(ctx.sessions) as session:
            await chunks_store.note_cancel_sent(session, chunk.id, status)


async def cancel_if_requested(ctx: StepContext, batch_id: str) -> None:
    """A batch being cancelled has its live provider batches cancelled first (before it is advanced)."""
    async with ctx.sessions() as session:
        requested = await batches_store.cancel_requested(session, batch_id)
    if requested:
        await send_cancellations(ctx, batch_id)
