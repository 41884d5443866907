"""Lay out a planned pass: one pending attempt per selected item, grouped into provider-batch chunks."""

from __future__ import annotations

from typing import Any

from sqlalchemy import insert, update
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from service.models import (
    Attempt,
    AttemptStatus,
    Batch,
    Item,
    ItemStatus,
    Pass,
    PassKind,
    PassStatus,
    ProviderBatch,
)
from service.pipeline.chunking import plan_chunks
from service.pipeline.requests import PassRequestSpec, request_line
from service.workers.context import WorkerContext


def pass_spec(ctx: WorkerContext, batch: Batch, pass_: Pass) -> PassRequestSpec:
    return PassRequestSpec(
        model=pass_.model,
        supports_json_schema=ctx.supports_json_schema(pass_.model),
        params=batch.params,
        pass_params=pass_.params,
        output_schema=batch.output_schema,
    )


async def _selected_items(session: AsyncSession, batch: Batch, pass_: Pass) -> list[Any]:
    query = select(Item.id, Item.custom_id, Item.body).where(Item.batch_id == batch.id)
    if pass_.kind != PassKind.PRIMARY:
        # Later passes only ever take items that failed: passing items are never sent again.
        query = query.where(Item.status == ItemStatus.FAILED)
    rows = (await session.execute(query.order_by(col(Item.position)))).all()
    if pass_.selected_custom_ids is not None:
        wanted = set(pass_.selected_custom_ids)
        rows = [row for row in rows if row.custom_id in wanted]
    return list(rows)


async def lay_out_pass(session: AsyncSession, ctx: WorkerContext, batch: Batch, pass_: Pass) -> int:
    """Create the chunks and attempts of `pass_` and mark it running. Returns the number of items."""
    assert pass_.id is not None
    items = await _selected_items(session, batch, pass_)
    spec = pass_spec(ctx, batch, pass_)
    sizes = [len(request_line(spec, row.custom_id, row.body)) for row in items]
    chunk_of = plan_chunks(
        sizes,
        max_lines=ctx.settings.max_lines_per_provider_batch,
        max_bytes=ctx.settings.max_bytes_per_provider_batch,
    )
    chunk_rows: dict[int, ProviderBatch] = {}
    for index, size in zip(chunk_of, sizes, strict=True):
        row = chunk_rows.get(index)
        if row is None:
            row = chunk_rows[index] = ProviderBatch(batch_id=batch.id, pass_id=pass_.id, chunk_index=index)
        row.line_count += 1
        row.byte_count += size
    session.add_all(chunk_rows.values())
    await session.flush()
    if items:
        await session.execute(
            insert(Attempt),
            [
                {
                    "item_id": row.id,
                    "pass_id": pass_.id,
                    "provider_batch_row_id": chunk_rows[index].id,
                    "status": AttemptStatus.PENDING,
                }
                for row, index in zip(items, chunk_of, strict=True)
            ],
        )
        await session.execute(
            update(Item),
            [{"id": row.id, "status": ItemStatus.PENDING} for row in items],
        )
    pass_.status = PassStatus.RUNNING if items else PassStatus.COMPLETED
    session.add(pass_)
    return len(items)
