"""Merged result rows (GET /batches/{id}/results), in JSON pages or streamed as NDJSON, and one item's view.

A row is built from plain columns and written with orjson: an output stored as JSON text goes out as it is
(orjson.Fragment), never parsed and serialised again.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, Sequence
from functools import lru_cache
from typing import Any

import orjson

from service.kit.cooperative import STEPS_PER_TURN, each, give_way
from service.models import Attempt, Item, ItemStatus, Pass
from service.pipeline.cost import usd_float, usd_text
from service.store import Session, Sessions
from service.store import attempts as attempts_store
from service.store import items as items_store
from service.store import results as results_store
from service.store.attempts import LineageStep
from service.store.results import ResultFilter, ResultRecord
from service.views.response_bodies import AttemptOut, ErrorOut, ItemOut, ResultRow, Usage

__all__ = ["ResultFilter", "attempt_out", "encode", "item_out", "ndjson_pages", "result_rows", "row_dict"]

UNDECIDED = frozenset({ItemStatus.PENDING})
DECIDED_FOR_GOOD = frozenset({ItemStatus.SUCCEEDED, ItemStatus.FAILED})
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
        "provider": step.provider,
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


@lru_cache(maxsize=4_096)
def _lineage_json(steps: tuple[LineageStep, ...]) -> orjson.Fragment:
    """A lineage as JSON, remembered: most items of a batch share theirs (same passes, outcomes and cost). A
    few thousand entries of a few hundred bytes: a bounded cost to the process, whatever the batches."""
    return orjson.Fragment(encode([_step(step) for step in steps]))


def row_dict(record: ResultRecord, lineage: Sequence[LineageStep], *, raw: bool) -> dict[str, Any]:
    """One merged row. `raw`: stored JSON (output, metadata, lineage) goes in as a Fragment, for orjson to
    write."""
    decided = record.pass_number is not None and record.status not in UNDECIDED
    metadata = record.metadata_json
    output = record.output_json if decided and record.attempt_status == "succeeded" else None
    if raw:
        metadata_value = None if metadata is None else orjson.Fragment(metadata)
        output_value = None if output is None else orjson.Fragment(output)
        lineage_value: Any = _lineage_json(tuple(lineage))
    else:
        metadata_value = None if metadata is None else orjson.loads(metadata)
        output_value = None if output is None else orjson.loads(output)
        lineage_value = [_step(step) for step in lineage]
    return {
        "custom_id": record.custom_id,
        "status": record.status,
        "metadata": metadata_value,
        "provider": record.provider if decided else None,
        "model": record.model if decided else None,
        "pass": record.pass_number if decided else None,
        "tier": record.tier if decided else None,
        "output": output_value,
        "content": record.content if decided else None,
        "usage": {
            "input_tokens": record.input_tokens or 0,
            "output_tokens": record.output_tokens or 0,
            "cached_input_tokens": record.cached_input_tokens or 0,
            "cache_write_tokens": record.cache_write_tokens or 0,
        }
        if decided
        else None,
        "cost_usd": usd_float(record.cost_pico),
        "cost_usd_exact": usd_text(record.cost_pico),
        "attempts": record.attempts,
        "error": _error(record),
        "lineage": lineage_value,
        "changed_in_pass": record.changed_pass,
        "updated_at": record.updated_at,
    }


def _only_step(record: ResultRecord) -> LineageStep | None:
    """The lineage of an item decided for good by its one and only attempt, read off its row: most rows of a
    batch, which then need no lineage query. None when the attempts must be read."""
    if (
        record.attempts != 1
        or record.status not in DECIDED_FOR_GOOD
        or record.pass_number is None
        or record.attempt_status is None
        or record.reused_from_attempt_id is not None
    ):
        return None
    assert record.model is not None and record.provider is not None and record.sent_because is not None
    return LineageStep(
        pass_number=record.pass_number,
        tier=record.tier,
        provider=record.provider,
        model=record.model,
        sent_because=record.sent_because,
        status=record.attempt_status,
        error_code=record.error_code,
        cost_pico=record.cost_pico,  # the item's cost is its attempts' cost
        reused_from_attempt_id=None,
        reused_from_batch_id=None,
    )


async def result_rows(
    session: Session, batch_id: str, *, after_position: int, limit: int, where: ResultFilter | None, raw: bool
) -> tuple[list[dict[str, Any]], int | None]:
    """Up to `limit` rows after `after_position`, and the cursor of the next page (None: no more)."""
    records = await results_store.page(session, batch_id, after_position=after_position, limit=limit + 1, where=where)
    has_more = len(records) > limit
    records = records[:limit]
    only_steps = [_only_step(record) for record in records]
    lineage = await attempts_store.lineage_of(
        session, [record.item_id for record, only in zip(records, only_steps, strict=True) if only is None]
    )
    rows = [
        row_dict(record, [only] if only is not None else lineage.get(record.item_id, []), raw=raw)
        async for record, only in each(zip(records, only_steps, strict=True))
    ]
    return rows, records[-1].position if has_more else None


async def ndjson_pages(
    sessions: Sessions,
    batch_id: str,
    *,
    first: tuple[list[dict[str, Any]], int | None],
    where: ResultFilter | None,
    limit: int | None,
    page_size: int,
) -> AsyncGenerator[bytes, None]:
    """The rows as NDJSON blocks, a page at a time, each page read with a session of its own (no connection
    is held while the client reads). `first` is the page already read before the response started. The next
    page is read while this one is written: the database works in its own thread meanwhile."""

    async def read(after_position: int, size: int) -> tuple[list[dict[str, Any]], int | None]:
        async with sessions() as session:
            return await result_rows(
                session, batch_id, after_position=after_position, limit=size, where=where, raw=True
            )

    rows, cursor = first
    sent = 0
    following: asyncio.Task[tuple[list[dict[str, Any]], int | None]] | None = None
    try:
        while True:
            if limit is not None:
                rows = rows[: max(0, limit - sent)]
            sent += len(rows)
            if cursor is not None and (limit is None or sent < limit):
                following = asyncio.create_task(
                    read(cursor, page_size if limit is None else min(page_size, limit - sent))
                )
            for start in range(0, len(rows), STEPS_PER_TURN):  # one write per slice, the event loop runs between
                yield b"".join(encode(row) + b"\n" for row in rows[start : start + STEPS_PER_TURN])
                await give_way()
            if following is None:
                return
            rows, cursor = await following
            following = None
    finally:
        if following is not None:  # the client went away mid-stream: the read ends, its connection goes back
            following.cancel()
            await asyncio.wait([following])


def attempt_out(attempt: Attempt, pass_: Pass, provider_batch_id: str | None) -> AttemptOut:
    return AttemptOut(
        pass_=pass_.number,
        tier=attempt.tier,
        provider=pass_.provider,
        model=pass_.model,
        sent_because=attempt.sent_because,
        status=attempt.status,
        provider_batch_id=provider_batch_id,
        finish_reason=attempt.finish_reason,
        output=orjson.loads(attempt.output_json) if attempt.output_json else None,
        content=attempt.content,
        usage=Usage(
            input_tokens=attempt.input_tokens,
            output_tokens=attempt.output_tokens,
            cached_input_tokens=attempt.cached_input_tokens,
            cache_write_tokens=attempt.cache_write_tokens,
        ),
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
        body=orjson.loads((await items_store.bodies(session, [item.id]))[item.id]),
        result=ResultRow.model_validate(rows[0]),
        attempts=[attempt_out(*entry) for entry in await attempts_store.of_item(session, item.id)],
    )
