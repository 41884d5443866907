"""What the client raises: the service's RFC 9457 problems, no answer at all. (A wait that runs out of time
raises BatchWaitTimeout, in waiting.py: it carries the last Batch seen, and this module knows no Batch.)"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from standardwebhooks.webhooks import WebhookVerificationError

__all__ = [
    "FieldError",
    "LlmBatchConnectionError",
    "LlmBatchError",
    "UnexpectedAnswer",
    "WebhookVerificationError",
]

CONNECTION_ERROR = "urn:llm-batch:client:no-answer"
UNEXPECTED_ANSWER = "urn:llm-batch:client:unexpected-answer"


@dataclass(frozen=True)
class FieldError:
    field: str
    message: str


class LlmBatchError(Exception):
    """An error answer of the service, from its problem+json body.

    `status` (None when no answer came), `type` (stable, e.g. ``urn:llm-batch:problem:not-found``), `title`,
    `detail` (what is wrong), `field` (the request field at fault, if any), `errors` (one per field for a 422),
    `problem` (the whole body, with any extra members such as `limit`), `retry_after` (seconds, from the
    Retry-After header).
    """

    def __init__(
        self,
        status: int | None,
        type: str,
        title: str,
        detail: str,
        *,
        field: str | None = None,
        errors: tuple[FieldError, ...] = (),
        problem: Mapping[str, Any] | None = None,
        retry_after: float | None = None,
        message: str | None = None,
    ) -> None:
        super().__init__(message or f"{status if status is not None else 'no answer'} {title}: {detail}")
        self.status = status
        self.type = type
        self.title = title
        self.detail = detail
        self.field = field
        self.errors = errors
        self.problem: dict[str, Any] = dict(problem or {})
        self.retry_after = retry_after


class LlmBatchConnectionError(LlmBatchError):
    """No answer: refused connection, DNS failure, timeout, or a stream cut off. `url` is the service's base
    URL, `request` the request (`POST /batches`), `reason` what happened in a few words ("connection
    refused"), `reached` whether any try made a connection (False: nothing reached the service, so it did
    nothing), `sends` how often it was sent over `seconds`. `idempotency_key` is the key the request was sent
    with (if any): sending the same request again with it cannot create a second batch."""

    def __init__(
        self,
        detail: str,
        *,
        idempotency_key: str | None = None,
        url: str = "",
        request: str = "",
        reason: str = "",
        reached: bool = True,
        sends: int = 1,
        seconds: float = 0.0,
    ) -> None:
        super().__init__(None, CONNECTION_ERROR, "No answer", detail, message=detail)
        self.idempotency_key = idempotency_key
        self.url = url
        self.request = request
        self.reason = reason
        self.reached = reached
        self.sends = sends
        self.seconds = seconds

    @property
    def attempts(self) -> str:
        """`POST /batches, 5 tries over 8 s`"""
        return attempts_text(self.request, self.sends, self.seconds)


def attempts_text(request: str, sends: int, seconds: float) -> str:
    tries = f"{sends} tries over {seconds:.0f} s" if sends > 1 else "1 try"
    return f"{request}, {tries}" if request else tries


class UnexpectedAnswer(LlmBatchError):
    """An answer the client cannot read (not JSON, or a field missing or of the wrong type)."""

    def __init__(self, detail: str, status: int | None = None) -> None:
        super().__init__(status, UNEXPECTED_ANSWER, "Unexpected answer", detail)


def parse_retry_after(value: str | None) -> float | None:
    """Retry-After in seconds (the service sends seconds; an HTTP date is not followed)."""
    if value is None:
        return None
    try:
        seconds = float(value)
    except ValueError:
        return None
    return seconds if seconds >= 0 else None


def problem_from(status: int, reason: str, headers: Mapping[str, str], body: bytes) -> LlmBatchError:
    """The error an error answer stands for; a body that is not problem+json still gives status and text."""
    retry_after = parse_retry_after(headers.get("retry-after"))
    try:
        problem = json.loads(body)
    except ValueError:
        problem = None
    if not isinstance(problem, dict) or "title" not in problem:
        text = body.decode("utf-8", "replace")[:1000]
        return LlmBatchError(status, "about:blank", reason, text, retry_after=retry_after)
    raw_errors = problem.get("errors")
    errors = tuple(
        FieldError(str(error.get("field", "")), str(error.get("message", "")))
        for error in (raw_errors if isinstance(raw_errors, list) else [])
        if isinstance(error, dict)
    )
    field = problem.get("field")
    return LlmBatchError(
        status,
        str(problem.get("type", "about:blank")),
        str(problem["title"]),
        str(problem.get("detail", "")),
        field=field if isinstance(field, str) else None,
        errors=errors,
        problem=problem,
        retry_after=retry_after,
    )
