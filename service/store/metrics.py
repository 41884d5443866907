"""The state of the shared database that /metrics reports, read at each scrape (every replica reports the same)
from the kept counters, so a scrape costs the same however many items there are."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from sqlalchemy import func
from sqlalchemy import select as sa_select
from sqlmodel import col
from sqlmodel.ext.asyncio.session import AsyncSession

from service.kit.clock import utcnow
from service.models import Batch, Chunk, ChunkState, FailureCount, Pass
from service.pipeline.catalogue import ModelRef, display_name
from service.store.passes import FINAL


@dataclass(frozen=True)
class DatabaseSnapshot:
    batches: Mapping[str, int] = field(default_factory=dict)
    items: Mapping[tuple[str, str], int] = field(default_factory=dict)  # (status, failure code) -> count
    cost_pico: Mapping[tuple[str, str], int] = field(default_factory=dict)  # (model, pass kind) -> picodollars
    chunks: Mapping[str, int] = field(default_factory=dict)
    oldest_due_seconds: float = 0.0


async def read_snapshot(session: AsyncSession) -> DatabaseSnapshot:
    batches = await session.execute(sa_select(col(Batch.status), func.count()).group_by(col(Batch.status)))
    totals = (
        await session.execute(
            sa_select(
                func.coalesce(func.sum(col(Batch.succeeded)), 0),
                func.coalesce(func.sum(col(Batch.pending)), 0),
                func.coalesce(func.sum(col(Batch.retrying)), 0),
            )
        )
    ).one()
    failures = await session.execute(
        sa_select(col(FailureCount.code), func.sum(col(FailureCount.count)))
        .where(col(FailureCount.pass_id) == FINAL)
        .group_by(col(FailureCount.code))
    )
    # By pass kind (primary, cascade, retry), a fixed set: a pass number would add a series with every retry.
    cost = await session.execute(
        sa_select(
            col(Pass.provider), col(Pass.model), col(Pass.kind), func.coalesce(func.sum(col(Pass.cost_pico)), 0)
        ).group_by(col(Pass.provider), col(Pass.model), col(Pass.kind))
    )
    chunks = await session.execute(sa_select(col(Chunk.state), func.count()).group_by(col(Chunk.state)))
    now = utcnow()
    oldest_due = await session.scalar(
        sa_select(func.min(col(Chunk.next_action_at))).where(
            col(Chunk.state) != ChunkState.DONE, col(Chunk.next_action_at) <= now
        )
    )
    succeeded, pending, retrying = (int(value) for value in totals)
    items = {("succeeded", ""): succeeded, ("pending", ""): pending, ("retrying", ""): retrying}
    items |= {("failed", code): int(count) for code, count in failures if count}
    return DatabaseSnapshot(
        batches={status: count for status, count in batches},
        items=items,
        cost_pico={
            (display_name(ModelRef(provider, model)), str(kind)): int(pico) for provider, model, kind, pico in cost
        },
        chunks={state: count for state, count in chunks},
        oldest_due_seconds=max(0.0, (now - oldest_due).total_seconds()) if oldest_due else 0.0,
    )
