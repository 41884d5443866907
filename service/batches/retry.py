"""Retrying a finished batch's failed items (all, or some) as a new pass, through the Batch API."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from service.batches.config import LifecycleConfig
from service.batches.lines import check_fits, spec_for
from service.batches.reading import batch_or_404
from service.batches.submission import check_priced
from service.kit.problems import conflict, invalid
from service.models import TERMINAL_BATCH_STATUSES, Batch, PassKind, PassStatus
from service.pipeline.validation import validate_params
from service.store import Session
from service.store import batches as batches_store
from service.store import items as items_store
from service.store import passes as passes_store
from service.store.passes import PassNumberTaken


@dataclass(frozen=True)
class RetryRequest:
    model: str | None = None
    params: dict[str, Any] | None = None
    custom_ids: Sequence[str] | None = None


async def retry(session: Session, config: LifecycleConfig, batch_id: str, request: RetryRequest) -> Batch:
    """Reopen the batch with a planned retry pass (flushed, not committed). 409 while it runs or when nothing
    failed; 422 for a custom_id that is not a failed item."""
    batch = await batch_or_404(session, batch_id)
    if batch.status not in TERMINAL_BATCH_STATUSES:
        raise conflict(f"batch {batch_id} is {batch.status}; retry once its passes have finished")
    failed = await items_store.failed_bodies(session, batch_id)
    if not failed:
        raise conflict(f"batch {batch_id} has no failed items to retry")
    if request.custom_ids is not None:
        not_failed = [custom_id for custom_id in request.custom_ids if custom_id not in failed]
        if not_failed:
            raise invalid(
                f"custom_id {not_failed[0]!r} is not a failed item of this batch; only failed items can be retried",
                field="custom_ids",
            )
    model = request.model or batch.fallback_model
    check_priced(config, model, "model")
    params = request.params if request.params is not None else batch.fallback_params
    validate_params(params, "params")
    wanted = None if request.custom_ids is None else set(request.custom_ids)
    selected = [(cid, body) for cid, body in failed.items() if wanted is None or cid in wanted]
    spec = spec_for(config, model=model, params=batch.params, pass_params=params, output_schema=batch.output_schema)
    check_fits(config, spec, selected)
    if not await batches_store.reopen(session, batch_id, batch.status):
        raise conflict(f"batch {batch_id} changed while retrying; try again")
    try:
        await passes_store.insert(
            session,
            batch_id,
            kind=PassKind.RETRY,
            model=model,
            params=params,
            selected_custom_ids=sorted(wanted) if wanted else None,
            status=PassStatus.PLANNED,
        )
    except PassNumberTaken as error:
        raise conflict(f"another retry of batch {batch_id} started at the same time") from error
    fresh = await batches_store.get_batch_fresh(session, batch_id)
    assert fresh is not None
    return fresh
