"""The state of the shared database that /metrics reports, read at each scrape (every replica reports the same)."""

from __future__ import annotations

from collections import Counter as Tally
from collections.abc import Mapping
from dataclasses import dataclass, field

from sqlalchemy import func
from sqlalchemy import select as sa_select
from sqlmodel import col
from sqlmodel.ext.asyncio.session import AsyncSession

from service.kit.clock import utcnow
from service.models import Attempt, Batch, ChunkState, Item, ItemStatus, Pass, ProviderBatch


@dataclass(frozen=True)
class DatabaseSnapshot:
    batches: Mapping[str, int] = field(default_factory=dict)
    items: Mapping[tuple[str, str], int] = field(default_factory=dict)  # (status, failure code) -> count
    cost_usd: Mapping[tuple[str, int], float] = field(default_factory=dict)  # (model, pass number) -> USD
    chunks: Mapping[str, int] = field(default_factory=dict)
    oldest_due_seconds: float = 0.0


async def read_snapshot(session: AsyncSession) -> DatabaseSnapshot:
    batches = await session.execute(sa_select(col(Batch.status), func.count()).group_by(col(Batch.status)))
    items = await session.execute(
        sa_select(col(Item.status), col(Attempt.error_code), func.count())
        .select_from(Item)
        .outerjoin(Attempt, col(Attempt.id) == col(Item.deciding_attempt_id))
        .group_by(col(Item.status), col(Attempt.error_code))
    )
    cost = await session.execute(
        sa_select(col(Pass.model), col(Pass.number), func.coalesce(func.sum(col(Attempt.cost_usd)), 0.0))
        .join(Pass, col(Pass.id) == col(Attempt.pass_id))
        .group_by(col(Pass.model), col(Pass.number))
    )
    chunks = await session.execute(sa_select(col(ProviderBatch.state), func.count()).group_by(col(ProviderBatch.state)))
    now = utcnow()
    oldest_due = await session.scalar(
        sa_select(func.min(col(ProviderBatch.next_action_at))).where(
            col(ProviderBatch.state) != ChunkState.DONE, col(ProviderBatch.next_action_at) <= now
        )
    )
    item_counts: Tally[tuple[str, str]] = Tally()
    for status, code, count in items:
        item_counts[(status, (code or "unknown") if status == ItemStatus.FAILED else "")] += count
    return DatabaseSnapshot(
        batches={status: count for status, count in batches},
        items=dict(item_counts),
        cost_usd={(model, number): float(usd) for model, number, usd in cost},
        chunks={state: count for state, count in chunks},
        oldest_due_seconds=max(0.0, (now - oldest_due).total_seconds()) if oldest_due else 0.0,
    )
