"""Expected failures that become RFC 9457 problem+json answers, each with a stable `type` slug.

Raised by the lifecycle layer and the routes alike; `service/api/errors.py` is the one place that turns
them into responses.
"""

from __future__ import annotations

from typing import Any


class Problem(Exception):
    """An expected failure: an HTTP status, a stable slug, a title and a detail that says what is wrong."""

    def __init__(self, status: int, slug: str, title: str, detail: str, **extra: Any) -> None:
        super().__init__(detail)
        self.status = status
        self.slug = slug
        self.title = title
        self.detail = detail
        self.extra = extra
        self.headers: dict[str, str] = {}  # response headers, e.g. WWW-Authenticate or Retry-After


def not_found(what: str) -> Problem:
    return Problem(404, "not-found", "Not found", f"{what} does not exist")


def conflict(detail: str, **extra: Any) -> Problem:
    return Problem(409, "conflict", "Conflict", detail, **extra)


def gone(detail: str) -> Problem:
    return Problem(410, "gone", "Gone", detail)


def invalid(detail: str, **extra: Any) -> Problem:
    return Problem(422, "invalid-request", "Invalid request", detail, **extra)


def limit_exceeded(detail: str, *, field: str, setting: str, maximum: int) -> Problem:
    return Problem(422, "limit-exceeded", "Limit exceeded", detail, field=field, limit=setting, maximum=maximum)


def unavailable(detail: str, *, retry_after_seconds: int) -> Problem:
    """503 with Retry-After: the service is busy (a bound was reached), not broken."""
    problem = Problem(503, "unavailable", "Service busy", detail, retry_after=retry_after_seconds)
    problem.headers["Retry-After"] = str(retry_after_seconds)
    return problem
