"""The last step of a finished chunk (PROVIDER_FILE_CLEANUP): delete its files on Groq.

Once a chunk is DONE its files serve no one: the input, the output and error files, and any stray upload
carrying the chunk's name (an uploader that died before recording its file, or the SDK's own upload retry).
This is a leased step like the others, recorded in `files_deleted_at`, so a worker dying half-way leaves it
to the next one instead of leaving files behind. Groq deletes files after 30 days anyway.
"""

from __future__ import annotations

import logging

from service.db import transaction
from service.models import ChunkState, Pass, ProviderBatch, utcnow
from service.providers.groq import PermanentProviderError, ProviderNotFound
from service.workers.context import WorkerContext
from service.workers.leases import update_held_chunk
from service.workers.submission import chunk_key, upload_filename

logger = logging.getLogger(__name__)


async def _delete(ctx: WorkerContext, file_id: str) -> None:
    try:
        await ctx.provider.delete_file(file_id)
    except ProviderNotFound:
        pass  # already gone
    except PermanentProviderError as error:  # retrying cannot help; Groq's retention takes care of it
        logger.warning("could not delete file %s: %s", file_id, error)


async def delete_chunk_files(ctx: WorkerContext, row_id: int) -> None:
    """Delete a DONE chunk's files on Groq. Retryable provider errors propagate: the step is tried again."""
    async with ctx.sessions() as session:
        row = await session.get_one(ProviderBatch, row_id)
        pass_ = await session.get_one(Pass, row.pass_id)
    if row.state != ChunkState.DONE or row.files_deleted_at is not None:
        return
    known = [file_id for file_id in (row.input_file_id, row.output_file_id, row.error_file_id) if file_id]
    for file_id in dict.fromkeys(known):
        await _delete(ctx, file_id)
    name = upload_filename(chunk_key(row.batch_id, pass_.number, row.chunk_index))
    for upload in await ctx.provider.list_files():
        if upload.filename == name and upload.purpose == "batch":
            await _delete(ctx, upload.id)
    async with transaction(ctx.sessions) as session:
        await update_held_chunk(
            session,
            ctx.worker_id,
            row_id,
            ChunkState.DONE,
            files_deleted_at=utcnow(),
            lease_owner=None,  # nobody claims this chunk again: a lease left here would never be released
            lease_expires_at=None,
        )
