"""The merged rows of a batch (one per item, following its deciding attempt), read by keyset on position."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import func
from sqlalchemy import select as sa_select
from sqlalchemy.orm import aliased
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from service.models import Attempt, Item, Pass


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


async def page(
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
