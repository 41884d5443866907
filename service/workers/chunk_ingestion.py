"""Poll a submitted chunk; once Groq says it is terminal, ingest both result files in one transaction.

The files are downloaded to the spool first, so the database transaction never waits on the network.
Ingest is all-or-nothing and fenced on the chunk's state and lease: a worker that dies half-way leaves
nothing behind, and the next one ingests again from the start without double counting.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

from service.batches.merging import merge_outcomes
from service.kit.clock import utcnow
from service.models import ChunkState
from service.observability import metrics
from service.pipeline import failure_codes
from service.pipeline.classify import Outcome, classify_result, parse_result_line, unprocessed
from service.pipeline.expectations import expectation_for
from service.pipeline.requests import merge_request
from service.providers.groq import ProviderBatchInfo, ProviderNotFound, RequestCounts
from service.store import attempts as attempts_store
from service.store import chunks as chunks_store
from service.store import transaction
from service.workers.context import WorkerContext
from service.workers.provider_state import provider_state

logger = logging.getLogger(__name__)

# Our own status for a provider batch that Groq answers 404 for (e.g. the built-in emulator restarted).
LOST_STATUS = "lost"


def _unprocessed_reason(info: ProviderBatchInfo) -> tuple[str, str]:
    if info.status == "expired":
        return failure_codes.BATCH_EXPIRED, "the provider batch expired before this request was processed"
    if info.status == "cancelled":
        return failure_codes.CANCELLED, "the provider batch was cancelled before this request was processed"
    if info.status == LOST_STATUS:
        return failure_codes.BATCH_FAILED, f"Groq no longer knows provider batch {info.id} (404); its results are lost"
    if info.status == "failed":
        details = "; ".join(
            f"line {error.get('line')}: {error.get('code')}: {error.get('message')}" for error in info.errors[:3]
        )
        return failure_codes.BATCH_FAILED, f"the provider batch failed validation: {details or 'no details'}"
    return failure_codes.MISSING_RESULT, "the request appears in neither the output nor the error file"


async def _download(ctx: WorkerContext, file_id: str, chunk_id: int) -> Path:
    path = ctx.spool_dir / f"result-{chunk_id}-{file_id}-{ctx.worker_id.replace(':', '_')}.jsonl"
    with path.open("wb") as handle:
        async for line in ctx.provider.iter_file_lines(file_id):
            handle.write(line)
            handle.write(b"\n")
    return path


def _lines(paths: list[Path]) -> Iterator[bytes]:
    for path in paths:
        with path.open("rb") as handle:
            yield from handle


async def _mark_polled(ctx: WorkerContext, chunk_id: int, info: ProviderBatchInfo) -> None:
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
            await chunks_store.record_provider_state(session, chunk_id, provider_state(info))


async def _ingest(ctx: WorkerContext, chunk_id: int, info: ProviderBatchInfo, paths: list[Path]) -> None:
    started = time.perf_counter()
    async with transaction(ctx.sessions) as session:
        row, pass_, batch = await chunks_store.with_pass_and_batch(session, chunk_id)
        if row.state != ChunkState.SUBMITTED or row.lease_owner != ctx.worker_id:
            return
        pending = await attempts_store.pending_of_chunk(session, chunk_id)
        outcomes: list[tuple[int, int, Outcome]] = []
        malformed = lines_read = 0
        for raw in _lines(paths):
            lines_read += 1
            line = parse_result_line(raw)
            if line is None:
                malformed += 1
                continue
            entry = pending.pop(line["custom_id"], None)
            if entry is None:
                continue  # not ours, or a repeated line: the first one decides
            attempt_id, item_id, body = entry
            expectation = expectation_for(merge_request(body, batch.params, pass_.params), batch.output_schema)
            outcomes.append((attempt_id, item_id, classify_result(line, expectation)))
        code, message = _unprocessed_reason(info)
        if malformed and code == failure_codes.MISSING_RESULT:
            message += f" ({malformed} unreadable lines in the result files)"
        for custom_id, (attempt_id, item_id, _body) in pending.items():
            outcomes.append((attempt_id, item_id, unprocessed(custom_id, code, message)))
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
        await merge_outcomes(session, ctx.config, pass_, outcomes)
        await chunks_store.record_provider_state(session, chunk_id, provider_state(info))
    logger.info(
        "ingested provider batch %s (%s): %d results, %d unreadable lines",
        info.id,
        info.status,
        len(outcomes),
        malformed,
    )
    metrics.record_ingest(lines_read, time.perf_counter() - started)
    metrics.record_attempts(pass_.model, ((outcome.succeeded, outcome.error_code) for _, _, outcome in outcomes))


async def poll_chunk(ctx: WorkerContext, chunk_id: int) -> None:
    async with ctx.sessions() as session:
        row = await chunks_store.get(session, chunk_id)
        provider_batch_id = row.provider_batch_id
    if provider_batch_id is None or row.state != ChunkState.SUBMITTED:
        return
    metrics.record_poll_lag(row.next_action_at)
    try:
        info = await ctx.provider.retrieve(provider_batch_id)
    except ProviderNotFound:
        logger.warning("provider batch %s is unknown to Groq; failing its items", provider_batch_id)
        lost = ProviderBatchInfo(provider_batch_id, LOST_STATUS, row.input_file_id, None, None, RequestCounts())
        await _ingest(ctx, chunk_id, lost, [])
        return
    if not info.is_terminal:
        await _mark_polled(ctx, chunk_id, info)
        return
    paths: list[Path] = []
    try:
        for file_id in (info.output_file_id, info.error_file_id):
            if file_id:
                paths.append(await _download(ctx, file_id, chunk_id))
        await _ingest(ctx, chunk_id, info, paths)
    finally:
        for path in paths:
            path.unlink(missing_ok=True)
