"""Merging results: each attempt is finished once with its outcome, each failure is routed by its cause, and
the item's merged row, the pass's and the batch's counters follow, all in the ingest's one fenced transaction.

This is the step that makes "one merged row per item" true. An item is `succeeded`, `retrying` (the cascade
queued it for a later pass: counted as such, never as pending again) or `failed` for good; the counters are
added to in place, so they never go backwards and never need recomputing.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

import orjson

from service.batches.config import LifecycleConfig
from service.batches.tiers import routing_tiers
from service.kit.clock import utcnow
from service.models import AttemptStatus, Batch, ItemStatus, Pass
from service.pipeline import failure_codes as codes
from service.pipeline.catalogue import ModelRef, display_name
from service.pipeline.classify import Outcome, unprocessed
from service.pipeline.cost import Usage
from service.pipeline.routing import FailedAttempt, Send, Stop, route
from service.store import Session
from service.store import attempts as attempts_store
from service.store import availability as availability_store
from service.store import batches as batches_store
from service.store import items as items_store
from service.store import passes as passes_store
from service.store.attempts import FinishedAttempt, PendingAttempt, Reusable
from service.store.items import MergedItem
from service.store.passes import FINAL

UNAVAILABLE_MODEL = frozenset({codes.MODEL_DECOMMISSIONED, codes.MODEL_NOT_FOUND})


@dataclass(frozen=True)
class MergeSummary:
    succeeded: int
    failed: int  # for good
    queued: int  # sent on by the cascade
    cost_pico: int


def replayed(custom_id: str, source: Reusable) -> Outcome:
    """The outcome an identical earlier request had, taken at no cost (nothing is sent, nothing billed)."""
    succeeded = source.status == AttemptStatus.SUCCEEDED
    return Outcome(
        custom_id=custom_id,
        succeeded=succeeded,
        error_code=None if succeeded else source.error_code,
        error_message=None if succeeded else source.error_message,
        content=source.content,
        output=None,
        finish_reason=source.finish_reason,
        usage=Usage(0, 0),
        provider_request_id=None,
        output_json=source.output_json if succeeded else None,
    )


async def merge_outcomes(
    session: Session,
    config: LifecycleConfig,
    batch: Batch,
    pass_: Pass,
    outcomes: Sequence[tuple[PendingAttempt, Outcome]],
    *,
    released_pico: int = 0,
) -> MergeSummary:
    """Finish these attempts, route their failures, write the items' merged rows and every counter.
    `released_pico`: the chunk's budget reservation, returned now that the actual cost is known."""
    assert pass_.id is not None
    gone = {outcome.error_code for _pending, outcome in outcomes} & UNAVAILABLE_MODEL
    name = display_name(ModelRef(pass_.provider, pass_.model))
    for code in gone:
        await availability_store.mark_unavailable(session, name, f"{pass_.provider} answered {code} for it")
    tiers = routing_tiers(config, batch, await availability_store.read(session))
    now = utcnow()
    attempt_rows: list[FinishedAttempt] = []
    item_rows: list[MergedItem] = []
    pass_failures: Counter[str] = Counter()
    final_failures: Counter[str] = Counter()
    counts: Counter[str] = Counter()
    tokens_in = tokens_out = cost_total = queued = 0
    keep_text = batch.deleted_at is None  # a deleted batch's late results count, but their text is not written
    for pending, outcome in outcomes:
        cost = config.cost_pico(pass_.provider, pass_.model, outcome.usage)
        cost_total += cost
        tokens_in += outcome.usage.input_tokens
        tokens_out += outcome.usage.output_tokens
        attempt_rows.append(
            FinishedAttempt(
                status=AttemptStatus.SUCCEEDED if outcome.succeeded else AttemptStatus.FAILED,
                error_code=outcome.error_code,
                error_message=outcome.error_message if keep_text else None,
                content=outcome.content if keep_text else None,
                output_json=outcome.stored_output() if keep_text else None,
                finish_reason=outcome.finish_reason,
                input_tokens=outcome.usage.input_tokens,
                output_tokens=outcome.usage.output_tokens,
                cached_input_tokens=outcome.usage.cached_input_tokens,
                cache_write_tokens=outcome.usage.cache_write_tokens,
                cost_pico=cost,
                provider_request_id=outcome.provider_request_id,
                finished_at=now,
                attempt_id=pending.attempt_id,
            )
        )
        status, next_tier, next_reason, next_overrides = ItemStatus.SUCCEEDED, None, None, None
        if not outcome.succeeded:
            code = outcome.error_code or "unknown"
            pass_failures[code] += 1
            decision = route(
                FailedAttempt(
                    code=code,
                    tier=pending.tier,
                    sent_because=pending.sent_because,
                    overrides=orjson.loads(pending.overrides_json) if pending.overrides_json else {},
                    max_tokens_sent=pending.max_tokens_sent,
                    output_tokens=outcome.usage.output_tokens,
                    reasoning_effort_sent=pending.reasoning_effort_sent,
                    http_status=outcome.http_status,
                ),
                tiers,
                max_resends=config.settings.cascade_max_resends,
            )
            if isinstance(decision, Send):
                status, next_tier, next_reason = ItemStatus.RETRYING, decision.tier, decision.reason
                next_overrides = orjson.dumps(decision.overrides).decode() if decision.overrides else None
                queued += 1
            else:
                assert isinstance(decision, Stop)
                status = ItemStatus.FAILED
                final_failures[decision.code] += 1
        counts[pending.item_status] -= 1
        counts[status] += 1
        item_rows.append(
            MergedItem(
                status=status,
                deciding_attempt_id=pending.attempt_id,
                next_tier=next_tier,
                next_reason=next_reason,
                next_overrides_json=next_overrides,
                error_code=None,
                error_message=None,
                changed_pass=pass_.number,
                updated_at=now,
                attempts_added=1,
                cost_added_pico=cost,
                item_id=pending.item_id,
            )
        )
    # The batch's row first: it serialises this write with the lay-out of the batch's next passes.
    await batches_store.add_to_counters(
        session,
        batch.id,
        **{status: delta for status, delta in counts.items()},
        input_tokens=tokens_in,
        output_tokens=tokens_out,
        cost_pico=cost_total,
        reserved_pico=-released_pico,
    )
    await passes_store.add_to_counters(
        session,
        pass_.id,
        succeeded=sum(1 for _p, outcome in outcomes if outcome.succeeded),
        failed=sum(pass_failures.values()),
        input_tokens=tokens_in,
        output_tokens=tokens_out,
        cost_pico=cost_total,
    )
    await passes_store.count_failures(session, batch.id, pass_.id, pass_failures)
    await passes_store.count_failures(session, batch.id, FINAL, final_failures)
    await attempts_store.finish(session, attempt_rows)
    await items_store.merge(session, item_rows)
    return MergeSummary(
        succeeded=counts[ItemStatus.SUCCEEDED],
        failed=sum(final_failures.values()),
        queued=queued,
        cost_pico=cost_total,
    )


async def fail_unsent(
    session: Session,
    config: LifecycleConfig,
    batch: Batch,
    pass_: Pass,
    chunk_id: int,
    code: str,
    message: str,
    *,
    released_pico: int = 0,
) -> MergeSummary:
    """Every attempt of a chunk that never reached the provider fails with `code`, and is routed like any failure
    (a cancelled or over-budget item stops; one the provider refused to take moves on)."""
    pending = await attempts_store.pending_of_chunk(session, chunk_id)
    return await merge_outcomes(
        session,
        config,
        batch,
        pass_,
        [(attempt, unprocessed(custom_id, code, message)) for custom_id, attempt in pending.items()],
        released_pico=released_pico,
    )
