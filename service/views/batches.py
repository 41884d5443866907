"""A batch's summary (GET /batches/{id}): status, counts, cost, budget, tiers and passes, webhook. Read from the
kept counters: a handful of small queries, the same at any batch size."""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence

from service.models import Batch, Chunk, Pass
from service.pipeline.cost import usd_float, usd_text
from service.pipeline.tiers import stored_tiers
from service.store import Session
from service.store import passes as passes_store
from service.store.passes import FINAL
from service.views.response_bodies import (
    BatchOut,
    BudgetOut,
    Cost,
    Counts,
    PassOut,
    ProviderBatchOut,
    RequestCounts,
    TierOut,
)
from service.views.webhooks import webhook_out


def results_url(batch_id: str) -> str:
    return f"/batches/{batch_id}/results"


def cost_out(pico: int, input_tokens: int, output_tokens: int) -> Cost:
    return Cost(usd=usd_float(pico), usd_exact=usd_text(pico), input_tokens=input_tokens, output_tokens=output_tokens)


def request_counts(chunks: Sequence[Chunk]) -> RequestCounts:
    """Groq's request counts, added up over provider batches."""
    return RequestCounts(
        total=sum(c.request_total for c in chunks),
        completed=sum(c.request_completed for c in chunks),
        failed=sum(c.request_failed for c in chunks),
    )


def _chunk_out(chunk: Chunk) -> ProviderBatchOut:
    return ProviderBatchOut(
        chunk=chunk.chunk_index,
        id=chunk.provider_batch_id,
        status=chunk.provider_status,
        state=chunk.state,
        lines=chunk.line_count,
        request_counts=request_counts([chunk]),
        last_error=chunk.last_error,
    )


def _pass_out(pass_: Pass, chunks: Sequence[Chunk], failures: Mapping[str, int]) -> PassOut:
    held = max(pass_.items, pass_.planned_items)
    return PassOut(
        number=pass_.number,
        kind=pass_.kind,
        tier=pass_.tier,
        provider=pass_.provider,
        model=pass_.model,
        status=pass_.status,
        strict=pass_.strict_mode,
        items=held,
        succeeded=pass_.succeeded,
        failed=pass_.failed,
        pending=max(0, held - pass_.succeeded - pass_.failed),
        reused=pass_.reused,
        sent_because=dict(sorted(pass_.sent_because.items())),
        request_counts=request_counts(chunks),
        failure_reasons=dict(sorted(failures.items())),
        cost=cost_out(pass_.cost_pico, pass_.input_tokens, pass_.output_tokens),
        saved_usd=usd_float(pass_.saved_pico),
        saved_usd_exact=usd_text(pass_.saved_pico),
        provider_batches=[_chunk_out(chunk) for chunk in chunks],
    )


def _tiers_out(batch: Batch, passes: Sequence[Pass], failures: Mapping[int, Mapping[str, int]]) -> list[TierOut]:
    tiers = []
    for index, tier in enumerate(stored_tiers(batch.tiers)):
        own = [p for p in passes if p.tier == index]
        sent: Counter[str] = Counter()
        reasons: Counter[str] = Counter()
        for p in own:
            sent.update(p.sent_because)
            assert p.id is not None
            reasons.update(failures.get(p.id, {}))
        tiers.append(
            TierOut(
                tier=index,
                provider=tier.provider,
                model=tier.model,
                params=tier.params,
                passes=len(own),
                items=sum(p.items for p in own),
                succeeded=sum(p.succeeded for p in own),
                failed=sum(p.failed for p in own),
                sent_because=dict(sorted(sent.items())),
                failure_reasons=dict(sorted(reasons.items())),
                cost=cost_out(
                    sum(p.cost_pico for p in own),
                    sum(p.input_tokens for p in own),
                    sum(p.output_tokens for p in own),
                ),
            )
        )
    return tiers


def _budget_out(batch: Batch) -> BudgetOut | None:
    if batch.budget_pico is None:
        return None
    return BudgetOut(
        budget_usd=usd_text(batch.budget_pico),
        reserved_usd=usd_text(batch.reserved_pico),
        spent_usd=usd_text(batch.cost_pico),
        waiting_items=batch.budget_waiting,
    )


async def batch_out(session: Session, batch: Batch, *, with_webhook: bool = True) -> BatchOut:
    passes_and_chunks = await passes_store.with_chunks(session, batch.id)
    passes = [pass_ for pass_, _chunks in passes_and_chunks]
    failures = await passes_store.failure_counts(session, batch.id)
    tiers = stored_tiers(batch.tiers)
    return BatchOut(
        id=batch.id,
        status=batch.status,
        model=tiers[0].name,
        fallback_model=tiers[1].name if len(tiers) > 1 else None,
        fallback=len(tiers) > 1,
        cascade=[{"model": tier.name, "params": tier.params} for tier in tiers],
        strict=batch.strict_mode,
        completion_window=batch.completion_window,
        callback_url=batch.callback_url,
        metadata=batch.user_metadata,
        warnings=list(batch.warnings),
        counts=Counts(
            total=batch.item_count,
            succeeded=batch.succeeded,
            failed=batch.failed,
            pending=batch.pending,
            retrying=batch.retrying,
        ),
        cost=cost_out(batch.cost_pico, batch.input_tokens, batch.output_tokens),
        saved_usd=usd_float(batch.saved_pico),
        saved_usd_exact=usd_text(batch.saved_pico),
        budget=_budget_out(batch),
        reuse=batch.reuse,
        failure_reasons=dict(sorted(failures.get(FINAL, {}).items())),
        tiers=_tiers_out(batch, passes, failures),
        passes=[_pass_out(p, chunks, failures.get(p.id or -1, {})) for p, chunks in passes_and_chunks],
        cancel_requested=batch.cancel_requested,
        created_at=batch.created_at,
        updated_at=batch.updated_at,
        finished_at=batch.finished_at,
        deleted_at=batch.deleted_at,
        purged_at=batch.purged_at,
        results_url=results_url(batch.id),
        # No callback_url, no delivery: the common status GET saves its reads.
        webhook=await webhook_out(session, batch.id) if with_webhook and batch.callback_url else None,
    )
