"""The /batches routes: HTTP only. The lifecycle is `service/batches/`, the answers are `service/views/`."""

from __future__ import annotations

import re
from typing import Annotated, Any

from fastapi import APIRouter, Body, Query, Request, Response
from fastapi.responses import StreamingResponse

from service.api.deps import SessionDep, StateDep
from service.api.idempotency import IdempotencyDep
from service.api.limits import check_json_depth, check_submission_limits
from service.api.schemas import BatchCreate, RetryRequest
from service.api.webhook_routes import check_callback_url
from service.batches.cancel import request_cancel
from service.batches.reading import batch_or_404, item_or_404, list_page
from service.batches.retry import RetryRequest as Retry
from service.batches.retry import retry
from service.batches.submission import NewBatch, submit
from service.kit.problems import Problem
from service.models import BatchStatus
from service.views.batches import batch_out
from service.views.results import item_out, ndjson_result_rows, result_page
from service.views.schemas import BatchOut, BatchPage, ItemOut, ResultPage

router = APIRouter(prefix="/batches", tags=["batches"])

NDJSON = "application/x-ndjson"
CURSOR_PATTERN = re.compile(r"[0-9]{1,9}")  # an item position; int32 on PostgreSQL


@router.post(
    "",
    status_code=202,
    response_model=BatchOut,
    summary="Submit items for a two-pass batch run",
    responses={
        400: {"description": "The body could not be read (not UTF-8)"},
        409: {"description": "A request with this Idempotency-Key is still in progress (see Retry-After)"},
        413: {"description": "Body larger than MAX_REQUEST_BYTES"},
    },
)
async def create_batch(
    payload: BatchCreate,
    session: SessionDep,
    state: StateDep,
    idempotency: IdempotencyDep,
    fallback: Annotated[bool, Query(description="Send pass-1 failures to the fallback model")] = False,
) -> Response:
    if idempotency.replay is not None:
        return idempotency.replay
    check_submission_limits(payload, state.settings)
    if payload.callback_url is not None:
        await check_callback_url(state, payload.callback_url)
    new = NewBatch(
        items=[item.model_dump() for item in payload.items],
        params=payload.params,
        model=payload.model,
        fallback_model=payload.fallback_model,
        fallback_params=payload.fallback_params,
        output_schema=payload.output_schema,
        completion_window=payload.completion_window,
        callback_url=payload.callback_url,
        metadata=payload.metadata,
        fallback=fallback,
    )
    batch = await submit(session, state.config, new)
    out = await batch_out(session, batch)
    return await idempotency.respond(session, out, status_code=202, location=f"/batches/{batch.id}")


@router.get("", response_model=BatchPage, summary="List batches, newest first")
async def list_batches(
    session: SessionDep,
    status: Annotated[BatchStatus | None, Query()] = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 20,
    after: Annotated[str | None, Query(max_length=64, description="next_cursor of the previous page")] = None,
) -> BatchPage:
    batches, has_more = await list_page(session, status=status, after=after, limit=limit)
    return BatchPage(
        data=[await batch_out(session, batch) for batch in batches],
        has_more=has_more,
        next_cursor=batches[-1].id if has_more and batches else None,
    )


@router.get("/{batch_id}", response_model=BatchOut, summary="A batch: status, counts, cost and passes")
async def get_batch(batch_id: str, session: SessionDep) -> BatchOut:
    return await batch_out(session, await batch_or_404(session, batch_id))


@router.post(
    "/{batch_id}/retry",
    status_code=202,
    response_model=BatchOut,
    summary="Retry failed items",
    responses={
        400: {"description": "The body could not be read (not UTF-8)"},
        413: {"description": "Body larger than MAX_REQUEST_BYTES"},
    },
)
async def retry_batch(
    batch_id: str,
    session: SessionDep,
    state: StateDep,
    idempotency: IdempotencyDep,
    payload: Annotated[RetryRequest | None, Body()] = None,
) -> Response:
    if idempotency.replay is not None:
        return idempotency.replay
    request = payload or RetryRequest()
    if request.params is not None:
        check_json_depth(request.params, "params")
    batch = await retry(
        session,
        state.config,
        batch_id,
        Retry(model=request.model, params=request.params, custom_ids=request.custom_ids),
    )
    return await idempotency.respond(session, await batch_out(session, batch), status_code=202)


@router.post("/{batch_id}/cancel", status_code=202, response_model=BatchOut, summary="Cancel a batch")
async def cancel_batch(batch_id: str, session: SessionDep) -> BatchOut:
    batch = await request_cancel(session, batch_id)
    await session.commit()
    return await batch_out(session, batch)


def _position_cursor(after: str | None) -> int:
    if after is None:
        return -1
    if not CURSOR_PATTERN.fullmatch(after):
        raise Problem(400, "bad-cursor", "Bad cursor", "after must be a next_cursor returned by this endpoint")
    return int(after)


@router.get(
    "/{batch_id}/results",
    response_model=ResultPage,
    summary="Merged results, one row per item (JSON pages, or NDJSON with Accept: application/x-ndjson)",
    responses={200: {"content": {NDJSON: {"schema": {"type": "string"}}}}},
)
async def get_results(
    batch_id: str,
    request: Request,
    session: SessionDep,
    state: StateDep,
    status: Annotated[str | None, Query(pattern="^(succeeded|failed|pending)$")] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    after: Annotated[str | None, Query(max_length=20)] = None,
) -> Any:
    await batch_or_404(session, batch_id)
    if NDJSON in request.headers.get("accept", ""):
        return StreamingResponse(ndjson_result_rows(state.sessions, batch_id, status), media_type=NDJSON)
    return await result_page(session, batch_id, status=status, after_position=_position_cursor(after), limit=limit)


@router.get("/{batch_id}/items/{custom_id:path}", response_model=ItemOut, summary="One item with every attempt")
async def get_item(batch_id: str, custom_id: str, session: SessionDep) -> ItemOut:
    return await item_out(session, await item_or_404(session, batch_id, custom_id))
