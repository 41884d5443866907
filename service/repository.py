"""SQL the API needs: creating batches and reading summaries, pages of results and items."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import func, insert
from sqlalchemy import select as sa_select
from sqlalchemy.orm import aliased
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from service.models import Attempt, Batch, Item, Pass, ProviderBatch, WebhookAttempt, WebhookDelivery


async def insert_batch(session: AsyncSession, batch: Batch, items: Sequence[tuple[str, dict[str, Any]]]) -> None:
    """The batch, its items and its first pass, in the caller's transaction (all or nothing)."""
    session.add(batch)
    await session.flush()
    await session.execute(
        insert(Item),
        [
            {
                "batch_id": batch.id,
                "custom_id": custom_id,
                "position": position,
                "body": body,
                "status": "pending",
            }
            for position, (custom_id, body) in enumerate(items)
        ],
    )


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


async def item_status_counts(session: AsyncSession, batch_id: str) -> dict[str, int]:
    rows = await session.execute(
        select(Item.status, func.count()).where(Item.batch_id == batch_id).group_by(Item.status)
    )
    return {status: count for status, count in rows}


async def final_failure_reasons(session: AsyncSession, batch_id: str) -> dict[str, int]:
    rows = await session.execute(
        select(Attempt.error_code, func.count())
        .join(Item, col(Item.deciding_attempt_id) == col(Attempt.id))
        .where(Item.batch_id == batch_id, Item.status == "failed")
        .group_by(Attempt.error_code)
    )
    return {code or "unknown": count for code, count in rows}


async def passes_of(session: AsyncSession, batch_id: str) -> list[Pass]:
    result = await session.exec(select(Pass).where(col(Pass.batch_id) == batch_id).order_by(col(Pass.number)))
    return list(result.all())


async def chunks_of(session: AsyncSession, batch_id: str) -> list[ProviderBatch]:
    result = await session.exec(
        select(ProviderBatch).where(col(ProviderBatch.batch_id) == batch_id).order_by(col(ProviderBatch.id))
    )
    return list(result.all())


async def list_batches(
    session: AsyncSession, *, status: str | None, after: str | None, limit: int
) -> tuple[list[Batch], bool]:
    query = select(Batch).order_by(col(Batch.id).desc())
    if status:
        query = query.where(Batch.status == status)
    if after:
        query = query.where(Batch.id < after)
    rows = list((await session.exec(query.limit(limit + 1))).all())
    return rows[:limit], len(rows) > limit


@dataclass(frozen=True)
class ResultRecord:
    position: int
    custom_id: str
    status: str
    attempt: Attempt | None
    pass_number: int | None
    model: str | None
    total_cost_usd: float
    attempts: int


async def result_records(
    session: AsyncSession, batch_id: str, *, status: str | None, after_position: int, limit: int
) -> list[ResultRecord]:
    deciding = aliased(Attempt)
    costs = (
        select(
            col(Attempt.item_id).label("item_id"),
            func.sum(Attempt.cost_usd).label("cost"),
            func.count().label("attempts"),
        )
        .join(Item, col(Item.id) == col(Attempt.item_id))
        .where(Item.batch_id == batch_id, Attempt.status != "pending")
        .group_by(col(Attempt.item_id))
        .subquery()
    )
    query = (
        sa_select(
            col(Item.position),
            col(Item.custom_id),
            col(Item.status),
            deciding,
            col(Pass.number),
            col(Pass.model),
            costs.c.cost,
            costs.c.attempts,
        )
        .outerjoin(deciding, col(deciding.id) == col(Item.deciding_attempt_id))
        .outerjoin(Pass, col(Pass.id) == col(deciding.pass_id))
        .outerjoin(costs, costs.c.item_id == Item.id)
        .where(col(Item.batch_id) == batch_id, col(Item.position) > after_position)
        .order_by(col(Item.position))
        .limit(limit)
    )
    if status:
        query = query.where(col(Item.status) == status)
    rows = await session.execute(query)
    return [
        ResultRecord(
            position=position,
            custom_id=custom_id,
            status=item_status,
            attempt=attempt,
            pass_number=number,
            model=model,
            total_cost_usd=float(cost or 0.0),
            attempts=int(attempts or 0),
        )
        for position, custom_id, item_status, attempt, number, model, cost, attempts in rows
    ]


async def find_item(session: AsyncSession, batch_id: str, custom_id: str) -> Item | None:
    result = await session.exec(select(Item).where(Item.batch_id == batch_id, Item.custom_id == custom_id))
    return result.first()


async def attempts_of(session: AsyncSession, item_id: int) -> list[tuple[Attempt, Pass, str | None]]:
    rows = await session.execute(
        select(Attempt, Pass, ProviderBatch.provider_batch_id)
        .join(Pass, col(Pass.id) == col(Attempt.pass_id))
        .join(ProviderBatch, col(ProviderBatch.id) == col(Attempt.provider_batch_row_id))
        .where(Attempt.item_id == item_id)
        .order_by(col(Pass.number))
    )
    return [(attempt, pass_, provider_id) for attempt, pass_, provider_id in rows]


async def failed_items(session: AsyncSession, batch_id: str) -> dict[str, dict[str, Any]]:
    """custom_id -> body of every item that currently counts as failed."""
    rows = await session.execute(
        sa_select(col(Item.custom_id), col(Item.body)).where(
            col(Item.batch_id) == batch_id, col(Item.status) == "failed"
        )
    )
    return {custom_id: body for custom_id, body in rows}


async def latest_webhook_delivery(session: AsyncSession, batch_id: str) -> WebhookDelivery | None:
    result = await session.exec(
        select(WebhookDelivery)
        .where(col(WebhookDelivery.batch_id) == batch_id)
        .order_by(col(WebhookDelivery.id).desc())
        .limit(1)
    )
    return result.first()


async def webhook_attempts(session: AsyncSession, delivery_id: int, *, limit: int) -> list[WebhookAttempt]:
    """The latest attempts of a delivery, newest first."""
    result = await session.exec(
        select(WebhookAttempt)
        .where(col(WebhookAttempt.delivery_id) == delivery_id)
        .order_by(col(WebhookAttempt.number).desc())
        .limit(limit)
    )
    return list(result.all())
