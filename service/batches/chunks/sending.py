"""Sending a chunk: its lines (spooled at lay-out), the upload where the provider takes a file, and the provider
batch, created once.

The chunk goes PENDING -> UPLOADING (committed before any call to the provider, with the chunk's budget
reservation) -> SUBMITTED. A chunk found in UPLOADING may already have a provider batch (the worker died, or
create answered 5xx after creating it), so the provider is first asked for what it holds under the chunk's key;
only if there is none is a batch created.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable
from dataclasses import dataclass, replace

from service.batches.chunks import budget
from service.batches.chunks.context import StepContext, provider_of
from service.batches.chunks.spool import chunk_lines, discard_layout_spool
from service.batches.merging import fail_unsent
from service.kit.clock import utcnow
from service.kit.fencing import LeaseLost, TryLater, protected
from service.models import Batch, Chunk, ChunkState, Pass
from service.observability.logging import bind_log_context
from service.pipeline import failure_codes
from service.pipeline.catalogue import LineFormat
from service.pipeline.chunk_names import chunk_key, chunk_metadata
from service.providers.protocol import (
    BatchProvider,
    ChunkRequest,
    PermanentProviderError,
    ProviderBatchInfo,
    ProviderError,
)
from service.store import chunks as chunks_store
from service.store import fleet as fleet_store
from service.store import leases as leases_store
from service.store import transaction

logger = logging.getLogger(__name__)

CANCELLED_BEFORE_SENT = "the batch was cancelled before this chunk was sent"
SLOT_WAIT_SECONDS = 1.0


class _OverBudget(Exception):
    """The chunk's worst case does not fit in what is left of the batch's budget."""


async def best_effort(what: str, call: Awaitable[object]) -> None:
    try:
        await call
    except ProviderError as error:  # cleanup only: the provider's retention takes care of it otherwise
        logger.warning("could not %s: %s", what, error)


async def abandon_chunk(ctx: StepContext, chunk_id: int, expected_state: str, code: str, message: str) -> None:
    """Give up on a chunk before it reached the provider: every item in it fails with `code` (and moves on, or
    stops, as routing says); a reservation it held is given back."""
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
            released = budget.reservation(chunk)
            discard_layout_spool(ctx.spool_dir, batch.id, pass_.number, chunk.chunk_index)
            await fail_unsent(session, ctx.config, batch, pass_, chunk_id, code, message, released_pico=released)
    ctx.wake()


async def _start_sending(ctx: StepContext, chunk_id: int) -> str | None:
    """PENDING -> UPLOADING, committed before any call to the provider, in the same transaction as the chunk's
    budget reservation. The state to carry on from, or None when the chunk was abandoned (its batch was
    cancelled, or it does not fit the budget)."""
    refusal: tuple[str, str] | None = None
    try:
        async with transaction(ctx.sessions) as session:
            chunk, _pass, batch = await chunks_store.with_pass_and_batch(session, chunk_id)
            if chunk.state != ChunkState.PENDING:
                return chunk.state
            if batch.cancel_requested:
                refusal = (failure_codes.CANCELLED, CANCELLED_BEFORE_SENT)
            else:
                reserve = batch.budget_pico is not None and not chunk.reserved  # else reserved at its lay-out
                if not await chunks_store.update_held(
                    session,
                    ctx.worker_id,
                    chunk_id,
                    ChunkState.PENDING,
                    state=ChunkState.UPLOADING,
                    reserved=chunk.reserved or reserve,
                ):
                    raise LeaseLost(f"chunk {chunk_id}")
                if reserve and not await budget.reserve(session, batch, chunk):
                    raise _OverBudget(budget.refusal(batch, chunk))
                return ChunkState.UPLOADING
    except _OverBudget as over:
        refusal = (failure_codes.BUDGET_EXCEEDED, str(over))
    assert refusal is not None
    await abandon_chunk(ctx, chunk_id, ChunkState.PENDING, *refusal)
    return None


async def _adopt(ctx: StepContext, chunk_id: int, info: ProviderBatchInfo) -> bool:
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
            await chunks_store.record_provider_state(session, chunk_id, info)
            return True
    return False


async def _after_adoption(
    ctx: StepContext, provider: BatchProvider, key: str, adopted: ProviderBatchInfo, others: list[ProviderBatchInfo]
) -> None:
    """Clear what other attempts at this chunk left on the provider: a duplicate provider batch (only a worker
    paused past its lease can make one) is cancelled; uploads for the chunk that no batch uses are deleted."""
    for other in others:
        if other.id != adopted.id and not other.is_terminal:
            logger.warning("cancelling duplicate provider batch %s for %s (kept %s)", other.id, key, adopted.id)
            await best_effort(f"cancel duplicate provider batch {other.id}", provider.cancel(other.id))
    if ctx.settings.provider_file_cleanup:
        keep = {adopted.input_file_id, *(other.input_file_id for other in others)}
        await best_effort(f"clean up the uploads of {key}", provider.delete_uploads(key, keep))


async def _disown(
    ctx: StepContext, provider: BatchProvider, chunk_id: int, key: str, created: ProviderBatchInfo
) -> None:
    """We created `created` but lost the chunk before recording it (this worker was paused past its lease).
    If the chunk's new owner adopted our batch, nothing is wrong; otherwise ours is a duplicate: cancel it."""
    async with ctx.sessions() as session:
        chunk = await chunks_store.get(session, chunk_id)
    if chunk.provider_batch_id is not None and chunk.provider_batch_id != created.id:
        logger.warning("lost %s after creating %s; cancelling it (kept: %s)", key, created.id, chunk.provider_batch_id)
        await best_effort(f"cancel duplicate provider batch {created.id}", provider.cancel(created.id))
    raise LeaseLost(f"chunk {chunk_id}")


async def _ensure_lease(ctx: StepContext, chunk_id: int) -> None:
    """Renew the lease right before a side effect on the provider; LeaseLost if it is no longer ours."""
    async with transaction(ctx.sessions) as session:
        if not await leases_store.renew(session, Chunk, chunk_id, ctx.worker_id, ctx.lease_seconds):
            raise LeaseLost(f"chunk {chunk_id}")


def _request(ctx: StepContext, batch: Batch, pass_: Pass, chunk: Chunk) -> ChunkRequest:
    key = chunk_key(batch.id, pass_.number, chunk.chunk_index)
    entry = ctx.config.entry(pass_.provider, pass_.model)
    metadata = chunk_metadata(batch.id, pass_.number, chunk.chunk_index, pass_.model)
    if entry.line_format != LineFormat.MESSAGES:
        metadata["endpoint"] = entry.endpoint  # where an OpenAI-shaped provider runs the lines
    return ChunkRequest(
        key=key,
        path=None,  # the lines are spooled only once they are to be sent
        line_count=chunk.line_count,
        model=pass_.model,
        metadata=metadata,
    )


async def send_chunk(ctx: StepContext, chunk_id: int) -> None:
    """Bring a PENDING or UPLOADING chunk to SUBMITTED. Provider errors propagate to the caller.

    A provider whose batches carry no tag of ours (Anthropic) is found by when a batch was created and how many
    requests it has: one chunk at a time may have an unresolved create there (the provider's send slot, held
    from before the create until the batch is recorded or the chunk given up), so a batch found unrecorded in
    the chunk's window is the chunk's own."""
    if await _start_sending(ctx, chunk_id) != ChunkState.UPLOADING:
        return
    async with ctx.sessions() as session:
        _chunk, pass_, _batch = await chunks_store.with_pass_and_batch(session, chunk_id)
    provider = provider_of(ctx, pass_)
    serialized = not provider.tags_batches
    if serialized and not await fleet_store.take_send_slot(ctx.sessions, provider.name, chunk_id):
        raise TryLater(f"another chunk's batch is being created on {provider.name}", SLOT_WAIT_SECONDS)
    progress = _Progress()
    try:
        await _send(ctx, provider, chunk_id, progress)
    finally:
        if serialized and not progress.unresolved:
            await fleet_store.free_send_slot(ctx.sessions, provider.name, chunk_id)


@dataclass
class _Progress:
    """A create was sent and its answer is not recorded: a batch of the chunk may exist that nobody knows of."""

    unresolved: bool = False


async def _send(ctx: StepContext, provider: BatchProvider, chunk_id: int, progress: _Progress) -> None:
    """Adopt the chunk's batch if an earlier attempt created it, else create it."""
    async with ctx.sessions() as session:
        chunk, pass_, batch = await chunks_store.with_pass_and_batch(session, chunk_id)
    request = _request(ctx, batch, pass_, chunk)
    if chunk.create_sent_at is not None:  # an earlier attempt asked for a batch: it may exist
        found = await _unrecorded(ctx, chunk_id, await provider.find(request, chunk.create_sent_at))
        if found:
            existing = found[0]
            bind_log_context(provider_batch_id=existing.id)
            logger.info("adopting provider batch %s for %s", existing.id, request.key)
            if not await _adopt(ctx, chunk_id, existing):
                raise LeaseLost(f"chunk {chunk_id}")
            await _after_adoption(ctx, provider, request.key, existing, found)
            return
    if batch.cancel_requested:
        await abandon_chunk(ctx, chunk_id, ChunkState.UPLOADING, failure_codes.CANCELLED, CANCELLED_BEFORE_SENT)
        return
    input_file_id = chunk.input_file_id
    if input_file_id is None:  # not uploaded yet, or the provider takes the lines inline with create
        request = replace(request, path=await chunk_lines(ctx, batch, pass_, chunk))
        try:
            input_file_id = await provider.upload(request)
        except PermanentProviderError as error:
            request.unlink()
            refused = f"{provider.name} refused the input file: {error}"
            await abandon_chunk(ctx, chunk_id, ChunkState.UPLOADING, failure_codes.BATCH_FAILED, refused)
            return
        if input_file_id is not None:
            request = request.unlink()  # the provider has the lines now
            if not await _record_upload(ctx, chunk_id, input_file_id):
                await best_effort(
                    f"delete unused upload {input_file_id}", provider.delete_results(None, [input_file_id])
                )
                raise LeaseLost(f"chunk {chunk_id}")
    if chunk.create_sent_at is None:
        await _record_intent(ctx, chunk_id)
    await _ensure_lease(ctx, chunk_id)
    async with protected():  # once the provider is asked, what it answers is recorded (or disowned)
        progress.unresolved = True  # until the answer is recorded, a batch may exist that nobody knows of
        try:
            info = await provider.create(request, input_file_id)
        except PermanentProviderError as error:
            request.unlink()
            refused = f"{provider.name} refused the batch: {error}"
            await abandon_chunk(ctx, chunk_id, ChunkState.UPLOADING, failure_codes.BATCH_FAILED, refused)
            progress.unresolved = False
            return
        request.unlink()
        bind_log_context(provider_batch_id=info.id)
        logger.info("created provider batch %s for %s (%d lines)", info.id, request.key, chunk.line_count)
        if not await _adopt(ctx, chunk_id, info):
            await _disown(ctx, provider, chunk_id, request.key, info)
        progress.unresolved = False
    await _after_adoption(ctx, provider, request.key, info, [])


async def _unrecorded(ctx: StepContext, chunk_id: int, found: list[ProviderBatchInfo]) -> list[ProviderBatchInfo]:
    """The batches found that no other chunk has recorded (a provider that matches by window and request count
    may name another chunk's batch among them)."""
    if not found:
        return found
    async with ctx.sessions() as session:
        others = await chunks_store.recorded_elsewhere(session, chunk_id, [info.id for info in found])
    return [info for info in found if info.id not in others]


async def _record_intent(ctx: StepContext, chunk_id: int) -> None:
    """Committed before the first create: from now on a batch of this chunk may exist."""
    async with transaction(ctx.sessions) as session:
        if not await chunks_store.update_held(
            session, ctx.worker_id, chunk_id, ChunkState.UPLOADING, create_sent_at=utcnow()
        ):
            raise LeaseLost(f"chunk {chunk_id}")


async def _record_upload(ctx: StepContext, chunk_id: int, input_file_id: str) -> bool:
    async with transaction(ctx.sessions) as session:
        return await chunks_store.update_held(
            session, ctx.worker_id, chunk_id, ChunkState.UPLOADING, input_file_id=input_file_id
        )
