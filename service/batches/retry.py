"""Retrying a finished batch's failed items (all, or some) as a new pass, through the Batch API."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from service.batches.config import LifecycleConfig
from service.batches.lines import check_fits, spec_for
from service.batches.reading import batch_or_404
from service.batches.tiers import check_model, retry_tier, tiers_of
from service.kit.problems import conflict, invalid
from service.models import TERMINAL_BATCH_STATUSES, Batch, PassKind, PassStatus
from service.pipeline.catalogue import ModelRef, display_name
from service.pipeline.validation import output_limit, validate_params
from service.store import Session
from service.store import availability as availability_store
from service.store import batches as batches_store
from service.store import items as items_store
from service.store import notifications as notifications_store
from service.store import passes as passes_store
from service.store.passes import PassNumberTaken


@dataclass(frozen=True)
class RetryRequest:
    model: str | None = None
    params: dict[str, Any] | None = None
    custom_ids: Sequence[str] | None = None


def default_retry_model(config: LifecycleConfig, batch: Batch) -> ModelRef:
    """The strongest tier: the batch's last, or (a one-tier batch) the default cascade's last."""
    tiers = tiers_of(batch)
    return tiers[-1].ref if len(tiers) > 1 else config.ref(config.settings.default_cascade()[-1])


async def retry(
    session: Session, config: LifecycleConfig, batch_id: str, request: RetryRequest, tenant: str | None
) -> Batch:
    """Reopen the batch with a planned retry pass holding its failed items (flushed, not committed). 409 while it
    runs or when nothing failed; 422 for a custom_id that is not a failed item, or a model that cannot be used.
    Concurrent retries of one batch queue at the reopening conditional UPDATE (SQLite's write lock,
    PostgreSQL's row lock): one reopens the batch, the others find it running (409)."""
    batch = await batch_or_404(session, batch_id, tenant)
    if batch.status not in TERMINAL_BATCH_STATUSES:
        raise conflict(f"batch {batch_id} is {batch.status}; retry once its passes have finished")
    wanted = None if request.custom_ids is None else sorted(set(request.custom_ids))
    failed = await items_store.failed_custom_ids(session, batch_id, wanted)
    if wanted is not None and len(failed) < len(wanted):
        not_failed = next(custom_id for custom_id in wanted if custom_id not in failed)
        raise invalid(
            f"custom_id {not_failed!r} is not a failed item of this batch; only failed items can be retried",
            field="custom_ids",
        )
    if not failed:
        raise conflict(f"batch {batch_id} has no failed items to retry")
    ref = config.ref(request.model) if request.model else default_retry_model(config, batch)
    warning = check_model(config, ref, "model", await availability_store.read(session))
    tier = retry_tier(batch, ref)
    tier_params = tiers_of(batch)[tier].params if tier is not None else {}
    params = request.params if request.params is not None else tier_params
    validate_params(params, "params")
    limit = output_limit(params)
    cap = config.entry(ref.provider, ref.model).max_completion_tokens
    if limit is not None and limit[1] > cap:
        raise invalid(
            f"params.{limit[0]} is {limit[1]}, above the {cap} output tokens model {display_name(ref)!r} allows",
            field=f"params.{limit[0]}",
            maximum=cap,
        )
    spec = spec_for(
        config,
        provider=ref.provider,
        model=ref.model,
        params=batch.params,
        pass_params=params,
        output_schema=batch.output_schema,
        strict=batch.strict_mode,
    )
    selected = [
        (position, custom_id, body)
        async for position, (custom_id, body) in _enumerate(items_store.failed_for_check(session, batch_id))
        if wanted is None or custom_id in failed
    ]
    await check_fits(config, [spec], selected)
    if not await batches_store.reopen(session, batch_id, batch.status):
        raise conflict(f"batch {batch_id} changed while retrying; try again")
    try:
        await passes_store.insert(
            session,
            batch_id,
            kind=PassKind.RETRY,
            provider=ref.provider,
            model=ref.model,
            tier=tier,
            params=params,
            selected_custom_ids=wanted,
            strict_mode=batch.strict_mode,
            status=PassStatus.PLANNED,
            planned_items=len(failed),
        )
    except PassNumberTaken as error:
        raise conflict(f"another retry of batch {batch_id} started at the same time") from error
    queued = await items_store.queue_retry(session, batch_id, wanted, tier)
    await notifications_store.announce_work(session)
    await batches_store.add_to_counters(session, batch_id, failed=-queued, retrying=queued)
    await passes_store.replace_final_failures(
        session, batch_id, await items_store.final_failure_codes(session, batch_id)
    )
    if warning is not None:
        await batches_store.add_warning(session, batch_id, warning)
    fresh = await batches_store.get_batch(session, batch_id)
    assert fresh is not None
    return fresh


async def _enumerate(rows: Any) -> Any:
    position = 0
    async for row in rows:
        yield position, row
        position += 1
