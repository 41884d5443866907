"""Merged result rows (GET /batches/{id}/results), in JSON pages or streamed as NDJSON, and one item's view.

A row is built from plain columns and written with orjson: an output stored as JSON text goes out as it is
(orjson.Fragment), never parsed and serialised again.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from typing import Any

import orjson

from service.kit.cooperative import STEPS_PER_TURN, each, give_way
from service.models import Attempt, Item, ItemStatus, Pass
from service.pipeline.cost import usd_float, usd_text
from service.store import Session, Sessions
from service.store import attempts as attempts_store
from service.store import results as results_store
from service.store.attempts import LineageStep
from service.store.results import ResultFilter, ResultRecord
from service.views.schemas import AttemptOut, ErrorOut, ItemOut, ResultRow, Usage

__all__ = ["ResultFilter", "attempt_out", "encode", "item_out", "ndjson_pages", "result_rows", "row_dict"]

UNDECIDED = frozenset({ItemStatus.PENDING})
# Rows carry naive UTC timestamps from the database: written with their zone (`...Z`).
JSON_OPTIONS = orjson.OPT_NAIVE_UTC | orjson.OPT_UTC_Z


def encode(value: Any) -> bytes:
    """A page or a row as JSON (stored JSON fragments written as they are)."""
    return orjson.dumps(value, option=JSON_OPTIONS)


def _step(step: LineageStep) -> dict[str, Any]:
    outcome = step.status if step.status != "failed" else (step.error_code or "unknown")
    reused = (
        {"batch_id": step.reused_from_batch_id, "attempt_id": step.reused_from_attempt_id}
        if step.reused_from_attempt_id is not None
        else None
    )
    return {
        "pass": step.pass_number,
        "tier": step.tier,
        "model": step.model,
        "sent_because": step.sent_because,
        "outcome": outcome,
        "cost_usd_exact": usd_text(step.cost_pico),
        "reused_from": reused,
    }


def _error(record: ResultRecord) -> dict[str, Any] | None:
    if record.item_error_code is not None:
        return {"code": record.item_error_code, "message": record.item_error_message}
    if record.status in (ItemStatus.FAILED, ItemStatus.RETRYING) and record.attempt_status == "failed":
        return {"code": record.error_code or "unknown", "message": record.error_message}
    return None


def row_dict(record: ResultRecord, lineage: Sequence[LineageStep], *, raw: bool) -> dict[str, Any]:
    """One merged row. `raw`: stored JSON (output, metadata) goes in as a Fragment, for orjson to write."""
    decided = record.pass_number is not None and record.status not in UNDECIDED
    succeeded = decided and record.attempt_status == "succeeded"

    def json_value(text: str | None) -> Any:
        if text is None:
            return None
        return orjson.Fragment(text) if raw else orjson.loads(text)

    return {
        "custom_id": record.custom_id,
        "status": record.status,
        "metadata": json_value(record.metadata_json),
        "model": record.model if decided else None,
        "pass": record.pass_number if decided else None,
        "tier": record.tier if decided else None,
        "output": json_value(record.output_json) if succeeded else None,
        "content": record.content if decided else None,
        "usage": {"input_tokens": record.input_tokens or 0, "output_tokens": record.output_tokens or 0}
        if decided
        else None,
        "cost_usd": usd_float(record.cost_pico),
        "cost_usd_exact": usd_text(record.cost_pico),
        "attempts": record.attempts,
        "error": _error(record),
        "lineage": [_step(step) for step in lineage],
        "changed_in_pass": record.changed_pass,
        "updated_at": record.updated_at,
    }


async def result_rows(
    session: Session, batch_id: str, *, after_position: int, limit: int, where: ResultFilter | None, raw: bool
) -> tuple[list[dict[str, Any]], int | None]:
    """Up to `limit` rows after `after_position`, and the cursor of the next page (None: no more)."""
    records = await results_store.page(session, batch_id, after_position=after_position, limit=limit + 1, where=where)
    has_more = len(records) > limit
    records = records[:limit]
    lineage = await attempts_store.lineage_of(session, [record.item_id for record in records])
    rows = [row_dict(record, lineage.get(record.item_id, []), raw=raw) async for record in each(records)]
    return rows, records[-1].position if has_more else None


async def ndjson_pages(
    sessions: Sessions,
    batch_id: str,
    *,
    first: tuple[list[dict[str, Any]], int | None],
    where: ResultFilter | None,
    limit: int | None,
    page_size: int,
) -> AsyncIterator[bytes]:
    """The rows as NDJSON blocks, a page at a time, each page read with a session of its own (no connection
    is held while the client reads). `first` is the page already read before the response started."""
    rows, cursor = first
    sent = 0
    while True:
        if limit is not None:
            rows = rows[: max(0, limit - sent)]
        for start in range(0, len(rows), STEPS_PER_TURN):  # one write per slice, the event loop runs between
            yield b"".join(encode(row) + b"\n" for row in rows[start : start + STEPS_PER_TURN])
            await give_way()
        sent += len(rows)
        if cursor is None or (limit is not None and sent >= limit):
            return
        size = page_size if limit is None else min(page_size, limit - sent)
        async with sessions() as session:
            rows, cursor = await result_rows(
                session, batch_id, after_position=cursor, limit=size, where=where, raw=True
            )


def attempt_out(attempt: Attempt, pass_: Pass, provider_batch_id: str | None) -> AttemptOut:
    return AttemptOut(
        pass_=pass_.number,
        tier=attempt.tier,
        model=pass_.model,
        sent_because=attempt.sent_because,
        status=attempt.status,
        provider_batch_id=provider_batch_id,
        finish_reason=attempt.finish_reason,
        output=orjson.loads(attempt.output_json) if attempt.output_json else None,
        content=attempt.content,
        usage=Usage(input_tokens=attempt.input_tokens, output_tokens=attempt.output_tokens),
        cost_usd=usd_float(attempt.cost_pico),
        cost_usd_exact=usd_text(attempt.cost_pico),
        error=ErrorOut(code=attempt.error_code or "unknown", message=attempt.error_message)
        if attempt.status == "failed"
        else None,
        reused_from_attempt_id=attempt.reused_from_attempt_id,
        created_at=attempt.created_at,
        finished_at=attempt.finished_at,
    )


async def item_out(session: Session, item: Item) -> ItemOut:
    assert item.id is not None
    rows, _cursor = await result_rows(
        session, item.batch_id, after_position=item.position - 1, limit=1, where=None, raw=False
    )
    return ItemOut(
        custom_id=item.custom_id,
        status=item.status,
        metadata=orjson.loads(item.metadata_json) if item.metadata_json else None,
        body=orjson.loads(item.body_json),
        result=ResultRow.model_validate(rows[0]),
        attempts=[attempt_out(*entry) for entry in await attempts_store.of_item(session, item.id)],
    )
