"""Changing a batch's budget (PATCH /batches/{id}).

While the batch runs its budget only goes up (or away): reservations are being made against it, and a budget
lowered under them could not be kept. A finished batch takes any budget, and its items that failed with
`budget_exceeded` are queued again where they were to be sent (like a retry, on their own tier), so a raised
budget sends them; the next rounds fill the new budget as the first ones did. The same value twice changes
nothing the second time.
"""

from __future__ import annotations

from decimal import Decimal

from service.batches.purging import check_not_deleted
from service.batches.reading import batch_or_404
from service.kit.problems import conflict
from service.models import TERMINAL_BATCH_STATUSES, Batch, BatchStatus
from service.pipeline import failure_codes as codes
from service.pipeline.cost import pico_of_usd, usd_text
from service.store import Session
from service.store import batches as batches_store
from service.store import items as items_store
from service.store import notifications as notifications_store
from service.store import passes as passes_store

FIELD = "budget_usd"


async def change_budget(session: Session, batch_id: str, budget_usd: Decimal | None, tenant: str | None) -> Batch:
    """Set the batch's budget (flushed, not committed); 409 naming budget_usd for a running batch's budget
    lowered or set where it had none; 410 for a deleted batch (nothing of it can run again). A finished batch
    reopens its `budget_exceeded` items."""
    batch = await batch_or_404(session, batch_id, tenant)
    check_not_deleted(batch)
    wanted = pico_of_usd(budget_usd) if budget_usd is not None else None
    if wanted == batch.budget_pico:
        return batch
    if batch.status in TERMINAL_BATCH_STATUSES:
        return await _change_finished(session, batch, wanted)
    if batch.budget_pico is None or (wanted is not None and wanted < batch.budget_pico):
        now = "no budget" if batch.budget_pico is None else f"a budget of ${usd_text(batch.budget_pico)}"
        raise conflict(
            f"batch {batch_id} is {batch.status} with {now}: while it runs, its budget can only be raised "
            "(reservations are made against it); lower or set it once the batch has finished",
            field=FIELD,
        )
    if not await batches_store.raise_budget(session, batch_id, wanted):
        raise conflict(f"batch {batch_id} changed while its budget was raised; try again", field=FIELD)
    return await _fresh(session, batch_id)


async def _change_finished(session: Session, batch: Batch, wanted: int | None) -> Batch:
    if not await batches_store.set_finished_budget(session, batch.id, wanted, batch.status):
        raise conflict(f"batch {batch.id} changed while its budget was set; try again", field=FIELD)
    if batch.status == BatchStatus.CANCELLED:  # a cancelled batch stays cancelled
        return await _fresh(session, batch.id)
    reopened = await items_store.reopen_over_budget(session, batch.id, codes.BUDGET_EXCEEDED)
    if reopened:
        if not await batches_store.reopen(session, batch.id, batch.status):
            raise conflict(f"batch {batch.id} changed while its budget was set; try again", field=FIELD)
        await batches_store.add_to_counters(session, batch.id, failed=-reopened, retrying=reopened)
        await passes_store.replace_final_failures(
            session, batch.id, await items_store.final_failure_codes(session, batch.id)
        )
        await notifications_store.announce_work(session)
    return await _fresh(session, batch.id)


async def _fresh(session: Session, batch_id: str) -> Batch:
    batch = await batches_store.get_batch(session, batch_id)
    assert batch is not None
    return batch
