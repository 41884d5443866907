"""Writing classified results: an attempt is finished once, and its item's merged row follows it."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from sqlalchemy import update
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from service.models import Attempt, AttemptStatus, Item, ItemStatus, Pass, ProviderBatch, utcnow
from service.pipeline.classify import Outcome, unprocessed
from service.providers.groq import ProviderBatchInfo
from service.workers.context import WorkerContext


async def record_provider_batch(session: AsyncSession, row_id: int, info: ProviderBatchInfo) -> None:
    await session.execute(
        update(ProviderBatch)
        .where(col(ProviderBatch.id) == row_id)
        .values(
            provider_batch_id=info.id,
            input_file_id=info.input_file_id,
            provider_status=info.status,
            request_total=info.request_counts.total,
            request_completed=info.request_counts.completed,
            request_failed=info.request_counts.failed,
            output_file_id=info.output_file_id,
            error_file_id=info.error_file_id,
            provider_errors=info.errors or None,
        )
    )


async def pending_attempts(session: AsyncSession, row_id: int) -> dict[str, tuple[int, int, dict[str, Any]]]:
    """custom_id -> (attempt id, item id, item body) for the chunk's unfinished attempts."""
    rows = await session.execute(
        select(Item.custom_id, Attempt.id, Item.id, Item.body)
        .join(Attempt, col(Attempt.item_id) == col(Item.id))
        .where(Attempt.provider_batch_row_id == row_id, Attempt.status == AttemptStatus.PENDING)
    )
    return {custom_id: (attempt_id, item_id, body) for custom_id, attempt_id, item_id, body in rows}


async def apply_outcomes(
    session: AsyncSession,
    ctx: WorkerContext,
    pass_: Pass,
    outcomes: Iterable[tuple[int, int, Outcome]],
) -> int:
    """Finish attempts (attempt id, item id, outcome) in bulk and point their items at them."""
    now = utcnow()
    attempt_rows: list[dict[str, Any]] = []
    item_rows: list[dict[str, Any]] = []
    for attempt_id, item_id, outcome in outcomes:
        attempt_rows.append(
            {
                "id": attempt_id,
                "status": AttemptStatus.SUCCEEDED if outcome.succeeded else AttemptStatus.FAILED,
                "error_code": outcome.error_code,
                "error_message": outcome.error_message,
                "content": outcome.content,
                "output": outcome.output,
                "finish_reason": outcome.finish_reason,
                "input_tokens": outcome.usage.input_tokens,
                "output_tokens": outcome.usage.output_tokens,
                "cost_usd": ctx.prices.cost_usd(pass_.model, outcome.usage),
                "provider_request_id": outcome.provider_request_id,
                "finished_at": now,
            }
        )
        item_rows.append(
            {
                "id": item_id,
                "status": ItemStatus.SUCCEEDED if outcome.succeeded else ItemStatus.FAILED,
                "deciding_attempt_id": attempt_id,
            }
        )
    if attempt_rows:
        await session.execute(update(Attempt), attempt_rows)
        await session.execute(update(Item), item_rows)
    return len(attempt_rows)


async def fail_pending_attempts(
    session: AsyncSession, ctx: WorkerContext, row: ProviderBatch, pass_: Pass, code: str, message: str
) -> int:
    assert row.id is not None
    pending = await pending_attempts(session, row.id)
    return await apply_outcomes(
        session,
        ctx,
        pass_,
        (
            (attempt_id, item_id, unprocessed(custom_id, code, message))
            for custom_id, (attempt_id, item_id, _body) in pending.items()
        ),
    )
