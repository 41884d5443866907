"""Finding what a request names, within the caller's tenant, or answering 404 for it (another tenant's batch
is not found: its existence is not revealed)."""

from __future__ import annotations

from service.kit.problems import not_found
from service.models import Batch, Item
from service.store import Session
from service.store import batches as batches_store
from service.store import items as items_store


async def find_batch(session: Session, batch_id: str, tenant: str | None) -> Batch | None:
    """`tenant` None: any tenant's (an admin token, or authentication off)."""
    return await batches_store.get_batch(session, batch_id, tenant)


async def batch_or_404(session: Session, batch_id: str, tenant: str | None) -> Batch:
    batch = await find_batch(session, batch_id, tenant)
    if batch is None:
        raise not_found(f"batch {batch_id!r}")
    return batch


async def item_or_404(session: Session, batch_id: str, custom_id: str, tenant: str | None) -> Item:
    await batch_or_404(session, batch_id, tenant)
    item = await items_store.find(session, batch_id, custom_id)
    if item is None:
        raise not_found(f"item {custom_id!r} in batch {batch_id!r}")
    return item


async def list_page(
    session: Session, *, tenant: str | None, status: str | None, after: str | None, limit: int
) -> tuple[list[Batch], bool]:
    """One page of batches, newest first, and whether more follow."""
    return await batches_store.list_batches(session, tenant=tenant, status=status, after=after, limit=limit)
