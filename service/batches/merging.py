"""Merging results: an attempt is finished once with its outcome, and its item's merged row follows it.

This is the step that makes "one merged row per item" true: the item's status and deciding attempt are
written in the same statement batch as the attempt's outcome, inside the ingest's fenced transaction.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from service.batches.config import LifecycleConfig
from service.kit.clock import utcnow
from service.models import AttemptStatus, ItemStatus, Pass
from service.pipeline.classify import Outcome, unprocessed
from service.store import Session
from service.store import attempts as attempts_store
from service.store import items as items_store


async def merge_outcomes(
    session: Session, config: LifecycleConfig, pass_: Pass, outcomes: Iterable[tuple[int, int, Outcome]]
) -> int:
    """Finish attempts (attempt id, item id, outcome) in bulk and point their items at them; how many."""
    now = utcnow()
    attempt_rows: list[dict[str, Any]] = []
    decisions: list[tuple[int, str, int]] = []
    for attempt_id, item_id, outcome in outcomes:
        attempt_rows.append(
            {
                "id": attempt_id,
                "status": AttemptStatus.SUCCEEDED if outcome.succeeded else AttemptStatus.FAILED,
                "error_code": outcome.error_code,
                "error_message": outcome.error_message,
                "content": outcome.content,
                "output": outcome.output,
                "finish_reason": outcome.finish_reason,
                "input_tokens": outcome.usage.input_tokens,
                "output_tokens": outcome.usage.output_tokens,
                "cost_usd": config.prices.cost_usd(pass_.model, outcome.usage),
                "provider_request_id": outcome.provider_request_id,
                "finished_at": now,
            }
        )
        decisions.append((item_id, ItemStatus.SUCCEEDED if outcome.succeeded else ItemStatus.FAILED, attempt_id))
    await attempts_store.finish(session, attempt_rows)
    await items_store.decide(session, decisions)
    return len(attempt_rows)


async def fail_unsent(
    session: Session, config: LifecycleConfig, chunk_id: int, pass_: Pass, code: str, message: str
) -> int:
    """Every attempt of a chunk that never reached Groq fails with `code` (the items are never lost)."""
    pending = await attempts_store.pending_of_chunk(session, chunk_id)
    return await merge_outcomes(
        session,
        config,
        pass_,
        (
            (attempt_id, item_id, unprocessed(custom_id, code, message))
            for custom_id, (attempt_id, item_id, _body) in pending.items()
        ),
    )
