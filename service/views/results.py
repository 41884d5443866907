"""Merged result rows (GET /batches/{id}/results), in JSON pages or streamed as NDJSON, and one item's view."""

from __future__ import annotations

from collections.abc import AsyncIterator

import orjson

from service.models import Attempt, Item, Pass
from service.pipeline.cost import round_usd
from service.store import Session, Sessions
from service.store import attempts as attempts_store
from service.store import results as results_store
from service.store.results import ResultRecord
from service.views.schemas import AttemptOut, ErrorOut, ItemOut, ResultPage, ResultRow, Usage

NDJSON_PAGE = 1000


def _error(attempt: Attempt) -> ErrorOut | None:
    if attempt.status != "failed":
        return None
    return ErrorOut(code=attempt.error_code or "unknown", message=attempt.error_message)


def result_row(record: ResultRecord) -> ResultRow:
    attempt = record.attempt
    decided = attempt is not None and record.status != "pending"
    return ResultRow(
        custom_id=record.custom_id,
        status=record.status,
        model=record.model if decided else None,
        pass_=record.pass_number if decided else None,
        output=attempt.output if decided and attempt else None,
        content=attempt.content if decided and attempt else None,
        usage=Usage(input_tokens=attempt.input_tokens, output_tokens=attempt.output_tokens)
        if decided and attempt
        else None,
        cost_usd=round_usd(record.total_cost_usd),
        attempts=record.attempts,
        error=_error(attempt) if decided and attempt else None,
    )


async def result_page(
    session: Session, batch_id: str, *, status: str | None, after_position: int, limit: int
) -> ResultPage:
    records = await results_store.page(session, batch_id, status=status, after_position=after_position, limit=limit + 1)
    has_more = len(records) > limit
    records = records[:limit]
    return ResultPage(
        data=[result_row(record) for record in records],
        has_more=has_more,
        next_cursor=str(records[-1].position) if has_more else None,
    )


def attempt_out(attempt: Attempt, pass_: Pass, provider_batch_id: str | None) -> AttemptOut:
    return AttemptOut(
        pass_=pass_.number,
        model=pass_.model,
        status=attempt.status,
        provider_batch_id=provider_batch_id,
        finish_reason=attempt.finish_reason,
        output=attempt.output,
        content=attempt.content,
        usage=Usage(input_tokens=attempt.input_tokens, output_tokens=attempt.output_tokens),
        cost_usd=round_usd(attempt.cost_usd),
        error=_error(attempt),
        created_at=attempt.created_at,
        finished_at=attempt.finished_at,
    )


async def item_out(session: Session, item: Item) -> ItemOut:
    assert item.id is not None
    records = await results_store.page(session, item.batch_id, status=None, after_position=item.position - 1, limit=1)
    return ItemOut(
        custom_id=item.custom_id,
        status=item.status,
        body=item.body,
        result=result_row(records[0]),
        attempts=[attempt_out(*entry) for entry in await attempts_store.of_item(session, item.id)],
    )


async def ndjson_result_rows(sessions: Sessions, batch_id: str, status: str | None) -> AsyncIterator[bytes]:
    """Every merged row as NDJSON, read page by page with a fresh session each: flat memory for any size."""
    position = -1
    while True:
        async with sessions() as session:
            records = await results_store.page(
                session, batch_id, status=status, after_position=position, limit=NDJSON_PAGE
            )
        for record in records:
            yield orjson.dumps(result_row(record).model_dump(mode="json", by_alias=True)) + b"\n"
        if len(records) < NDJSON_PAGE:
            return
        position = records[-1].position
