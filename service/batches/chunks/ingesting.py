"""Polling a submitted chunk and, once its provider batch has ended, ingesting its results in one transaction.

The result lines are downloaded to the spool first, so the database transaction never waits on the network.
Ingest is all-or-nothing and fenced on the chunk's state and lease: a worker that dies half-way leaves nothing
behind, and the next one ingests again from the start without double counting.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from dataclasses import replace
from datetime import timedelta
from pathlib import Path
from typing import Any

import orjson

from service.batches.chunks import budget
from service.batches.chunks.context import StepContext, provider_of
from service.batches.lines import spec_of_pass
from service.batches.merging import merge_outcomes
from service.kit.clock import utcnow
from service.kit.cooperative import each, give_way
from service.kit.spooling import SPOOL_BUFFER_BYTES
from service.models import ChunkState
from service.observability import metrics
from service.pipeline import failure_codes
from service.pipeline.anthropic_lines import classify_anthropic
from service.pipeline.catalogue import LineFormat, ModelRef, display_name
from service.pipeline.classify import Outcome, classify_result, parse_result_line, unprocessed
from service.pipeline.expectations import OutputExpectation
from service.pipeline.lines import line_id
from service.pipeline.responses_lines import classify_responses
from service.providers.protocol import BatchEnd, BatchProvider, ProviderBatchInfo, ProviderNotFound
from service.store import attempts as attempts_store
from service.store import chunks as chunks_store
from service.store import items as items_store
from service.store import transaction
from service.store.attempts import PendingAttempt

logger = logging.getLogger(__name__)

CLASSIFY_SLICE = 200  # result lines classified between two turns of the event loop
CLASSIFIERS: dict[LineFormat, Callable[[dict[str, Any], OutputExpectation], Outcome]] = {
    LineFormat.CHAT: classify_result,
    LineFormat.RESPONSES: classify_responses,
    LineFormat.MESSAGES: classify_anthropic,
}
MERGE_GROUP = 1000  # outcomes merged between two turns of the event loop (all in the ingest's transaction)


def _unprocessed_reason(provider: BatchProvider, info: ProviderBatchInfo) -> tuple[str, str]:
    """Why a request of an ended batch has no result line."""
    if info.ended == BatchEnd.EXPIRED:
        return failure_codes.BATCH_EXPIRED, "the provider batch expired before this request was processed"
    if info.ended == BatchEnd.CANCELLED:
        return failure_codes.CANCELLED, "the provider batch was cancelled before this request was processed"
    if info.ended == BatchEnd.LOST:
        return failure_codes.BATCH_FAILED, (
            f"{provider.name} no longer has provider batch {info.id} or its results (404); they are lost"
        )
    if info.ended == BatchEnd.FAILED:
        gone = _model_gone(info)
        if gone is not None:
            return gone, f"the provider batch failed validation: the model is gone ({gone})"
        details = "; ".join(
            f"line {error.get('line')}: {error.get('code')}: {error.get('message')}" for error in info.errors[:3]
        )
        return failure_codes.BATCH_FAILED, f"the provider batch failed validation: {details or 'no details'}"
    return failure_codes.MISSING_RESULT, "the request appears in none of the provider batch's result lines"


def _model_gone(info: ProviderBatchInfo) -> str | None:
    """A provider may refuse a whole batch whose model is gone, instead of failing each line (uncertain for Groq,
    GROQ_BATCH_API.md §13a): either way its items move on as the model being gone."""
    for error in info.errors:
        text = f"{error.get('code')} {error.get('message')}".lower()
        if "decommissioned" in text:
            return failure_codes.MODEL_DECOMMISSIONED
        if "model_not_found" in text:
            return failure_codes.MODEL_NOT_FOUND
    return None


async def _download(ctx: StepContext, provider: BatchProvider, info: ProviderBatchInfo, chunk_id: int) -> Path:
    path = ctx.spool_dir / f"result-{chunk_id}-{info.id}-{ctx.worker_id.replace(':', '_')}.jsonl"
    try:
        with path.open("wb", buffering=SPOOL_BUFFER_BYTES) as handle:
            async for line in provider.result_lines(info):
                handle.write(line)
                handle.write(b"\n")
    except BaseException:
        path.unlink(missing_ok=True)  # a download cut midway is made again from the start
        raise
    return path


def _lines(path: Path | None) -> Iterator[bytes]:
    if path is None:
        return
    with path.open("rb", buffering=SPOOL_BUFFER_BYTES) as handle:
        yield from handle


async def _mark_polled(ctx: StepContext, chunk_id: int, info: ProviderBatchInfo) -> None:
    async with transaction(ctx.sessions) as session:
        polled = await chunks_store.update_held(
            session,
            ctx.worker_id,
            chunk_id,
            ChunkState.SUBMITTED,
            next_action_at=utcnow() + timedelta(seconds=ctx.settings.poll_interval_seconds),
            retry_count=0,
            last_error=None,
        )
        if polled:
            await chunks_store.record_provider_state(session, chunk_id, info)


async def _classify(
    ctx: StepContext, provider: BatchProvider, chunk_id: int, info: ProviderBatchInfo, path: Path | None
) -> tuple[list[tuple[PendingAttempt, Outcome]], int, int] | None:
    """Every pending attempt of the chunk with its outcome, read and classified outside the write transaction
    (yielding to the event loop every few hundred lines); None when the chunk is no longer this worker's."""
    async with ctx.sessions() as session:
        chunk, pass_, batch = await chunks_store.with_pass_and_batch(session, chunk_id)
        if chunk.state != ChunkState.SUBMITTED or chunk.lease_owner != ctx.worker_id:
            return None
        pending = await attempts_store.pending_of_chunk(session, chunk_id)
        own = [attempt.item_id for attempt in pending.values() if attempt.own_format]
        own_bodies = await items_store.bodies(session, own) if own else {}
    spec = spec_of_pass(ctx.config, batch, pass_)
    entry = spec.entry
    if entry.short_line_ids:  # the lines carried our ids, not the caller's
        pending = {line_id(entry, attempt.custom_id, attempt.item_id): attempt for attempt in pending.values()}
    classify = CLASSIFIERS[entry.line_format]
    expectation = spec.common_expectation
    outcomes: list[tuple[PendingAttempt, Outcome]] = []
    malformed = lines_read = 0
    async for raw in each(_lines(path), CLASSIFY_SLICE):
        lines_read += 1
        line = parse_result_line(raw)
        if line is None:
            malformed += 1
            continue
        attempt = pending.pop(line["custom_id"], None)
        if attempt is None:
            continue  # not ours, or a repeated line: the first one decides
        expected = expectation
        if attempt.item_id in own_bodies:
            expected = spec.expectation(orjson.loads(own_bodies[attempt.item_id]))
        outcomes.append((attempt, classify(line, expected).compact()))
    code, message = _unprocessed_reason(provider, info)
    if malformed and code == failure_codes.MISSING_RESULT:
        message += f" ({malformed} unreadable lines in the results)"
    outcomes.extend((attempt, unprocessed(attempt.custom_id, code, message)) for attempt in pending.values())
    return outcomes, malformed, lines_read


async def _ingest(
    ctx: StepContext, provider: BatchProvider, chunk_id: int, info: ProviderBatchInfo, path: Path | None
) -> None:
    started = time.perf_counter()
    classified = await _classify(ctx, provider, chunk_id, info, path)
    if classified is None:
        return
    outcomes, malformed, lines_read = classified
    async with transaction(ctx.sessions) as session:
        # The fence is the first write: it fails if another worker ingested meanwhile or holds the chunk now, and
        # it locks the chunk (the database, on SQLite) until this transaction commits every outcome with it.
        fenced = await chunks_store.update_held(
            session,
            ctx.worker_id,
            chunk_id,
            ChunkState.SUBMITTED,
            state=ChunkState.DONE,
            finished_at=utcnow(),
            last_error=f"{malformed} unreadable result lines" if malformed else None,
            lease_owner=None,  # finished work holds no lease, even if this worker dies right after
            lease_expires_at=None,
        )
        if not fenced:
            return
        chunk, pass_, batch = await chunks_store.with_pass_and_batch(session, chunk_id)
        released = budget.reservation(chunk)
        for start in range(0, max(1, len(outcomes)), MERGE_GROUP):  # the event loop runs between groups
            group = outcomes[start : start + MERGE_GROUP]
            await merge_outcomes(session, ctx.config, batch, pass_, group, released_pico=released if not start else 0)
            await give_way()
        await chunks_store.record_provider_state(session, chunk_id, info)
    logger.info(
        "ingested provider batch %s (%s): %d results, %d unreadable lines",
        info.id,
        info.status,
        len(outcomes),
        malformed,
    )
    metrics.record_ingest(lines_read, time.perf_counter() - started)
    name = display_name(ModelRef(pass_.provider, pass_.model))
    metrics.record_attempts(name, ((outcome.succeeded, outcome.error_code) for _, outcome in outcomes))
    ctx.wake()  # the batch may now start its next round


async def poll_chunk(ctx: StepContext, chunk_id: int) -> None:
    """Ask the provider how the chunk's batch is doing; ingest its results once it has ended."""
    async with ctx.sessions() as session:
        row, pass_, _batch = await chunks_store.with_pass_and_batch(session, chunk_id)
    provider_batch_id = row.provider_batch_id
    if provider_batch_id is None or row.state != ChunkState.SUBMITTED:
        return
    provider = provider_of(ctx, pass_)
    metrics.record_poll_lag(row.next_action_at)
    try:
        info = await provider.retrieve(provider_batch_id)
    except ProviderNotFound:
        logger.warning("provider batch %s is unknown to %s; failing its items", provider_batch_id, provider.name)
        lost = ProviderBatchInfo(provider_batch_id, BatchEnd.LOST, BatchEnd.LOST, input_file_id=row.input_file_id)
        await _ingest(ctx, provider, chunk_id, lost, None)
        return
    if not info.is_terminal:
        await _mark_polled(ctx, chunk_id, info)
        return
    path: Path | None = None
    try:
        try:
            path = await _download(ctx, provider, info, chunk_id)
        except ProviderNotFound:  # the results are gone (archived, or expired files): the items never ran for us
            logger.warning(
                "the results of provider batch %s are gone from %s; failing its items", info.id, provider.name
            )
            info = replace(info, ended=BatchEnd.LOST)
        await _ingest(ctx, provider, chunk_id, info, path)
    finally:
        if path is not None:
            path.unlink(missing_ok=True)
