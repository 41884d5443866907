"""Send one chunk of a pass to Groq: spool its JSONL to disk, upload, create the provider batch.

The chunk goes PENDING -> UPLOADING (committed before any call to Groq) -> SUBMITTED. A chunk found in
UPLOADING may already have a provider batch (the worker died, or create answered 5xx after creating it),
so it is first looked up by the metadata key we attach; only if none exists is one created.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable
from pathlib import Path

from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from service.db import transaction
from service.models import Attempt, Batch, ChunkState, Item, Pass, ProviderBatch, utcnow
from service.observability.logging import bind_log_context
from service.pipeline import failure_codes
from service.pipeline.requests import request_line
from service.providers.groq import PermanentProviderError, ProviderBatchInfo, ProviderError
from service.workers.context import WorkerContext
from service.workers.heartbeat import LeaseLost, ensure_lease, protected
from service.workers.leases import update_held_chunk
from service.workers.outcomes import fail_pending_attempts, record_provider_batch
from service.workers.planning import pass_spec

logger = logging.getLogger(__name__)

CHUNK_METADATA_KEY = "llm_batch_chunk"


def chunk_key(batch_id: str, pass_number: int, chunk_index: int) -> str:
    return f"{batch_id}/pass-{pass_number}/chunk-{chunk_index}"


def chunk_metadata(batch: Batch, pass_: Pass, row: ProviderBatch) -> dict[str, str]:
    return {
        CHUNK_METADATA_KEY: chunk_key(batch.id, pass_.number, row.chunk_index),
        "llm_batch_id": batch.id,
        "pass": str(pass_.number),
        "chunk": str(row.chunk_index),
        "model": pass_.model,
    }


async def _write_spool_file(
    session: AsyncSession, ctx: WorkerContext, batch: Batch, pass_: Pass, row: ProviderBatch
) -> Path:
    path = ctx.spool_dir / f"{batch.id}-p{pass_.number}-c{row.chunk_index}-{ctx.worker_id.replace(':', '_')}.jsonl"
    query = (
        select(Item.custom_id, Item.body)
        .join(Attempt, col(Attempt.item_id) == col(Item.id))
        .where(Attempt.provider_batch_row_id == row.id)
        .order_by(col(Item.position))
        .execution_options(yield_per=1000)
    )
    result = await session.stream(query)
    spec = pass_spec(ctx, batch, pass_)
    with path.open("wb") as handle:
        async for custom_id, body in result:
            handle.write(request_line(spec, custom_id, body))
    return path


async def _load(session: AsyncSession, row_id: int) -> tuple[ProviderBatch, Pass, Batch]:
    row = await session.get_one(ProviderBatch, row_id)
    pass_ = await session.get_one(Pass, row.pass_id)
    batch = await session.get_one(Batch, row.batch_id)
    return row, pass_, batch


async def _adopt(ctx: WorkerContext, row_id: int, info: ProviderBatchInfo) -> bool:
    async with transaction(ctx.sessions) as session:
        if await update_held_chunk(
            session,
            ctx.worker_id,
            row_id,
            ChunkState.UPLOADING,
            state=ChunkState.SUBMITTED,
            submitted_at=utcnow(),
            next_action_at=utcnow(),
        ):
            await record_provider_batch(session, row_id, info)
            return True
    return False


def upload_filename(key: str) -> str:
    """The name of a chunk's input file on Groq: it carries the chunk key, so a stray upload can be recognised."""
    return f"{key.replace('/', '_')}.jsonl"


async def best_effort(what: str, call: Awaitable[object]) -> None:
    try:
        await call
    except ProviderError as error:  # cleanup only: Groq deletes files after 30 days anyway
        logger.warning("could not %s: %s", what, error)


async def delete_uploads(ctx: WorkerContext, key: str, keep: set[str | None]) -> None:
    """Delete the chunk's uploads on Groq (recognised by their name) except those in `keep`: the uploads of
    a worker that died before recording them, or the SDK's own upload retries, are never used by a batch."""
    if not ctx.settings.provider_file_cleanup:
        return
    name = upload_filename(key)
    try:
        files = await ctx.provider.list_files()
    except ProviderError as error:
        logger.warning("could not list files to clean up the uploads of %s: %s", key, error)
        return
    for upload in files:
        if upload.filename == name and upload.purpose == "batch" and upload.id not in keep:
            await best_effort(f"delete upload {upload.id} of {key}", ctx.provider.delete_file(upload.id))


async def _after_adoption(
    ctx: WorkerContext, key: str, adopted: ProviderBatchInfo, others: list[ProviderBatchInfo]
) -> None:
    """Clear what other attempts at this chunk left on Groq: a duplicate provider batch (only a worker paused
    past its lease can make one) is cancelled; uploads for the chunk that no batch uses are deleted."""
    for other in others:
        if other.id != adopted.id and not other.is_terminal:
            logger.warning("cancelling duplicate provider batch %s for %s (kept %s)", other.id, key, adopted.id)
            await best_effort(f"cancel duplicate provider batch {other.id}", ctx.provider.cancel(other.id))
    await delete_uploads(ctx, key, keep={adopted.input_file_id, *(other.input_file_id for other in others)})


async def _disown(ctx: WorkerContext, row_id: int, key: str, created: ProviderBatchInfo) -> None:
    """We created `created` but lost the chunk before recording it (this worker was paused past its lease).
    If the chunk's new owner adopted our batch, nothing is wrong; otherwise ours is a duplicate: cancel it."""
    async with ctx.sessions() as session:
        row = await session.get_one(ProviderBatch, row_id)
    if row.provider_batch_id is not None and row.provider_batch_id != created.id:
        logger.warning("lost %s after creating %s; cancelling it (kept: %s)", key, created.id, row.provider_batch_id)
        await best_effort(f"cancel duplicate provider batch {created.id}", ctx.provider.cancel(created.id))
    raise LeaseLost(f"chunk {row_id}")


async def abandon_chunk(ctx: WorkerContext, row_id: int, expected_state: str, code: str, message: str) -> None:
    """Give up on a chunk before it reached Groq: every item in it fails with `code` (never lost)."""
    async with transaction(ctx.sessions) as session:
        if await update_held_chunk(
            session,
            ctx.worker_id,
            row_id,
            expected_state,
            state=ChunkState.DONE,
            finished_at=utcnow(),
            last_error=message,
            lease_owner=None,
            lease_expires_at=None,
        ):
            row = await session.get_one(ProviderBatch, row_id)
            pass_ = await session.get_one(Pass, row.pass_id)
            await fail_pending_attempts(session, ctx, row, pass_, code, message)


async def submit_chunk(ctx: WorkerContext, row_id: int) -> None:
    """Bring a PENDING or UPLOADING chunk to SUBMITTED. Provider errors propagate to the caller."""
    async with transaction(ctx.sessions) as session:
        row, pass_, batch = await _load(session, row_id)
        state = row.state
        if state == ChunkState.PENDING:
            if batch.cancel_requested:
                state = "cancel"
            elif await update_held_chunk(
                session, ctx.worker_id, row_id, ChunkState.PENDING, state=ChunkState.UPLOADING
            ):
                state = ChunkState.UPLOADING
            else:
                raise LeaseLost(f"chunk {row_id}")
    if state == "cancel":
        await abandon_chunk(
            ctx,
            row_id,
            ChunkState.PENDING,
            failure_codes.CANCELLED,
            "the batch was cancelled before this chunk was sent",
        )
        return
    if state != ChunkState.UPLOADING:
        return
    key = chunk_key(batch.id, pass_.number, row.chunk_index)
    found = await ctx.provider.find_batches(CHUNK_METADATA_KEY, key)
    if found:
        existing = found[0]
        bind_log_context(provider_batch_id=existing.id)
        logger.info("adopting provider batch %s for %s", existing.id, key)
        if not await _adopt(ctx, row_id, existing):
            raise LeaseLost(f"chunk {row_id}")
        await _after_adoption(ctx, key, existing, found)
        return
    if batch.cancel_requested:
        await abandon_chunk(
            ctx,
            row_id,
            ChunkState.UPLOADING,
            failure_codes.CANCELLED,
            "the batch was cancelled before this chunk was sent",
        )
        return
    input_file_id = row.input_file_id
    if input_file_id is None:
        async with ctx.sessions() as session:
            path = await _write_spool_file(session, ctx, batch, pass_, row)
        try:
            input_file_id = await ctx.provider.upload_jsonl(path, filename=upload_filename(key))
        except PermanentProviderError as error:
            await abandon_chunk(
                ctx, row_id, ChunkState.UPLOADING, failure_codes.BATCH_FAILED, f"Groq refused the input file: {error}"
            )
            return
        finally:
            path.unlink(missing_ok=True)
        async with transaction(ctx.sessions) as session:
            recorded = await update_held_chunk(
                session, ctx.worker_id, row_id, ChunkState.UPLOADING, input_file_id=input_file_id
            )
        if not recorded:
            await best_effort(f"delete unused upload {input_file_id}", ctx.provider.delete_file(input_file_id))
            raise LeaseLost(f"chunk {row_id}")
    async with transaction(ctx.sessions) as session:
        await ensure_lease(session, ctx, ProviderBatch, row_id)
    async with protected():  # once Groq is asked, what it answers is recorded (or disowned), whatever happens
        try:
            info = await ctx.provider.create_batch(input_file_id, metadata=chunk_metadata(batch, pass_, row))
        except PermanentProviderError as error:
            await abandon_chunk(
                ctx, row_id, ChunkState.UPLOADING, failure_codes.BATCH_FAILED, f"Groq refused the batch: {error}"
            )
            return
        bind_log_context(provider_batch_id=info.id)
        logger.info("created provider batch %s for %s (%d lines)", info.id, key, row.line_count)
        if not await _adopt(ctx, row_id, info):
            await _disown(ctx, row_id, key, info)
    await _after_adoption(ctx, key, info, [])
