"""Send one chunk of a pass to Groq: spool its JSONL to disk, upload, create the provider batch.

The chunk goes PENDING -> UPLOADING (committed before any call to Groq) -> SUBMITTED. A chunk found in
UPLOADING may already have a provider batch (the worker died, or create answered 5xx after creating it),
so it is first looked up by the metadata key we attach; only if none exists is one created.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable
from pathlib import Path

from service.batches.lines import spec_of_pass
from service.batches.merging import fail_unsent
from service.kit.clock import utcnow
from service.models import Batch, ChunkState, Pass, ProviderBatch
from service.observability.logging import bind_log_context
from service.pipeline import failure_codes
from service.pipeline.chunk_names import CHUNK_METADATA_KEY, chunk_key, chunk_metadata, upload_filename
from service.pipeline.requests import request_line
from service.providers.groq import PermanentProviderError, ProviderBatchInfo, ProviderError
from service.store import chunks as chunks_store
from service.store import items as items_store
from service.store import transaction
from service.workers.context import WorkerContext
from service.workers.file_cleanup import delete_uploads
from service.workers.leasing import LeaseLost, ensure_lease, protected
from service.workers.provider_state import provider_state

logger = logging.getLogger(__name__)

CANCELLED_BEFORE_SENT = "the batch was cancelled before this chunk was sent"


async def _write_spool_file(ctx: WorkerContext, batch: Batch, pass_: Pass, chunk: ProviderBatch) -> Path:
    assert chunk.id is not None
    name = f"{batch.id}-p{pass_.number}-c{chunk.chunk_index}-{ctx.worker_id.replace(':', '_')}.jsonl"
    path = ctx.spool_dir / name
    spec = spec_of_pass(ctx.config, batch, pass_)
    async with ctx.sessions() as session:
        with path.open("wb") as handle:
            async for custom_id, body in items_store.stream_for_chunk(session, chunk.id):
                handle.write(request_line(spec, custom_id, body))
    return path


async def _adopt(ctx: WorkerContext, chunk_id: int, info: ProviderBatchInfo) -> bool:
    async with transaction(ctx.sessions) as session:
        if await chunks_store.update_held(
            session,
            ctx.worker_id,
            chunk_id,
            ChunkState.UPLOADING,
            state=ChunkState.SUBMITTED,
            submitted_at=utcnow(),
            next_action_at=utcnow(),
        ):
            await chunks_store.record_provider_state(session, chunk_id, provider_state(info))
            return True
    return False


async def best_effort(what: str, call: Awaitable[object]) -> None:
    try:
        await call
    except ProviderError as error:  # cleanup only: Groq deletes files after 30 days anyway
        logger.warning("could not %s: %s", what, error)


async def _after_adoption(
    ctx: WorkerContext, key: str, adopted: ProviderBatchInfo, others: list[ProviderBatchInfo]
) -> None:
    """Clear what other attempts at this chunk left on Groq: a duplicate provider batch (only a worker paused
    past its lease can make one) is cancelled; uploads for the chunk that no batch uses are deleted."""
    for other in others:
        if other.id != adopted.id and not other.is_terminal:
            logger.warning("cancelling duplicate provider batch %s for %s (kept %s)", other.id, key, adopted.id)
            await best_effort(f"cancel duplicate provider batch {other.id}", ctx.provider.cancel(other.id))
    if ctx.settings.provider_file_cleanup:
        keep = {adopted.input_file_id, *(other.input_file_id for other in others)}
        await best_effort(f"clean up the uploads of {key}", delete_uploads(ctx, key, keep))


async def _disown(ctx: WorkerContext, chunk_id: int, key: str, created: ProviderBatchInfo) -> None:
    """We created `created` but lost the chunk before recording it (this worker was paused past its lease).
    If the chunk's new owner adopted our batch, nothing is wrong; otherwise ours is a duplicate: cancel it."""
    async with ctx.sessions() as session:
        chunk = await chunks_store.get(session, chunk_id)
    if chunk.provider_batch_id is not None and chunk.provider_batch_id != created.id:
        logger.warning("lost %s after creating %s; cancelling it (kept: %s)", key, created.id, chunk.provider_batch_id)
        await best_effort(f"cancel duplicate provider batch {created.id}", ctx.provider.cancel(created.id))
    raise LeaseLost(f"chunk {chunk_id}")


async def abandon_chunk(ctx: WorkerContext, chunk_id: int, expected_state: str, code: str, message: str) -> None:
    """Give up on a chunk before it reached Groq: every item in it fails with `code` (never lost)."""
    async with transaction(ctx.sessions) as session:
        if await chunks_store.update_held(
            session,
            ctx.worker_id,
            chunk_id,
            expected_state,
            state=ChunkState.DONE,
            finished_at=utcnow(),
            last_error=message,
            lease_owner=None,
            lease_expires_at=None,
        ):
            _chunk, pass_, _batch = await chunks_store.with_pass_and_batch(session, chunk_id)
            await fail_unsent(session, ctx.config, chunk_id, pass_, code, message)


async def _start_upload(ctx: WorkerContext, chunk_id: int) -> str | None:
    """PENDING -> UPLOADING, committed before any call to Groq; the state to carry on from, or None when the
    chunk was abandoned (its batch was cancelled)."""
    async with transaction(ctx.sessions) as session:
        chunk, _pass, batch = await chunks_store.with_pass_and_batch(session, chunk_id)
        if chunk.state != ChunkState.PENDING:
            return chunk.state
        if batch.cancel_requested:
            cancel = True
        elif await chunks_store.update_held(
            session, ctx.worker_id, chunk_id, ChunkState.PENDING, state=ChunkState.UPLOADING
        ):
            return ChunkState.UPLOADING
        else:
            raise LeaseLost(f"chunk {chunk_id}")
    if cancel:
        await abandon_chunk(ctx, chunk_id, ChunkState.PENDING, failure_codes.CANCELLED, CANCELLED_BEFORE_SENT)
    return None


async def submit_chunk(ctx: WorkerContext, chunk_id: int) -> None:
    """Bring a PENDING or UPLOADING chunk to SUBMITTED. Provider errors propagate to the caller."""
    if await _start_upload(ctx, chunk_id) != ChunkState.UPLOADING:
        return
    async with ctx.sessions() as session:
        chunk, pass_, batch = await chunks_store.with_pass_and_batch(session, chunk_id)
    key = chunk_key(batch.id, pass_.number, chunk.chunk_index)
    found = await ctx.provider.find_batches(CHUNK_METADATA_KEY, key)
    if found:
        existing = found[0]
        bind_log_context(provider_batch_id=existing.id)
        logger.info("adopting provider batch %s for %s", existing.id, key)
        if not await _adopt(ctx, chunk_id, existing):
            raise LeaseLost(f"chunk {chunk_id}")
        await _after_adoption(ctx, key, existing, found)
        return
    if batch.cancel_requested:
        await abandon_chunk(ctx, chunk_id, ChunkState.UPLOADING, failure_codes.CANCELLED, CANCELLED_BEFORE_SENT)
        return
    input_file_id = chunk.input_file_id
    if input_file_id is None:
        path = await _write_spool_file(ctx, batch, pass_, chunk)
        try:
            input_file_id = await ctx.provider.upload_jsonl(path, filename=upload_filename(key))
        except PermanentProviderError as error:
            await abandon_chunk(
                ctx, chunk_id, ChunkState.UPLOADING, failure_codes.BATCH_FAILED, f"Groq refused the input file: {error}"
            )
            return
        finally:
            path.unlink(missing_ok=True)
        async with transaction(ctx.sessions) as session:
            recorded = await chunks_store.update_held(
                session, ctx.worker_id, chunk_id, ChunkState.UPLOADING, input_file_id=input_file_id
            )
        if not recorded:
            await best_effort(f"delete unused upload {input_file_id}", ctx.provider.delete_file(input_file_id))
            raise LeaseLost(f"chunk {chunk_id}")
    await ensure_lease(ctx, ProviderBatch, chunk_id)
    async with protected():  # once Groq is asked, what it answers is recorded (or disowned), whatever happens
        try:
            info = await ctx.provider.create_batch(
                input_file_id, metadata=chunk_metadata(batch.id, pass_.number, chunk.chunk_index, pass_.model)
            )
        except PermanentProviderError as error:
            await abandon_chunk(
                ctx, chunk_id, ChunkState.UPLOADING, failure_codes.BATCH_FAILED, f"Groq refused the batch: {error}"
            )
            return
        bind_log_context(provider_batch_id=info.id)
        logger.info("created provider batch %s for %s (%d lines)", info.id, key, chunk.line_count)
        if not await _adopt(ctx, chunk_id, info):
            await _disown(ctx, chunk_id, key, info)
    await _after_adoption(ctx, key, info, [])
