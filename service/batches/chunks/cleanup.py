"""Deleting what a finished chunk left on its provider (PROVIDER_FILE_CLEANUP): its input and result files (or
its batch, where the provider deletes batches), and any stray upload carrying its name. Providers keep them for
weeks otherwise.

The step is leased like the others and recorded in `files_deleted_at`, so a worker dying half-way leaves it to the
next one instead of leaving files behind.
"""

from __future__ import annotations

from service.batches.chunks.context import StepContext, provider_of
from service.kit.clock import utcnow
from service.models import Chunk, ChunkState
from service.pipeline.chunk_names import chunk_key
from service.providers.protocol import BatchProvider
from service.store import chunks as chunks_store
from service.store import transaction


async def delete_provider_files(provider: BatchProvider, chunk: Chunk, pass_number: int) -> None:
    """What the provider keeps of the chunk: its input and result files (its batch, where the provider deletes
    batches) and any upload carrying its name. Gone already is fine; retryable errors propagate."""
    known = [file_id for file_id in (chunk.input_file_id, chunk.output_file_id, chunk.error_file_id) if file_id]
    await provider.delete_results(chunk.provider_batch_id, known)
    await provider.delete_uploads(chunk_key(chunk.batch_id, pass_number, chunk.chunk_index))


async def clean_up_chunk(ctx: StepContext, chunk_id: int) -> None:
    """The cleanup step of a DONE chunk. Retryable provider errors propagate: the step is tried again."""
    async with ctx.sessions() as session:
        chunk, pass_, _batch = await chunks_store.with_pass_and_batch(session, chunk_id)
    if chunk.state != ChunkState.DONE or chunk.files_deleted_at is not None:
        return
    await delete_provider_files(provider_of(ctx, pass_), chunk, pass_.number)
    async with transaction(ctx.sessions) as session:
        await chunks_store.update_held(
            session,
            ctx.worker_id,
            chunk_id,
            ChunkState.DONE,
            files_deleted_at=utcnow(),
            lease_owner=None,  # nobody claims this chunk again: a lease left here would never be released
            lease_expires_at=None,
        )
