"""RFC 9457 problem+json for every error the API returns, each with a stable `type`."""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from service.kit.problems import Problem
from service.pipeline.errors import LimitExceeded, SubmissionError
from service.store import POOL_TIMEOUT_ERRORS

logger = logging.getLogger(__name__)
BUSY_RETRY_AFTER_SECONDS = 1

PROBLEM_JSON = "application/problem+json"
PROBLEM_BASE = "urn:llm-batch:problem:"


def problem_response(status: int, slug: str, title: str, detail: str, **extra: Any) -> JSONResponse:
    body = {"type": PROBLEM_BASE + slug, "title": title, "status": status, "detail": detail, **extra}
    return JSONResponse(body, status_code=status, media_type=PROBLEM_JSON)


def field_path(loc: tuple[Any, ...] | list[Any]) -> str:
    """`items[3].body.messages` from pydantic's ("body", "items", 3, "body", "messages")."""
    parts = list(loc)
    if parts and parts[0] == "body":  # FastAPI's prefix for the request body, not a field of ours
        parts = parts[1:]
    text = ""
    for part in parts:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text


def validation_problem(errors: list[Any]) -> Problem:
    """422 for pydantic's errors, naming the first field at fault (and listing up to 20)."""
    listed = [{"field": field_path(error.get("loc", ())), "message": error.get("msg", "invalid")} for error in errors]
    first = listed[0] if listed else {"field": "", "message": "invalid request"}
    detail = f"{first['field']}: {first['message']}" if first["field"] else first["message"]
    extra: dict[str, Any] = {"errors": listed[:20]}
    if first["field"]:
        extra["field"] = first["field"]
    return Problem(422, "invalid-request", "Invalid request", detail, **extra)


def _with_errors_list(detail: str, extra: dict[str, Any]) -> dict[str, Any]:
    """Every problem naming a field also lists it under `errors`, as validation problems do."""
    if "field" in extra and "errors" not in extra:
        return {**extra, "errors": [{"field": extra["field"], "message": detail}]}
    return extra


async def _problem(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, Problem)
    response = problem_response(exc.status, exc.slug, exc.title, exc.detail, **_with_errors_list(exc.detail, exc.extra))
    response.headers.update(exc.headers)
    return response


async def _submission_error(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, SubmissionError)
    extra = _with_errors_list(exc.message, {"field": exc.field} if exc.field else {})
    if isinstance(exc, LimitExceeded):
        extra.update(limit=exc.setting, maximum=exc.maximum)
        return problem_response(422, "limit-exceeded", "Limit exceeded", exc.message, **extra)
    return problem_response(422, "invalid-request", "Invalid request", exc.message, **extra)


async def _validation_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    return await _problem(request, validation_problem(list(exc.errors())))


async def _database_busy(_request: Request, _exc: Exception) -> JSONResponse:
    """Every connection of the API's pool stayed taken for the pool's timeout: busy, not broken."""
    response = problem_response(
        503,
        "unavailable",
        "Service busy",
        "the database is busy serving other requests; try again in a moment",
        retry_after=BUSY_RETRY_AFTER_SECONDS,
    )
    response.headers["Retry-After"] = str(BUSY_RETRY_AFTER_SECONDS)
    return response


async def _unexpected(_request: Request, exc: Exception) -> JSONResponse:
    logger.error("unexpected error answering a request", exc_info=exc)
    return problem_response(500, "internal-error", "Internal error", "the service failed to answer; it is logged")


async def _http_error(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    slug = {404: "not-found", 405: "method-not-allowed", 401: "unauthorized"}.get(exc.status_code, "http-error")
    response = problem_response(exc.status_code, slug, str(exc.detail), str(exc.detail))
    if exc.headers:
        response.headers.update(exc.headers)
    return response


def install_problem_handlers(app: FastAPI) -> None:
    for error in POOL_TIMEOUT_ERRORS:
        app.add_exception_handler(error, _database_busy)
    app.add_exception_handler(Exception, _unexpected)
    app.add_exception_handler(Problem, _problem)
    app.add_exception_handler(SubmissionError, _submission_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
