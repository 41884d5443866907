"""The merged rows of a batch: one per item, read by keyset on its position from the item's own columns and its
deciding attempt (a primary-key join), so a page costs the same at any batch size."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, NamedTuple

from sqlalchemy import select as sa_select
from sqlalchemy.orm import aliased
from sqlmodel import col
from sqlmodel.ext.asyncio.session import AsyncSession

from service.models import Attempt, Item, Pass


@dataclass(frozen=True)
class ResultFilter:
    status: str | None = None
    pass_number: int | None = None  # rows decided in this pass
    tier: int | None = None  # rows decided on this tier
    since_pass: int | None = None  # rows whose merged row changed in a pass after this one
    updated_after: datetime | None = None


class ResultRecord(NamedTuple):
    """One page row as the driver returns it (a tuple: no per-row object to build)."""

    item_id: int
    position: int
    custom_id: str
    status: str
    metadata_json: str | None
    attempts: int
    cost_pico: int
    item_error_code: str | None
    item_error_message: str | None
    changed_pass: int
    updated_at: datetime
    pass_number: int | None
    tier: int | None
    provider: str | None
    model: str | None
    attempt_status: str | None
    error_code: str | None
    error_message: str | None
    content: str | None
    output_json: str | None
    finish_reason: str | None
    input_tokens: int | None
    output_tokens: int | None
    cached_input_tokens: int | None
    cache_write_tokens: int | None
    sent_because: str | None
    reused_from_attempt_id: int | None


async def page(
    session: AsyncSession, batch_id: str, *, after_position: int, limit: int, where: ResultFilter | None = None
) -> list[ResultRecord]:
    deciding = aliased(Attempt)
    columns: list[Any] = [
        col(Item.id),
        col(Item.position),
        col(Item.custom_id),
        col(Item.status),
        col(Item.metadata_json),
        col(Item.attempt_count),
        col(Item.cost_pico),
        col(Item.error_code),
        col(Item.error_message),
        col(Item.changed_pass),
        col(Item.updated_at),
        col(Pass.number),
        deciding.tier,
        col(Pass.provider),
        col(Pass.model),
        deciding.status,
        deciding.error_code,
        deciding.error_message,
        deciding.content,
        deciding.output_json,
        deciding.finish_reason,
        deciding.input_tokens,
        deciding.output_tokens,
        deciding.cached_input_tokens,
        deciding.cache_write_tokens,
        deciding.sent_because,
        deciding.reused_from_attempt_id,
    ]
    query = (
        sa_select(*columns)
        .outerjoin(deciding, col(deciding.id) == col(Item.deciding_attempt_id))
        .outerjoin(Pass, col(Pass.id) == col(deciding.pass_id))
        .where(col(Item.batch_id) == batch_id, col(Item.position) > after_position)
        .order_by(col(Item.position))
        .limit(limit)
    )
    where = where or ResultFilter()
    if where.status:
        query = query.where(col(Item.status) == where.status)
    if where.pass_number is not None:
        query = query.where(col(Pass.number) == where.pass_number)
    if where.tier is not None:
        query = query.where(col(deciding.tier) == where.tier)
    if where.since_pass is not None:
        query = query.where(col(Item.changed_pass) > where.since_pass)
    if where.updated_after is not None:
        query = query.where(col(Item.updated_at) > where.updated_after)
    # Run by the connection, not the ORM session: the rows are plain columns, no entity to load.
    rows = await (await session.connection()).execute(query)
    return [ResultRecord._make(row) for row in rows.all()]
