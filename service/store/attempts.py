"""Attempts: one item sent once in one pass. Laid out pending, finished once with its outcome."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import func, insert, update
from sqlalchemy import select as sa_select
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from service.models import Attempt, AttemptStatus, Item, ItemStatus, Pass, ProviderBatch


async def insert_pending(session: AsyncSession, rows: Sequence[tuple[int, int, int]]) -> None:
    """(item id, pass id, chunk id) per new attempt."""
    if rows:
        await session.execute(
            insert(Attempt),
            [
                {"item_id": item_id, "pass_id": pass_id, "provider_batch_row_id": chunk_id, "status": "pending"}
                for item_id, pass_id, chunk_id in rows
            ],
        )


async def pending_of_chunk(session: AsyncSession, chunk_id: int) -> dict[str, tuple[int, int, dict[str, Any]]]:
    """custom_id -> (attempt id, item id, item body) for the chunk's unfinished attempts."""
    rows = await session.execute(
        select(Item.custom_id, Attempt.id, Item.id, Item.body)
        .join(Attempt, col(Attempt.item_id) == col(Item.id))
        .where(Attempt.provider_batch_row_id == chunk_id, Attempt.status == AttemptStatus.PENDING)
    )
    return {custom_id: (attempt_id, item_id, body) for custom_id, attempt_id, item_id, body in rows}


async def finish(session: AsyncSession, rows: Sequence[dict[str, Any]]) -> None:
    """Each row: the attempt's `id` and the columns its outcome sets."""
    if rows:
        await session.execute(update(Attempt), list(rows))


async def of_item(session: AsyncSession, item_id: int) -> list[tuple[Attempt, Pass, str | None]]:
    """Every attempt at an item with its pass and provider batch id, oldest first."""
    rows = await session.execute(
        select(Attempt, Pass, ProviderBatch.provider_batch_id)
        .join(Pass, col(Pass.id) == col(Attempt.pass_id))
        .join(ProviderBatch, col(ProviderBatch.id) == col(Attempt.provider_batch_row_id))
        .where(Attempt.item_id == item_id)
        .order_by(col(Pass.number))
    )
    return [(attempt, pass_, provider_id) for attempt, pass_, provider_id in rows]


@dataclass
class PassFigures:
    succeeded: int = 0
    failed: int = 0
    pending: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    cost_usd: float = 0.0
    failure_reasons: dict[str, int] = field(default_factory=dict)

    @property
    def items(self) -> int:
        return self.succeeded + self.failed + self.pending


async def pass_figures(session: AsyncSession, batch_id: str) -> dict[int, PassFigures]:
    """Per pass id: attempts by outcome, tokens, cost and failure codes."""
    rows = await session.execute(
        sa_select(
            col(Attempt.pass_id),
            col(Attempt.status),
            col(Attempt.error_code),
            func.count(),
            func.coalesce(func.sum(col(Attempt.input_tokens)), 0),
            func.coalesce(func.sum(col(Attempt.output_tokens)), 0),
            func.coalesce(func.sum(col(Attempt.cost_usd)), 0.0),
        )
        .join(Pass, col(Pass.id) == col(Attempt.pass_id))
        .where(col(Pass.batch_id) == batch_id)
        .group_by(col(Attempt.pass_id), col(Attempt.status), col(Attempt.error_code))
    )
    figures: dict[int, PassFigures] = {}
    for pass_id, status, error_code, count, input_tokens, output_tokens, cost in rows:
        entry = figures.setdefault(pass_id, PassFigures())
        setattr(entry, status, getattr(entry, status) + count)
        entry.input_tokens += int(input_tokens)
        entry.output_tokens += int(output_tokens)
        entry.cost_usd += float(cost)
        if error_code:
            entry.failure_reasons[error_code] = entry.failure_reasons.get(error_code, 0) + count
    return figures


async def final_failure_reasons(session: AsyncSession, batch_id: str) -> dict[str, int]:
    """Failure code -> count over the items whose merged row is a failure."""
    rows = await session.execute(
        select(Attempt.error_code, func.count())
        .join(Item, col(Item.deciding_attempt_id) == col(Attempt.id))
        .where(Item.batch_id == batch_id, Item.status == ItemStatus.FAILED)
        .group_by(Attempt.error_code)
    )
    return {code or "unknown": count for code, count in rows}
