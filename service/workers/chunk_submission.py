"""Send one chunk of a pass to Groq: spool its JSONL to disk, upload, create the provider batch.

The chunk goes PENDING -> UPLOADING (committed before any call to Groq) -> SUBMITTED. A chunk found in
UPLOADING may already have a provider batch (the worker died, or create answered 5xx after creating it),
so it is first looked up by the metadata key we attach; only if none exists is one created.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Awaitable
from pathlib import Path

import orjson

from service.batches.layout import layout_spool_path
from service.batches.lines import spec_of_pass
from service.batches.merging import fail_unsent
from service.kit.clock import utcnow
from service.kit.spooling import SPOOL_BUFFER_BYTES
from service.models import Batch, Chunk, ChunkState, Pass
from service.observability.logging import bind_log_context
from service.pipeline import failure_codes
from service.pipeline.chunk_names import CHUNK_METADATA_KEY, chunk_key, chunk_metadata, upload_filename
from service.pipeline.cost import usd_text
from service.providers.groq import PermanentProviderError, ProviderBatchInfo, ProviderError
from service.store import batches as batches_store
from service.store import chunks as chunks_store
from service.store import items as items_store
from service.store import transaction
from service.workers.context import WorkerContext
from service.workers.file_cleanup import delete_uploads
from service.workers.leasing import LeaseLost, ensure_lease, protected
from service.workers.provider_state import provider_state

logger = logging.getLogger(__name__)

CANCELLED_BEFORE_SENT = "the batch was cancelled before this chunk was sent"


def _file_digest(path: Path) -> str | None:
    try:
        with path.open("rb") as handle:
            return hashlib.file_digest(handle, "sha256").hexdigest()
    except FileNotFoundError:
        return None


async def _spool_file(ctx: WorkerContext, batch: Batch, pass_: Pass, chunk: Chunk) -> Path:
    """The chunk's JSONL: the file written when the pass was laid out, when this host has it unchanged;
    otherwise the lines are built again from the items (another host laid the pass out)."""
    laid_out = layout_spool_path(ctx.spool_dir, batch.id, pass_.number, chunk.chunk_index)
    if chunk.spool_sha256 is not None and _file_digest(laid_out) == chunk.spool_sha256:
        return laid_out
    assert chunk.id is not None
    name = f"{batch.id}-p{pass_.number}-c{chunk.chunk_index}-{ctx.worker_id.replace(':', '_')}.jsonl"
    path = ctx.spool_dir / name
    spec = spec_of_pass(ctx.config, batch, pass_)
    async with ctx.sessions() as session:
        with path.open("wb", buffering=SPOOL_BUFFER_BYTES) as handle:
            async for custom_id, body_json, overrides_json in items_store.stream_for_chunk(session, chunk.id):
                overrides = orjson.loads(overrides_json) if overrides_json else None
                handle.write(spec.build(custom_id, orjson.loads(body_json), overrides).line)
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
    """Give up on a chunk before it reached Groq: every item in it fails with `code` (and moves on, or stops, as
    routing says); a reservation it held is given back."""
    async with transaction(ctx.sessions) as session:
        chunk = await chunks_store.get(session, chunk_id)
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
            _chunk, pass_, batch = await chunks_store.with_pass_and_batch(session, chunk_id)
            released = chunk.worst_case_pico if chunk.reserved else 0
            await fail_unsent(session, ctx.config, batch, pass_, chunk_id, code, message, released_pico=released)
    ctx.wake()


class _OverBudget(Exception):
    """The chunk's worst case does not fit in what is left of the batch's budget."""


def _budget_message(batch: Batch, chunk: Chunk) -> str:
    left = (batch.budget_pico or 0) - batch.cost_pico - batch.reserved_pico
    return (
        f"not sent: this provider batch could cost up to ${usd_text(chunk.worst_case_pico)}, more than the "
        f"${usd_text(max(0, left))} left of the batch's budget (${usd_text(batch.budget_pico or 0)})"
    )


async def _start_upload(ctx: WorkerContext, chunk_id: int) -> str | None:
    """PENDING -> UPLOADING, committed before any call to Groq, in the same transaction as the chunk's budget
    reservation (a conditional write: several workers reserving at once never overshoot). The state to carry on
    from, or None when the chunk was abandoned (its batch was cancelled, or it does not fit the budget)."""
    refusal: tuple[str, str] | None = None
    try:
        async with transaction(ctx.sessions) as session:
            chunk, _pass, batch = await chunks_store.with_pass_and_batch(session, chunk_id)
            if chunk.state != ChunkState.PENDING:
                return chunk.state
            if batch.cancel_requested:
                refusal = (failure_codes.CANCELLED, CANCELLED_BEFORE_SENT)
            else:
                reserve = batch.budget_pico is not None
                if not await chunks_store.update_held(
                    session, ctx.worker_id, chunk_id, ChunkState.PENDING, state=ChunkState.UPLOADING, reserved=reserve
                ):
                    raise LeaseLost(f"chunk {chunk_id}")
                if reserve and not await batches_store.reserve(session, batch.id, chunk.worst_case_pico):
                    raise _OverBudget(_budget_message(batch, chunk))
                return ChunkState.UPLOADING
    except _OverBudget as over:
        refusal = (failure_codes.BUDGET_EXCEEDED, str(over))
    assert refusal is not None
    await abandon_chunk(ctx, chunk_id, ChunkState.PENDING, *refusal)
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
        path = await _spool_file(ctx, batch, pass_, chunk)
        try:
            input_file_id = await ctx.provider.upload_jsonl(path, filename=upload_filename(key))
        except PermanentProviderError as error:
            path.unlink(missing_ok=True)
            await abandon_chunk(
                ctx, chunk_id, ChunkState.UPLOADING, failure_codes.BATCH_FAILED, f"Groq refused the input file: {error}"
            )
            return
        path.unlink(missing_ok=True)
        async with transaction(ctx.sessions) as session:
            recorded = await chunks_store.update_held(
                session, ctx.worker_id, chunk_id, ChunkState.UPLOADING, input_file_id=input_file_id
            )
        if not recorded:
            await best_effort(f"delete unused upload {input_file_id}", ctx.provider.delete_file(input_file_id))
            raise LeaseLost(f"chunk {chunk_id}")
    await ensure_lease(ctx, Chunk, chunk_id)
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
