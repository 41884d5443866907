"""The /batches routes: thin; decisions live in pipeline/, SQL in repository.py."""

from __future__ import annotations

import re
from typing import Annotated, Any

from fastapi import APIRouter, Body, Query, Request, Response
from fastapi.responses import StreamingResponse
from sqlalchemy import update
from sqlalchemy.exc import IntegrityError
from sqlmodel import col
from ulid import ULID

from service import repository
from service.api.deps import SessionDep, StateDep
from service.api.errors import Problem, conflict, invalid, not_found
from service.api.idempotency import IdempotencyDep
from service.api.limits import check_json_depth, check_submission_limits
from service.api.presenters import attempt_out, batch_out, ndjson_result_rows, result_row
from service.api.schemas import (
    BatchCreate,
    BatchOut,
    BatchPage,
    ItemOut,
    ResultPage,
    RetryRequest,
)
from service.api.webhooks import check_callback_url
from service.db import rows_affected
from service.models import TERMINAL_BATCH_STATUSES, Batch, BatchStatus, Pass, PassKind, PassStatus, utcnow
from service.pipeline.requests import PassRequestSpec, check_line_sizes
from service.pipeline.validation import validate_items, validate_output_schema, validate_params

router = APIRouter(prefix="/batches", tags=["batches"])

NDJSON = "application/x-ndjson"
WINDOW_PATTERN = re.compile(r"^(\d+)([hd])$")
MIN_WINDOW_HOURS, MAX_WINDOW_HOURS = 24, 7 * 24
CURSOR_PATTERN = re.compile(r"[0-9]{1,9}")  # an item position; int32 on PostgreSQL


def _check_window(window: str) -> None:
    match = WINDOW_PATTERN.match(window)
    hours = int(match.group(1)) * (24 if match.group(2) == "d" else 1) if match else 0
    if not MIN_WINDOW_HOURS <= hours <= MAX_WINDOW_HOURS:
        raise invalid(f"completion_window {window!r} must be between 24h and 7d", field="completion_window")


def _check_model_priced(state: StateDep, model: str, field: str) -> None:
    if not state.prices.has(model):
        raise invalid(
            f"no batch price is configured for model {model!r}; add it to MODEL_PRICES so costs can be shown",
            field=field,
        )


def _pass_spec(
    state: StateDep,
    params: dict[str, Any],
    output_schema: dict[str, Any] | None,
    model: str,
    pass_params: dict[str, Any],
) -> PassRequestSpec:
    return PassRequestSpec(
        model=model,
        supports_json_schema=model in state.settings.json_schema_models,
        params=params,
        pass_params=pass_params,
        output_schema=output_schema,
    )


def _check_line_sizes(
    state: StateDep, payload: BatchCreate, items: list[dict[str, Any]], model: str, pass_params: dict[str, Any]
) -> None:
    spec = _pass_spec(state, payload.params, payload.output_schema, model, pass_params)
    check_line_sizes(
        spec, ((item["custom_id"], item["body"]) for item in items), state.settings.max_bytes_per_provider_batch
    )


async def _get_batch(session: SessionDep, batch_id: str) -> Batch:
    batch = await session.get(Batch, batch_id)
    if batch is None:
        raise not_found(f"batch {batch_id!r}")
    return batch


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
    items = [item.model_dump() for item in payload.items]
    validate_items(items)
    validate_params(payload.params, "params")
    validate_params(payload.fallback_params, "fallback_params")
    validate_output_schema(payload.output_schema)
    _check_window(payload.completion_window)
    model = payload.model or state.settings.primary_model
    fallback_model = payload.fallback_model or state.settings.fallback_model
    _check_model_priced(state, model, "model")
    if fallback:
        _check_model_priced(state, fallback_model, "fallback_model")
    _check_line_sizes(state, payload, items, model, {})
    if fallback:
        _check_line_sizes(state, payload, items, fallback_model, payload.fallback_params)
    if payload.callback_url is not None:
        await check_callback_url(state, payload.callback_url)
    batch = Batch(
        id=f"lb_{str(ULID()).lower()}",
        model=model,
        fallback_model=fallback_model,
        fallback_enabled=fallback,
        params=payload.params,
        fallback_params=payload.fallback_params,
        output_schema=payload.output_schema,
        completion_window=payload.completion_window,
        callback_url=payload.callback_url,
        user_metadata=payload.metadata,
        item_count=len(items),
    )
    await repository.insert_batch(session, batch, [(item["custom_id"], item["body"]) for item in items])
    session.add(Pass(batch_id=batch.id, number=1, kind=PassKind.PRIMARY, model=model, params={}))
    await session.flush()
    out = await batch_out(session, batch)
    return await idempotency.respond(session, out, status_code=202, location=f"/batches/{batch.id}")


@router.get("", response_model=BatchPage, summary="List batches, newest first")
async def list_batches(
    session: SessionDep,
    status: Annotated[BatchStatus | None, Query()] = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 20,
    after: Annotated[str | None, Query(max_length=64, description="next_cursor of the previous page")] = None,
) -> BatchPage:
    batches, has_more = await repository.list_batches(session, status=status, after=after, limit=limit)
    return BatchPage(
        data=[await batch_out(session, batch) for batch in batches],
        has_more=has_more,
        next_cursor=batches[-1].id if has_more and batches else None,
    )


@router.get("/{batch_id}", response_model=BatchOut, summary="A batch: status, counts, cost and passes")
async def get_batch(batch_id: str, session: SessionDep) -> BatchOut:
    return await batch_out(session, await _get_batch(session, batch_id))


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
    batch = await _get_batch(session, batch_id)
    if batch.status not in TERMINAL_BATCH_STATUSES:
        raise conflict(f"batch {batch_id} is {batch.status}; retry once its passes have finished")
    failed = await repository.failed_items(session, batch_id)
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
    _check_model_priced(state, model, "model")
    params = request.params if request.params is not None else batch.fallback_params
    check_json_depth(params, "params")
    validate_params(params, "params")
    selected = [(cid, body) for cid, body in failed.items() if request.custom_ids is None or cid in request.custom_ids]
    check_line_sizes(
        _pass_spec(state, batch.params, batch.output_schema, model, params),
        selected,
        state.settings.max_bytes_per_provider_batch,
    )
    passes = await repository.passes_of(session, batch_id)
    reopened = await session.execute(
        update(Batch)
        .where(col(Batch.id) == batch_id, col(Batch.status) == batch.status)
        .values(status=BatchStatus.RUNNING, cancel_requested=False, finished_at=None, updated_at=utcnow())
    )
    if not rows_affected(reopened):
        raise conflict(f"batch {batch_id} changed while retrying; try again")
    session.add(
        Pass(
            batch_id=batch_id,
            number=max(p.number for p in passes) + 1,
            kind=PassKind.RETRY,
            model=model,
            params=params,
            selected_custom_ids=sorted(set(request.custom_ids)) if request.custom_ids else None,
            status=PassStatus.PLANNED,
        )
    )
    try:
        await session.flush()
    except IntegrityError as error:
        raise conflict(f"another retry of batch {batch_id} started at the same time") from error
    await session.refresh(batch)
    return await idempotency.respond(session, await batch_out(session, batch), status_code=202)


@router.post("/{batch_id}/cancel", status_code=202, response_model=BatchOut, summary="Cancel a batch")
async def cancel_batch(batch_id: str, session: SessionDep) -> BatchOut:
    batch = await _get_batch(session, batch_id)
    if batch.status in TERMINAL_BATCH_STATUSES:
        raise conflict(f"batch {batch_id} is already {batch.status}")
    await session.execute(
        update(Batch).where(col(Batch.id) == batch_id).values(cancel_requested=True, updated_at=utcnow())
    )
    await session.commit()
    await session.refresh(batch)
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
    await _get_batch(session, batch_id)
    if NDJSON in request.headers.get("accept", ""):
        return StreamingResponse(ndjson_result_rows(state.sessions, batch_id, status), media_type=NDJSON)
    records = await repository.result_records(
        session, batch_id, status=status, after_position=_position_cursor(after), limit=limit + 1
    )
    has_more = len(records) > limit
    records = records[:limit]
    return ResultPage(
        data=[result_row(record) for record in records],
        has_more=has_more,
        next_cursor=str(records[-1].position) if has_more else None,
    )


@router.get("/{batch_id}/items/{custom_id:path}", response_model=ItemOut, summary="One item with every attempt")
async def get_item(batch_id: str, custom_id: str, session: SessionDep) -> ItemOut:
    await _get_batch(session, batch_id)
    item = await repository.find_item(session, batch_id, custom_id)
    if item is None or item.id is None:
        raise not_found(f"item {custom_id!r} in batch {batch_id!r}")
    records = await repository.result_records(session, batch_id, status=None, after_position=item.position - 1, limit=1)
    return ItemOut(
        custom_id=item.custom_id,
        status=item.status,
        body=item.body,
        result=result_row(records[0]),
        attempts=[attempt_out(*entry) for entry in await repository.attempts_of(session, item.id)],
    )
