"""Deleting our files on Groq (PROVIDER_FILE_CLEANUP) once they serve no one; Groq keeps them 30 days otherwise.

Two callers: the last step of a finished chunk (its input, output and error files, and any stray upload
carrying its name), and the submission step right after a chunk's provider batch exists (uploads for the
chunk that no batch uses: a worker that died before recording its upload, or the SDK's own upload retry).
The cleanup step is leased like the others and recorded in `files_deleted_at`, so a worker dying half-way
leaves it to the next one instead of leaving files behind.
"""

from __future__ import annotations

import logging
from collections.abc import Collection

from service.kit.clock import utcnow
from service.models import ChunkState
from service.pipeline.chunk_names import chunk_key, upload_filename
from service.providers.groq import PermanentProviderError, ProviderNotFound
from service.store import chunks as chunks_store
from service.store import transaction
from service.workers.context import WorkerContext

logger = logging.getLogger(__name__)


async def delete_file(ctx: WorkerContext, file_id: str) -> None:
    """Delete one file; gone already or refused is fine. Retryable provider errors propagate."""
    try:
        await ctx.provider.delete_file(file_id)
    except ProviderNotFound:
        pass
    except PermanentProviderError as error:  # retrying cannot help; Groq's retention takes care of it
        logger.warning("could not delete file %s: %s", file_id, error)


async def delete_uploads(ctx: WorkerContext, key: str, keep: Collection[str | None] = ()) -> None:
    """Delete the uploads named after chunk `key`, except those in `keep`. Retryable errors propagate."""
    name = upload_filename(key)
    for upload in await ctx.provider.list_files():
        if upload.filename == name and upload.purpose == "batch" and upload.id not in keep:
            await delete_file(ctx, upload.id)


async def delete_chunk_files(ctx: WorkerContext, chunk_id: int) -> None:
    """The cleanup step of a DONE chunk. Retryable provider errors propagate: the step is tried again."""
    async with ctx.sessions() as session:
        chunk, pass_, _batch = await chunks_store.with_pass_and_batch(session, chunk_id)
    if chunk.state != ChunkState.DONE or chunk.files_deleted_at is not None:
        return
    known = [file_id for file_id in (chunk.input_file_id, chunk.output_file_id, chunk.error_file_id) if file_id]
    for file_id in dict.fromkeys(known):
        await delete_file(ctx, file_id)
    await delete_uploads(ctx, chunk_key(chunk.batch_id, pass_.number, chunk.chunk_index))
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
