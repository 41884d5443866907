"""RFC 9457 problem+json for every error the API returns, each with a stable `type`."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from service.kit.problems import Problem
from service.pipeline.errors import SubmissionError

PROBLEM_JSON = "application/problem+json"
PROBLEM_BASE = "urn:llm-batch:problem:"


def problem_response(status: int, slug: str, title: str, detail: str, **extra: Any) -> JSONResponse:
    body = {"type": PROBLEM_BASE + slug, "title": title, "status": status, "detail": detail, **extra}
    return JSONResponse(body, status_code=status, media_type=PROBLEM_JSON)


def _location(loc: tuple[Any, ...] | list[Any]) -> str:
    parts = list(loc)
    if parts and parts[0] == "body":  # FastAPI's prefix for the request body, not a field of ours
        parts = parts[1:]
    return ".".join(str(part) for part in parts)


async def _problem(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, Problem)
    response = problem_response(exc.status, exc.slug, exc.title, exc.detail, **exc.extra)
    response.headers.update(exc.headers)
    return response


async def _submission_error(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, SubmissionError)
    extra = {"field": exc.field} if getattr(exc, "field", None) else {}
    return problem_response(422, "invalid-request", "Invalid request", str(exc), **extra)


async def _validation_error(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    errors = [
        {"field": _location(error.get("loc", ())), "message": error.get("msg", "invalid")} for error in exc.errors()
    ]
    first = errors[0] if errors else {"field": "", "message": "invalid request"}
    detail = f"{first['field']}: {first['message']}" if first["field"] else first["message"]
    return problem_response(422, "invalid-request", "Invalid request", detail, errors=errors[:20])


async def _http_error(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    slug = {404: "not-found", 405: "method-not-allowed", 401: "unauthorized"}.get(exc.status_code, "http-error")
    response = problem_response(exc.status_code, slug, str(exc.detail), str(exc.detail))
    if exc.headers:
        response.headers.update(exc.headers)
    return response


def install_problem_handlers(app: FastAPI) -> None:
    app.add_exception_handler(Problem, _problem)
    app.add_exception_handler(SubmissionError, _submission_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
