"""The /batches routes: HTTP only. The lifecycle is `service/batches/`, the answers are `service/views/`."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from decimal import Decimal
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request, Response
from fastapi.responses import StreamingResponse
from pydantic import ValidationError

from service.api.auth import PrincipalDep
from service.api.deps import SessionDep, StateDep
from service.api.errors import validation_problem
from service.api.idempotency import IdempotencyDep
from service.api.limits import MAX_QUERY_INT, check_header_limits, check_json_depth
from service.api.request_bodies import BatchCreate, BatchHeader, RetryRequest
from service.api.submission_body import (
    NDJSON,
    BodyReader,
    Limits,
    read_json_object,
    read_submission,
    submission_format,
)
from service.api.webhook_routes import check_callback_url
from service.batches.budgets import change_budget
from service.batches.cancel import request_cancel
from service.batches.estimating import estimate
from service.batches.purging import check_not_deleted, request_deletion
from service.batches.reading import batch_or_404, item_or_404, list_page
from service.batches.retry import RetryRequest as Retry
from service.batches.retry import retry
from service.batches.staging import StagedItems
from service.batches.submission import NewBatch, submit
from service.kit.problems import Problem, invalid, unavailable
from service.models import BatchStatus
from service.pipeline.validation import ItemChecker
from service.views.batches import batch_out
from service.views.estimates import estimate_out
from service.views.response_bodies import BatchOut, BatchPage, Estimate, ItemOut, ResultPage
from service.views.results import ResultFilter, encode, item_out, ndjson_pages, result_rows

router = APIRouter(prefix="/batches", tags=["batches"])

CURSOR_PATTERN = re.compile(r"[0-9]{1,9}")  # an item position; int32 on PostgreSQL
BATCH_CURSOR_PATTERN = re.compile(r"lb_[0-9a-z]{26}")
FallbackQuery = Annotated[bool, Query(description="Run the default cascade (failures to stronger models)")]
NDJSON_PAGE = 5000  # rows read per query of an export (one connection per page, released between)
EXPORT_RETRY_AFTER_SECONDS = 2

SUBMISSION_BODY: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "content": {
            "application/json": {"schema": {"$ref": "#/components/schemas/BatchCreate"}},
            NDJSON: {
                "schema": {
                    "type": "string",
                    "description": "Line 1: the BatchCreate fields except items (a JSON object). Then one ItemIn "
                    "per line. Streamed: memory does not grow with the body.",
                }
            },
        },
    }
}

SUBMISSION_RESPONSES: dict[int | str, dict[str, Any]] = {
    400: {"description": "The body could not be read (not UTF-8)"},
    408: {"description": "The body stopped arriving (REQUEST_BODY_TIMEOUT_SECONDS)"},
    413: {"description": "Body larger than MAX_REQUEST_BYTES"},
    415: {"description": "Neither application/json nor application/x-ndjson"},
}


def _limits(state: StateDep) -> Limits:
    settings = state.settings
    return Limits(
        max_items=settings.max_items_per_batch,
        max_item_bytes=settings.max_bytes_per_provider_batch,
        checker=ItemChecker(
            max_custom_id_length=settings.max_custom_id_length,
            max_metadata_keys=settings.max_item_metadata_keys,
            max_metadata_bytes=settings.max_item_metadata_bytes,
        ),
    )


def _header(raw: dict[str, Any]) -> BatchHeader:
    try:
        return BatchHeader.model_validate(raw)
    except ValidationError as error:
        raise validation_problem(error.errors()) from None


@router.post(
    "",
    status_code=202,
    response_model=BatchOut,
    summary="Submit items for a batch run through a cascade of models (JSON, or streamed NDJSON)",
    openapi_extra=SUBMISSION_BODY,
    responses={
        **SUBMISSION_RESPONSES,
        409: {"description": "A request with this Idempotency-Key is still in progress (see Retry-After)"},
    },
)
async def create_batch(
    request: Request,
    session: SessionDep,
    state: StateDep,
    principal: PrincipalDep,
    idempotency: IdempotencyDep,
    fallback: FallbackQuery = False,
) -> Response:
    async with _submission(request, state, fallback) as (new, staged, body_hash):
        replay = await idempotency.begin(state, body_hash)
        if replay is not None:
            return replay
        if new.callback_url is not None:
            await check_callback_url(state, new.callback_url)
        batch = await submit(session, state.config, principal.tenant, new, staged)
    out = await batch_out(session, batch)
    response = await idempotency.respond(session, out, status_code=202, location=f"/batches/{batch.id}")
    state.wake_workers()
    return response


@router.post(
    "/estimate",
    response_model=Estimate,
    summary="What a submission would cost, per tier and in total, without sending or storing anything",
    description="Takes exactly the body (JSON or NDJSON) and query of POST /batches. Input tokens are counted "
    "(the model's own vocabulary where one is available offline); output tokens and each tier's share of "
    "items moving on come from this tenant's past attempts of the model (same output schema first), or from "
    "the catalogue's priors without history: each tier says which, and how many attempts it rests on.",
    openapi_extra=SUBMISSION_BODY,
    responses=SUBMISSION_RESPONSES,
)
async def estimate_batch(
    request: Request,
    session: SessionDep,
    state: StateDep,
    principal: PrincipalDep,
    fallback: FallbackQuery = False,
) -> Estimate:
    async with _submission(request, state, fallback) as (new, staged, _body_hash):
        result = await estimate(session, state.config, principal.tenant, new, staged)
    return estimate_out(result.forecast, result.counted_with, result.budget_pico)


@asynccontextmanager
async def _submission(
    request: Request, state: StateDep, fallback: bool
) -> AsyncIterator[tuple[NewBatch, StagedItems, str]]:
    """The submission read and checked as it streams in: what it asks for, its staged items (discarded on
    exit) and the hash of its body. On any refusal the rest of the body is drained, so the client reads the
    answer instead of a reset connection."""
    kind = submission_format(request)
    reader = BodyReader(request, state.settings.request_body_timeout_seconds)
    with StagedItems(state.settings.spool_dir) as staged:
        try:
            raw = await read_submission(reader, kind, _limits(state), staged)
            header = _header(raw.header)
            check_header_limits(header, state.settings)
        except Exception:
            await reader.drain()
            raise
        yield _new_batch(header, fallback), staged, raw.body_hash


def _new_batch(header: BatchHeader, fallback: bool) -> NewBatch:
    return NewBatch(
        params=header.params,
        cascade=[tier.model_dump() for tier in header.cascade] if header.cascade is not None else None,
        model=header.model,
        fallback_model=header.fallback_model,
        fallback_params=header.fallback_params,
        strict=header.strict,
        output_schema=header.output_schema,
        completion_window=header.completion_window,
        callback_url=header.callback_url,
        metadata=header.metadata,
        budget_usd=header.budget_usd,
        reuse=header.reuse,
        fallback=fallback,
    )


@router.get("", response_model=BatchPage, summary="List batches, newest first")
async def list_batches(
    session: SessionDep,
    principal: PrincipalDep,
    status: Annotated[BatchStatus | None, Query()] = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 20,
    after: Annotated[str | None, Query(max_length=64, description="next_cursor of the previous page")] = None,
) -> BatchPage:
    if after is not None and not BATCH_CURSOR_PATTERN.fullmatch(after):
        raise bad_cursor()
    batches, has_more = await list_page(session, tenant=principal.scope, status=status, after=after, limit=limit)
    return BatchPage(
        data=[await batch_out(session, batch) for batch in batches],
        has_more=has_more,
        next_cursor=batches[-1].id if has_more and batches else None,
    )


@router.get("/{batch_id}", response_model=BatchOut, summary="A batch: status, counts, cost, tiers and passes")
async def get_batch(batch_id: str, session: SessionDep, principal: PrincipalDep) -> BatchOut:
    return await batch_out(session, await batch_or_404(session, batch_id, principal.scope))


BUDGET_CHANGE_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["budget_usd"],
    "additionalProperties": False,
    "properties": {
        # read exactly as POST /batches reads it (BatchHeader's budget_usd), so both always agree
        "budget_usd": BatchHeader.model_json_schema()["properties"]["budget_usd"]
        | {
            "description": "The batch's new budget in USD (null: none). While the batch runs, only upwards; a "
            "finished batch takes any value and sends its budget_exceeded items again within it."
        }
    },
}


@router.patch(
    "/{batch_id}",
    response_model=BatchOut,
    summary="Raise a running batch's budget, or set a finished batch's (which sends its budget_exceeded items)",
    openapi_extra={
        "requestBody": {"required": True, "content": {"application/json": {"schema": BUDGET_CHANGE_SCHEMA}}}
    },
    responses={
        400: {"description": "The body could not be read (not UTF-8)"},
        409: {"description": "The batch runs and the budget would go down (or be set where there was none)"},
        410: {"description": "The batch was deleted: nothing of it runs again"},
        413: {"description": "Body larger than MAX_REQUEST_BYTES"},
    },
)
async def patch_batch(
    batch_id: str, request: Request, session: SessionDep, state: StateDep, principal: PrincipalDep
) -> BatchOut:
    await batch_or_404(session, batch_id, principal.scope)
    reader = BodyReader(request, state.settings.request_body_timeout_seconds)
    try:
        budget_usd = _budget_change(await read_json_object(reader))
    except Exception:
        await reader.drain()
        raise
    batch = await change_budget(session, batch_id, budget_usd, principal.scope)
    await session.commit()
    state.wake_workers()
    return await batch_out(session, batch)


def _budget_change(raw: dict[str, Any] | None) -> Decimal | None:
    """The new budget_usd, parsed as POST /batches parses it."""
    if raw is None or "budget_usd" not in raw:
        raise invalid("the body must name budget_usd (a number, or null for no budget)", field="budget_usd")
    unknown = sorted(set(raw) - {"budget_usd"})
    if unknown:
        raise invalid(f"only budget_usd can be changed, not {unknown[0]}", field=unknown[0])
    return _header({"budget_usd": raw["budget_usd"]}).budget_usd


@router.post(
    "/{batch_id}/retry",
    status_code=202,
    response_model=BatchOut,
    summary="Retry failed items as a new pass",
    openapi_extra={
        "requestBody": {
            "required": False,
            "content": {"application/json": {"schema": {"$ref": "#/components/schemas/RetryRequest"}}},
        }
    },
    responses={
        400: {"description": "The body could not be read (not UTF-8)"},
        408: {"description": "The body stopped arriving (REQUEST_BODY_TIMEOUT_SECONDS)"},
        413: {"description": "Body larger than MAX_REQUEST_BYTES"},
    },
)
async def retry_batch(
    batch_id: str,
    request: Request,
    session: SessionDep,
    state: StateDep,
    principal: PrincipalDep,
    idempotency: IdempotencyDep,
) -> Response:
    check_not_deleted(await batch_or_404(session, batch_id, principal.scope))
    reader = BodyReader(request, state.settings.request_body_timeout_seconds)
    try:
        raw = await read_json_object(reader)
        retry_request = RetryRequest() if raw is None else _retry_request(raw)
        if retry_request.params is not None:
            check_json_depth(retry_request.params, "params")
    except Exception:
        await reader.drain()
        raise
    replay = await idempotency.begin(state, reader.hexdigest())
    if replay is not None:
        return replay
    batch = await retry(
        session,
        state.config,
        batch_id,
        Retry(model=retry_request.model, params=retry_request.params, custom_ids=retry_request.custom_ids),
        principal.scope,
    )
    response = await idempotency.respond(session, await batch_out(session, batch), status_code=202)
    state.wake_workers()
    return response


def _retry_request(raw: dict[str, Any]) -> RetryRequest:
    try:
        return RetryRequest.model_validate(raw)
    except ValidationError as error:
        raise validation_problem(error.errors()) from None


@router.post("/{batch_id}/cancel", status_code=202, response_model=BatchOut, summary="Cancel a batch")
async def cancel_batch(batch_id: str, session: SessionDep, state: StateDep, principal: PrincipalDep) -> BatchOut:
    batch = await request_cancel(session, batch_id, principal.scope)
    await session.commit()
    state.wake_workers()
    return await batch_out(session, batch)


def bad_cursor() -> Problem:
    return Problem(
        400, "bad-cursor", "Bad cursor", "after must be a next_cursor returned by this endpoint", field="after"
    )


def _naive_utc(moment: datetime | None, name: str) -> datetime | None:
    """As stored, naive UTC: an offset given with the time is honoured, a time without one is UTC. A time whose
    UTC falls outside years 1 to 9999 (9999-12-31T23:59:59-14:00) is 422, not an overflow."""
    if moment is None or moment.tzinfo is None:
        return moment
    try:
        return moment.astimezone(UTC).replace(tzinfo=None)
    except OverflowError:
        raise invalid(f"{name} is outside the years 1 to 9999 once converted to UTC", field=name) from None


def _position_cursor(after: str | None) -> int:
    if after is None:
        return -1
    if not CURSOR_PATTERN.fullmatch(after):
        raise bad_cursor()
    return int(after)


@router.get(
    "/{batch_id}/results",
    response_model=ResultPage,
    summary="Merged results, one row per item (JSON pages, or NDJSON with Accept: application/x-ndjson)",
    responses={
        200: {"content": {NDJSON: {"schema": {"type": "string"}}}},
        410: {"description": "The batch was deleted: its content is purged"},
        503: {"description": "Too many exports streaming at once (EXPORT_MAX_CONCURRENT); see Retry-After"},
    },
)
async def get_results(
    batch_id: str,
    request: Request,
    session: SessionDep,
    state: StateDep,
    principal: PrincipalDep,
    status: Annotated[str | None, Query(pattern="^(succeeded|failed|pending|retrying)$")] = None,
    pass_number: Annotated[
        int | None, Query(alias="pass", ge=1, le=MAX_QUERY_INT, description="Rows decided in this pass")
    ] = None,
    tier: Annotated[int | None, Query(ge=0, le=MAX_QUERY_INT, description="Rows decided on this cascade tier")] = None,
    since_pass: Annotated[
        int | None,
        Query(ge=0, le=MAX_QUERY_INT, description="Only rows that changed in a pass after this one (a retry's import)"),
    ] = None,
    updated_after: Annotated[datetime | None, Query(description="Only rows changed after this time (UTC)")] = None,
    limit: Annotated[int | None, Query(ge=1, le=1000, description="Rows per page (NDJSON: rows in all)")] = None,
    after: Annotated[str | None, Query(max_length=20, description="next_cursor of the previous page")] = None,
) -> Response:
    check_not_deleted(await batch_or_404(session, batch_id, principal.scope))
    where = ResultFilter(
        status=status,
        pass_number=pass_number,
        tier=tier,
        since_pass=since_pass,
        updated_after=_naive_utc(updated_after, "updated_after"),
    )
    position = _position_cursor(after)
    if NDJSON in request.headers.get("accept", ""):
        return await ndjson_export(session, state, batch_id, position, where, limit)
    page_size = limit or 100
    rows, cursor = await result_rows(session, batch_id, after_position=position, limit=page_size, where=where, raw=True)
    page = {"data": rows, "has_more": cursor is not None, "next_cursor": str(cursor) if cursor is not None else None}
    return Response(encode(page), media_type="application/json")


async def ndjson_export(
    session: SessionDep, state: StateDep, batch_id: str, position: int, where: ResultFilter, limit: int | None
) -> Response:
    """The whole set (or `limit` rows), streamed. Admitted under EXPORT_MAX_CONCURRENT; the first page is read
    before the answer starts, so a database that cannot serve it is a 503, not a truncated 200."""
    if not state.exports.take():
        raise unavailable(
            f"{state.exports.limit} result exports are streaming already (EXPORT_MAX_CONCURRENT); try again shortly",
            retry_after_seconds=EXPORT_RETRY_AFTER_SECONDS,
        )
    try:
        size = NDJSON_PAGE if limit is None else min(NDJSON_PAGE, limit)
        first = await result_rows(session, batch_id, after_position=position, limit=size, where=where, raw=True)
        await session.close()  # the rest is read page by page, each with a connection of its own
    except BaseException:
        state.exports.give_back()
        raise

    async def stream() -> Any:
        try:
            async for block in ndjson_pages(
                state.sessions, batch_id, first=first, where=where, limit=limit, page_size=NDJSON_PAGE
            ):
                yield block
        finally:
            state.exports.give_back()

    return StreamingResponse(stream(), media_type=NDJSON)


@router.get(
    "/{batch_id}/items/{custom_id:path}",
    response_model=ItemOut,
    summary="One item with every attempt",
    responses={410: {"description": "The batch was deleted: its content is purged"}},
)
async def get_item(batch_id: str, custom_id: str, session: SessionDep, principal: PrincipalDep) -> ItemOut:
    check_not_deleted(await batch_or_404(session, batch_id, principal.scope))
    return await item_out(session, await item_or_404(session, batch_id, custom_id, principal.scope))


@router.delete(
    "/{batch_id}",
    response_model=BatchOut,
    summary="Delete a batch: cancel it if running, then purge its bodies, outputs, error texts and files",
    description="Idempotent. 202 while the purge is pending (a running batch is cancelled first; a worker purges "
    "it once no chunk of it is at the provider), 200 once it is done (`purged_at`). From the first DELETE its "
    "results, items and retries answer 410. The batch stays as a tombstone: status, counts, tokens, cost, tiers, "
    "passes, custom_ids and timestamps.",
    responses={202: {"model": BatchOut, "description": "Deleted; the purge is pending"}},
)
async def delete_batch(
    batch_id: str, response: Response, session: SessionDep, state: StateDep, principal: PrincipalDep
) -> BatchOut:
    batch = await request_deletion(session, batch_id, principal.scope)
    await session.commit()
    if batch.purged_at is None:
        state.wake_workers()
        response.status_code = 202
    return await batch_out(session, batch)


__all__ = ["BatchCreate", "router"]
