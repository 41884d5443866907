"""Groq's error objects: ``{"error": {"message", "type", "code"?, "param"?, ...}}``."""

from __future__ import annotations

from typing import Any

JsonDict = dict[str, Any]


def error_body(message: str, type_: str = "invalid_request_error", **extra: Any) -> JsonDict:
    error: JsonDict = {"message": message, "type": type_}
    error.update({key: value for key, value in extra.items() if value is not None})
    return {"error": error}


class ApiError(Exception):
    """Raised inside the emulator; the app turns it into an HTTP response."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        type_: str = "invalid_request_error",
        code: str | None = None,
        param: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.body = error_body(message, type_, code=code, param=param)
        self.headers = headers or {}


def invalid_api_key() -> ApiError:
    return ApiError(401, "Invalid API Key", code="invalid_api_key")


def not_found(kind: str, ident: str) -> ApiError:
    return ApiError(404, f"{kind} with id '{ident}' not found", code="not_found")


def rate_limited(retry_after: float) -> ApiError:
    wait = f"{retry_after * 1000:.0f}ms" if retry_after < 1 else f"{retry_after:g}s"
    message = (
        "Rate limit reached for model `batch` in organization `org_emulator` service tier `on_demand` "
        f"on tokens per minute (TPM): Limit 6000, Used 5000, Requested 1522. Please try again in {wait}. "
        "Need more tokens? Upgrade to Dev Tier today at https://console.groq.com/settings/billing"
    )
    return ApiError(
        429,
        message,
        type_="tokens",
        code="rate_limit_exceeded",
        headers={"retry-after": f"{retry_after:g}"},
    )


_SERVER_MESSAGES = {502: "Bad Gateway", 503: "Service Unavailable", 504: "Gateway Timeout"}


def server_error(status: int) -> ApiError:
    return ApiError(status, _SERVER_MESSAGES.get(status, "Internal Server Error"), type_="internal_server_error")
