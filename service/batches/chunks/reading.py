"""What the runner of a chunk's step may want to know of the chunk without touching it."""

from __future__ import annotations

from service.batches.chunks.context import StepContext
from service.store import chunks as chunks_store


async def log_fields(ctx: StepContext, chunk_id: int) -> dict[str, object]:
    """The batch, pass number and provider batch of a chunk, for the log lines of a step on it."""
    async with ctx.sessions() as session:
        return await chunks_store.log_fields(session, chunk_id)
