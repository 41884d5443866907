"""Anthropic's error objects: ``{"type": "error", "error": {"type", "message"}, "request_id"}``."""

from __future__ import annotations

from typing import Any

JsonDict = dict[str, Any]

STATUS_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    413: "request_too_large",
    429: "rate_limit_error",
    500: "api_error",
    504: "timeout_error",
    529: "overloaded_error",
}


def error_body(type_: str, message: str, request_id: str | None) -> JsonDict:
    return {"type": "error", "error": {"type": type_, "message": message}, "request_id": request_id}


class ApiError(Exception):
    """Raised inside the emulator; the app turns it into an HTTP response with the request's id."""

    def __init__(self, status: int, message: str, *, type_: str | None = None, headers: dict[str, str] | None = None):
        super().__init__(message)
        self.status = status
        self.type = type_ or STATUS_TYPES.get(status, "api_error")
        self.message = message
        self.headers = headers or {}


def invalid(message: str) -> ApiError:
    return ApiError(400, message)


def not_found(kind: str, ident: str) -> ApiError:
    return ApiError(404, f"{kind} {ident} not found.")


def _retry_headers(seconds: float) -> dict[str, str]:
    return {"retry-after": f"{seconds:g}", "x-should-retry": "true"}


def rate_limited(retry_after: float) -> ApiError:
    message = (
        "This request would exceed the rate limit for your organization of 1,000 requests per minute. "
        "For details, refer to: https://docs.claude.com/en/api/rate-limits."
    )
    headers = {**_retry_headers(retry_after), "anthropic-ratelimit-requests-limit": "1000"}
    headers["anthropic-ratelimit-requests-remaining"] = "0"
    return ApiError(429, message, headers=headers)


def overloaded(retry_after: float) -> ApiError:
    return ApiError(529, "Overloaded", headers=_retry_headers(retry_after))


def server_error(status: int) -> ApiError:
    if status == 504:
        return ApiError(504, "Request timed out before it completed.")
    return ApiError(status, "Internal server error", type_="api_error")
