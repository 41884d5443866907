"""OpenAI's error objects: ``{"error": {"message", "type", "param", "code"}}``, every key present."""

from __future__ import annotations

from typing import Any

JsonDict = dict[str, Any]


def error_body(
    message: str, type_: str = "invalid_request_error", *, param: str | None = None, code: str | None = None
) -> JsonDict:
    return {"error": {"message": message, "type": type_, "param": param, "code": code}}


class ApiError(Exception):
    """Raised inside the emulator; the app turns it into an HTTP response."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        type_: str = "invalid_request_error",
        param: str | None = None,
        code: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.body = error_body(message, type_, param=param, code=code)
        self.headers = headers or {}


def missing_key() -> ApiError:
    message = (
        "You didn't provide an API key. You need to provide your API key in an Authorization header using "
        "Bearer auth (i.e. Authorization: Bearer YOUR_KEY). You can obtain an API key from "
        "https://platform.openai.com/account/api-keys."
    )
    return ApiError(401, message)


def wrong_key(key: str) -> ApiError:
    shown = f"{key[:3]}*****{key[-4:]}" if len(key) > 8 else "*****"
    message = (
        f"Incorrect API key provided: {shown}. You can find your API key at "
        "https://platform.openai.com/account/api-keys."
    )
    return ApiError(401, message, code="invalid_api_key")


def no_such(kind: str, ident: str, param: str = "id") -> ApiError:
    return ApiError(404, f"No such {kind} object: {ident}", param=param)


def invalid_value(param: str, value: Any, allowed: tuple[str, ...]) -> ApiError:
    listed = ", ".join(f"'{item}'" for item in allowed)
    return ApiError(
        400, f"Invalid value: '{value}'. Supported values are: {listed}.", param=param, code="invalid_value"
    )


def missing(param: str) -> ApiError:
    return ApiError(400, f"Missing required parameter: '{param}'.", param=param, code="missing_required_parameter")


def rate_limited(retry_after: float, organization: str) -> ApiError:
    wait = f"{retry_after * 1000:.0f}ms" if retry_after < 1 else f"{retry_after:.3g}s"
    message = (
        f"Rate limit reached for requests in organization {organization} on requests per min (RPM): "
        f"Limit 500, Used 500, Requested 1. Please try again in {wait}. Visit "
        "https://platform.openai.com/account/rate-limits to learn more."
    )
    headers = {
        "retry-after": f"{retry_after:g}",
        "retry-after-ms": f"{retry_after * 1000:.0f}",
        "x-ratelimit-limit-requests": "500",
        "x-ratelimit-remaining-requests": "0",
        "x-ratelimit-reset-requests": wait,
    }
    return ApiError(429, message, type_="requests", code="rate_limit_exceeded", headers=headers)


_SERVER_MESSAGES = {
    500: "The server had an error while processing your request. Sorry about that!",
    502: "Bad gateway.",
    503: "The server is overloaded or not ready yet.",
}


def server_error(status: int) -> ApiError:
    message = _SERVER_MESSAGES.get(status, "The server had an error while processing your request. Sorry about that!")
    return ApiError(status, message, type_="server_error")
