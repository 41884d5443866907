"""Laying out a planned pass: one pending attempt per item it takes, grouped into provider-batch chunks."""

from __future__ import annotations

from service.batches.config import LifecycleConfig
from service.batches.lines import spec_of_pass
from service.models import Batch, Pass, PassKind, PassStatus, ProviderBatch
from service.pipeline.chunking import plan_chunks
from service.pipeline.requests import request_line
from service.store import Session
from service.store import attempts as attempts_store
from service.store import chunks as chunks_store
from service.store import items as items_store
from service.store import passes as passes_store


async def lay_out(session: Session, config: LifecycleConfig, batch: Batch, pass_: Pass) -> int:
    """Create the chunks and attempts of `pass_` and mark it running (completed when it takes no item).
    Later passes only ever take items that failed: items that passed are never sent again. Returns the
    number of items."""
    assert pass_.id is not None
    items = await items_store.for_pass(
        session, batch.id, failed_only=pass_.kind != PassKind.PRIMARY, custom_ids=pass_.selected_custom_ids
    )
    spec = spec_of_pass(config, batch, pass_)
    sizes = [len(request_line(spec, row.custom_id, row.body)) for row in items]
    chunk_of = plan_chunks(
        sizes,
        max_lines=config.settings.max_lines_per_provider_batch,
        max_bytes=config.settings.max_bytes_per_provider_batch,
    )
    chunks: dict[int, ProviderBatch] = {}
    for index, size in zip(chunk_of, sizes, strict=True):
        chunk = chunks.get(index)
        if chunk is None:
            chunk = chunks[index] = ProviderBatch(batch_id=batch.id, pass_id=pass_.id, chunk_index=index)
        chunk.line_count += 1
        chunk.byte_count += size
    await chunks_store.insert(session, chunks.values())
    chunk_ids = {index: chunk.id for index, chunk in chunks.items() if chunk.id is not None}
    await attempts_store.insert_pending(
        session, [(row.id, pass_.id, chunk_ids[index]) for row, index in zip(items, chunk_of, strict=True)]
    )
    await items_store.mark_pending(session, [row.id for row in items])
    await passes_store.set_status(session, pass_.id, PassStatus.RUNNING if items else PassStatus.COMPLETED)
    return len(items)
