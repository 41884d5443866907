"""Finding what a request names, or answering 404 for it."""

from __future__ import annotations

from service.kit.problems import not_found
from service.models import Batch, Item
from service.store import Session
from service.store import batches as batches_store
from service.store import items as items_store


async def find_batch(session: Session, batch_id: str) -> Batch | None:
    return await batches_store.get_batch(session, batch_id)


async def batch_or_404(session: Session, batch_id: str) -> Batch:
    batch = await find_batch(session, batch_id)
    if batch is None:
        raise not_found(f"batch {batch_id!r}")
    return batch


async def item_or_404(session: Session, batch_id: str, custom_id: str) -> Item:
    await batch_or_404(session, batch_id)
    item = await items_store.find(session, batch_id, custom_id)
    if item is None:
        raise not_found(f"item {custom_id!r} in batch {batch_id!r}")
    return item


async def list_page(session: Session, *, status: str | None, after: str | None, limit: int) -> tuple[list[Batch], bool]:
    """One page of batches, newest first, and whether more follow."""
    return await batches_store.list_batches(session, status=status, after=after, limit=limit)
