"""Shape database records into the response bodies of the contract."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence

import orjson
from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel.ext.asyncio.session import AsyncSession

from service import repository
from service.api.schemas import (
    AttemptOut,
    BatchOut,
    Cost,
    Counts,
    ErrorOut,
    PassOut,
    ProviderBatchOut,
    RequestCounts,
    ResultRow,
    Usage,
    WebhookAttemptOut,
    WebhookOut,
)
from service.models import Attempt, Batch, Pass, ProviderBatch
from service.pipeline.cost import round_usd


def results_url(batch_id: str) -> str:
    return f"/batches/{batch_id}/results"


def request_counts(chunks: Sequence[ProviderBatch]) -> RequestCounts:
    """Groq's request counts, added up over provider batches."""
    return RequestCounts(
        total=sum(c.request_total for c in chunks),
        completed=sum(c.request_completed for c in chunks),
        failed=sum(c.request_failed for c in chunks),
    )


async def batch_out(session: AsyncSession, batch: Batch) -> BatchOut:
    passes = await repository.passes_of(session, batch.id)
    chunks = await repository.chunks_of(session, batch.id)
    figures = await repository.pass_figures(session, batch.id)
    counts = await repository.item_status_counts(session, batch.id)
    pass_views: list[PassOut] = []
    for pass_ in passes:
        assert pass_.id is not None
        fig = figures.get(pass_.id, repository.PassFigures())
        own_chunks = [chunk for chunk in chunks if chunk.pass_id == pass_.id]
        pass_views.append(
            PassOut(
                number=pass_.number,
                kind=pass_.kind,
                model=pass_.model,
                status=pass_.status,
                items=fig.items,
                succeeded=fig.succeeded,
                failed=fig.failed,
                pending=fig.pending,
                request_counts=request_counts(own_chunks),
                failure_reasons=dict(sorted(fig.failure_reasons.items())),
                cost=Cost(
                    usd=round_usd(fig.cost_usd),
                    input_tokens=fig.input_tokens,
                    output_tokens=fig.output_tokens,
                ),
                provider_batches=[
                    ProviderBatchOut(
                        chunk=c.chunk_index,
                        id=c.provider_batch_id,
                        status=c.provider_status,
                        state=c.state,
                        lines=c.line_count,
                        request_counts=request_counts([c]),
                        last_error=c.last_error,
                    )
                    for c in own_chunks
                ],
            )
        )
    total_cost = sum(f.cost_usd for f in figures.values())
    return BatchOut(
        id=batch.id,
        status=batch.status,
        model=batch.model,
        fallback_model=batch.fallback_model,
        fallback=batch.fallback_enabled,
        completion_window=batch.completion_window,
        callback_url=batch.callback_url,
        metadata=batch.user_metadata,
        counts=Counts(
            total=batch.item_count,
            succeeded=counts.get("succeeded", 0),
            failed=counts.get("failed", 0),
            pending=counts.get("pending", 0),
        ),
        cost=Cost(
            usd=round_usd(total_cost),
            input_tokens=sum(f.input_tokens for f in figures.values()),
            output_tokens=sum(f.output_tokens for f in figures.values()),
        ),
        failure_reasons=dict(sorted((await repository.final_failure_reasons(session, batch.id)).items())),
        passes=pass_views,
        cancel_requested=batch.cancel_requested,
        created_at=batch.created_at,
        updated_at=batch.updated_at,
        finished_at=batch.finished_at,
        results_url=results_url(batch.id),
        webhook=await webhook_out(session, batch.id),
    )


WEBHOOK_ATTEMPTS_SHOWN = 10


async def webhook_out(session: AsyncSession, batch_id: str) -> WebhookOut | None:
    delivery = await repository.latest_webhook_delivery(session, batch_id)
    if delivery is None or delivery.id is None:
        return None
    attempts = await repository.webhook_attempts(session, delivery.id, limit=WEBHOOK_ATTEMPTS_SHOWN)
    return WebhookOut(
        url=delivery.url,
        event=delivery.event,
        webhook_id=delivery.message_id,
        state=delivery.state,
        attempts=delivery.attempts,
        last_status=delivery.last_status,
        last_error=delivery.last_error,
        next_attempt_at=delivery.next_attempt_at,
        delivered_at=delivery.delivered_at,
        created_at=delivery.created_at,
        attempt_log=[
            WebhookAttemptOut(
                number=attempt.number,
                status_code=attempt.status_code,
                error=attempt.error,
                started_at=attempt.started_at,
                finished_at=attempt.finished_at,
            )
            for attempt in attempts
        ],
    )


def _error(attempt: Attempt) -> ErrorOut | None:
    if attempt.status != "failed":
        return None
    return ErrorOut(code=attempt.error_code or "unknown", message=attempt.error_message)


def result_row(record: repository.ResultRecord) -> ResultRow:
    attempt = record.attempt
    decided = attempt is not None and record.status != "pending"
    return ResultRow(
        custom_id=record.custom_id,
        status=record.status,
        model=record.model if decided else None,
        pass_=record.pass_number if decided else None,
        output=attempt.output if decided and attempt else None,
        content=attempt.content if decided and attempt else None,
        usage=Usage(input_tokens=attempt.input_tokens, output_tokens=attempt.output_tokens)
        if decided and attempt
        else None,
        cost_usd=round_usd(record.total_cost_usd),
        attempts=record.attempts,
        error=_error(attempt) if decided and attempt else None,
    )


def attempt_out(attempt: Attempt, pass_: Pass, provider_batch_id: str | None) -> AttemptOut:
    return AttemptOut(
        pass_=pass_.number,
        model=pass_.model,
        status=attempt.status,
        provider_batch_id=provider_batch_id,
        finish_reason=attempt.finish_reason,
        output=attempt.output,
        content=attempt.content,
        usage=Usage(input_tokens=attempt.input_tokens, output_tokens=attempt.output_tokens),
        cost_usd=round_usd(attempt.cost_usd),
        error=_error(attempt),
        created_at=attempt.created_at,
        finished_at=attempt.finished_at,
    )


NDJSON_PAGE = 1000


async def ndjson_result_rows(
    sessions: async_sessionmaker[AsyncSession], batch_id: str, status: str | None
) -> AsyncIterator[bytes]:
    """Every merged row as NDJSON, read page by page with a fresh session each: flat memory for any size."""
    position = -1
    while True:
        async with sessions() as session:
            records = await repository.result_records(
                session, batch_id, status=status, after_position=position, limit=NDJSON_PAGE
            )
        for record in records:
            yield orjson.dumps(result_row(record).model_dump(mode="json", by_alias=True)) + b"\n"
        if len(records) < NDJSON_PAGE:
            return
        position = records[-1].position
