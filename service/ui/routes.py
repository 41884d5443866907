"""The status page: server-rendered HTML over the same summaries the API returns, behind the API's tokens."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any
from urllib.parse import quote

from fastapi import APIRouter, Form, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.templating import Jinja2Templates

from service.api.batch_routes import ndjson_export
from service.api.deps import SessionDep, StateDep
from service.api.health_routes import startup_warnings
from service.api.limits import MAX_QUERY_INT
from service.api.principals import Principal
from service.batches.purging import check_not_deleted
from service.batches.reading import batch_or_404, find_batch, list_page
from service.kit.problems import Problem
from service.models import Batch
from service.ui import view
from service.ui.auth import COOKIE_MAX_AGE_SECONDS, COOKIE_PATH, TOKEN_COOKIE, page_principal, request_token, safe_next
from service.views.batches import batch_out
from service.views.results import ResultFilter, encode, result_rows

TEMPLATES = Jinja2Templates(directory=Path(__file__).parent / "templates")
TEMPLATES.env.filters.update(usd=view.usd, number=view.number, when=view.when, when_short=view.when_short)
TEMPLATES.env.globals.update(
    pass_segments=view.pass_segments,
    batch_segments=view.batch_segments,
    sent_because=view.sent_because,
    cascade_text=view.cascade_text,
    chunk_progress=view.chunk_progress,
    is_running=view.is_running,
)
NDJSON = "application/x-ndjson"
DETAIL_REFRESH_SECONDS = 2
LIST_REFRESH_SECONDS = 5
LIST_PAGE_SIZE = 50
RESULTS_PAGE_MAX = 1000

router = APIRouter(prefix="/ui", include_in_schema=False)


def _viewer(request: Request, state: StateDep) -> Principal | None:
    return page_principal(state.tokens, request_token(request))


def _to_login(request: Request) -> RedirectResponse:
    target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    return RedirectResponse(f"{COOKIE_PATH}/login?next={quote(target, safe='')}", status_code=303)


def _unauthorized() -> Problem:
    return Problem(401, "unauthorized", "Unauthorized", "send a token of API_TOKENS, or log in at /ui/login")


def _page(request: Request, state: StateDep, template: str, status_code: int = 200, **context: Any) -> HTMLResponse:
    context.update(auth_on=state.settings.auth_enabled, warnings=startup_warnings(state))
    return TEMPLATES.TemplateResponse(request, template, context, status_code=status_code)


async def _summary(session: SessionDep, batch: Batch) -> dict[str, Any]:
    return (await batch_out(session, batch)).model_dump(mode="json", by_alias=True)


@router.get("", response_class=HTMLResponse)
async def batch_list(
    request: Request,
    session: SessionDep,
    state: StateDep,
    status: Annotated[str | None, Query(pattern="^(queued|running|completed|failed|cancelled)$")] = None,
    after: Annotated[str | None, Query(max_length=64)] = None,
) -> Response:
    viewer = _viewer(request, state)
    if viewer is None:
        return _to_login(request)
    batches, has_more = await list_page(session, tenant=viewer.scope, status=status, after=after, limit=LIST_PAGE_SIZE)
    summaries = [await _summary(session, batch) for batch in batches]
    return _page(
        request,
        state,
        "batches.html",
        summaries=summaries,
        status=status,
        next_cursor=batches[-1].id if has_more and batches else None,
        refresh_seconds=LIST_REFRESH_SECONDS if any(view.is_running(s) for s in summaries) else None,
    )


@router.get("/batches/{batch_id}", response_class=HTMLResponse)
async def batch_detail(batch_id: str, request: Request, session: SessionDep, state: StateDep) -> Response:
    viewer = _viewer(request, state)
    if viewer is None:
        return _to_login(request)
    batch = await find_batch(session, batch_id, viewer.scope)
    if batch is None:
        return _page(request, state, "not_found.html", status_code=404, batch_id=batch_id)
    summary = await _summary(session, batch)
    return _page(
        request,
        state,
        "batch.html",
        summary=summary,
        refresh_seconds=DETAIL_REFRESH_SECONDS if view.is_running(summary) else None,
    )


@router.get("/batches/{batch_id}/results.json")
async def results_json(
    batch_id: str,
    request: Request,
    session: SessionDep,
    state: StateDep,
    status: Annotated[str | None, Query(pattern="^(succeeded|failed|pending|retrying)$")] = None,
    limit: Annotated[int, Query(ge=1, le=RESULTS_PAGE_MAX)] = RESULTS_PAGE_MAX,
    after: Annotated[int, Query(ge=-1, le=MAX_QUERY_INT)] = -1,
) -> Response:
    """One page, as GET /batches/{id}/results answers it (`after` is the `next_cursor` of the previous page)."""
    viewer = _viewer(request, state)
    if viewer is None:
        raise _unauthorized()
    check_not_deleted(await batch_or_404(session, batch_id, viewer.scope))
    rows, cursor = await result_rows(
        session, batch_id, after_position=after, limit=limit, where=ResultFilter(status=status), raw=True
    )
    page = {"data": rows, "has_more": cursor is not None, "next_cursor": str(cursor) if cursor is not None else None}
    return Response(encode(page), media_type="application/json")


@router.get("/batches/{batch_id}/results.ndjson")
async def results_ndjson(
    batch_id: str,
    request: Request,
    session: SessionDep,
    state: StateDep,
    status: Annotated[str | None, Query(pattern="^(succeeded|failed|pending|retrying)$")] = None,
) -> Response:
    viewer = _viewer(request, state)
    if viewer is None:
        raise _unauthorized()
    check_not_deleted(await batch_or_404(session, batch_id, viewer.scope))
    response = await ndjson_export(session, state, batch_id, -1, ResultFilter(status=status), None)
    response.headers["Content-Disposition"] = f'inline; filename="{batch_id}-results.ndjson"'
    return response


@router.get("/login", response_class=HTMLResponse)
async def login_form(request: Request, state: StateDep, next: str | None = None) -> Response:
    return _page(request, state, "login.html", next=safe_next(next), error=None)


@router.post("/login", response_class=HTMLResponse)
async def login(
    request: Request,
    state: StateDep,
    token: Annotated[str, Form(max_length=4096)],
    next: Annotated[str | None, Form()] = None,
) -> Response:
    target = safe_next(next)
    response = RedirectResponse(target, status_code=303)
    if not state.settings.auth_enabled:
        return response
    if page_principal(state.tokens, token.strip()) is None:
        return _page(request, state, "login.html", status_code=401, next=target, error="Unknown token.")
    response.set_cookie(
        TOKEN_COOKIE,
        token.strip(),
        max_age=COOKIE_MAX_AGE_SECONDS,
        path=COOKIE_PATH,
        httponly=True,
        samesite="strict",
        secure=request.url.scheme == "https",
    )
    return response


@router.post("/logout")
async def logout() -> RedirectResponse:
    response = RedirectResponse(f"{COOKIE_PATH}/login", status_code=303)
    response.delete_cookie(TOKEN_COOKIE, path=COOKIE_PATH)
    return response
