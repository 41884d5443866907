"""A batch's summary (GET /batches/{id}): status, counts, cost, passes with their provider batches, webhook."""

from __future__ import annotations

from collections.abc import Sequence

from service.models import Batch, ProviderBatch
from service.pipeline.cost import round_usd
from service.store import Session
from service.store import attempts as attempts_store
from service.store import chunks as chunks_store
from service.store import items as items_store
from service.store import passes as passes_store
from service.views.schemas import BatchOut, Cost, Counts, PassOut, ProviderBatchOut, RequestCounts
from service.views.webhooks import webhook_out


def results_url(batch_id: str) -> str:
    return f"/batches/{batch_id}/results"


def request_counts(chunks: Sequence[ProviderBatch]) -> RequestCounts:
    """Groq's request counts, added up over provider batches."""
    return RequestCounts(
        total=sum(c.request_total for c in chunks),
        completed=sum(c.request_completed for c in chunks),
        failed=sum(c.request_failed for c in chunks),
    )


def _chunk_out(chunk: ProviderBatch) -> ProviderBatchOut:
    return ProviderBatchOut(
        chunk=chunk.chunk_index,
        id=chunk.provider_batch_id,
        status=chunk.provider_status,
        state=chunk.state,
        lines=chunk.line_count,
        request_counts=request_counts([chunk]),
        last_error=chunk.last_error,
    )


async def batch_out(session: Session, batch: Batch, *, with_webhook: bool = True) -> BatchOut:
    passes = await passes_store.of_batch(session, batch.id)
    chunks = await chunks_store.of_batch(session, batch.id)
    figures = await attempts_store.pass_figures(session, batch.id)
    counts = await items_store.status_counts(session, batch.id)
    pass_views: list[PassOut] = []
    for pass_ in passes:
        assert pass_.id is not None
        fig = figures.get(pass_.id, attempts_store.PassFigures())
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
                cost=Cost(usd=round_usd(fig.cost_usd), input_tokens=fig.input_tokens, output_tokens=fig.output_tokens),
                provider_batches=[_chunk_out(chunk) for chunk in own_chunks],
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
        failure_reasons=dict(sorted((await attempts_store.final_failure_reasons(session, batch.id)).items())),
        passes=pass_views,
        cancel_requested=batch.cancel_requested,
        created_at=batch.created_at,
        updated_at=batch.updated_at,
        finished_at=batch.finished_at,
        results_url=results_url(batch.id),
        webhook=await webhook_out(session, batch.id) if with_webhook else None,
    )
