"""A small synchronous client of the llm-batch HTTP API, for the Django monolith and the command line.

It needs only httpx and standardwebhooks (no other module of this service), so the monolith can import it
without the service's own dependencies::

    client = LlmBatchClient("http://llm-batch.internal", token=settings.LLM_BATCH_TOKEN)
    batch = client.submit(items, fallback=True, idempotency_key=f"pr-backfill-{run_id}")
    for row in client.iter_results(client.wait(batch["id"])["id"]):
        ...

Every error answer of the API (RFC 9457 problem+json) raises `LlmBatchError`; a request that got no answer
(refused connection, DNS failure, timeout) raises its subclass `LlmBatchConnectionError`.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from types import TracebackType
from typing import Any

import httpx
from standardwebhooks import Webhook
from standardwebhooks.webhooks import WebhookVerificationError

__all__ = [
    "TERMINAL_STATUSES",
    "BatchWaitTimeout",
    "LlmBatchClient",
    "LlmBatchConnectionError",
    "LlmBatchError",
    "WebhookVerificationError",
    "verify_webhook",
]

JsonObject = dict[str, Any]
TERMINAL_STATUSES = frozenset({"completed", "failed", "cancelled"})
NDJSON = "application/x-ndjson"
DEFAULT_TIMEOUT_SECONDS = 60.0
DEFAULT_WAIT_SECONDS = 24 * 3600.0
DEFAULT_POLL_SECONDS = 30.0
# Answers that say "not now" rather than "no": wait() polls through them until its deadline.
_TRANSIENT_STATUSES = frozenset({429, 502, 503, 504})
CONNECTION_ERROR_TYPE = "urn:llm-batch:client:connection-error"


class LlmBatchError(Exception):
    """An error answer of the API, parsed from its problem+json body (`problem` holds the whole body)."""

    def __init__(
        self, status: int | None, type: str, title: str, detail: str, problem: Mapping[str, Any] | None = None
    ) -> None:
        super().__init__(f"{status or 'no answer'} {title}: {detail}")
        self.status = status
        self.type = type
        self.title = title
        self.detail = detail
        self.problem: JsonObject = dict(problem or {})


class LlmBatchConnectionError(LlmBatchError):
    """The service could not be reached or did not answer in time (status is None)."""

    def __init__(self, detail: str) -> None:
        super().__init__(None, CONNECTION_ERROR_TYPE, "Service unreachable", detail)


class BatchWaitTimeout(TimeoutError):
    """wait() gave up: the batch was not finished after `timeout` seconds. `batch` is the last state seen."""

    def __init__(self, batch_id: str, timeout: float, batch: JsonObject | None) -> None:
        status = batch["status"] if batch else "unknown"
        super().__init__(f"batch {batch_id} still {status} after {timeout:g}s")
        self.batch_id = batch_id
        self.timeout = timeout
        self.batch = batch


def verify_webhook(headers: Mapping[str, str], body: bytes | str, secret: str) -> JsonObject:
    """Check a webhook's Standard Webhooks signature and age (5 minutes' tolerance) and return its payload.

    `headers` may be any mapping (Django's `request.headers` works as is), `body` the raw request body, `secret`
    the service's WEBHOOK_SECRET (`whsec_...`). Raises `WebhookVerificationError` when the signature does not
    match, a header is missing or the timestamp is too old or too new.
    """
    payload = Webhook(secret).verify(body, {key: value for key, value in headers.items()})
    if not isinstance(payload, dict):
        raise WebhookVerificationError("webhook payload is not a JSON object")
    return payload


def _problem_from(response: httpx.Response) -> LlmBatchError:
    try:
        body = response.json()
    except ValueError:
        body = None
    if isinstance(body, dict) and "title" in body:
        return LlmBatchError(
            response.status_code,
            str(body.get("type", "about:blank")),
            str(body["title"]),
            str(body.get("detail", "")),
            body,
        )
    return LlmBatchError(response.status_code, "about:blank", response.reason_phrase, response.text[:1000])


def _without_none(values: Mapping[str, Any]) -> JsonObject:
    return {key: value for key, value in values.items() if value is not None}


class LlmBatchClient:
    """Sync client on httpx. Use it as a context manager, or call close() when done."""

    verify_webhook = staticmethod(verify_webhook)

    def __init__(
        self,
        base_url: str,
        token: str | None = None,
        timeout: float | httpx.Timeout = DEFAULT_TIMEOUT_SECONDS,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        headers = {"User-Agent": "llm-batch-client/0.1"}
        if token:
            headers["Authorization"] = f"Bearer {token}"
        self._http = httpx.Client(base_url=base_url, headers=headers, timeout=timeout, transport=transport)

    def __enter__(self) -> LlmBatchClient:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, traceback: TracebackType | None
    ) -> None:
        self.close()

    def close(self) -> None:
        self._http.close()

    def submit(
        self,
        items: Sequence[Mapping[str, Any]],
        fallback: bool = True,
        *,
        params: Mapping[str, Any] | None = None,
        model: str | None = None,
        fallback_model: str | None = None,
        fallback_params: Mapping[str, Any] | None = None,
        output_schema: Mapping[str, Any] | None = None,
        completion_window: str | None = None,
        callback_url: str | None = None,
        metadata: Mapping[str, Any] | None = None,
        idempotency_key: str | None = None,
    ) -> JsonObject:
        """POST /batches: items are `{"custom_id": ..., "body": {chat-completions body without model}}`.

        With an `idempotency_key`, sending the same call again (after a timeout, say) returns the first answer
        instead of creating a second batch."""
        payload = _without_none(
            {
                "items": [{"custom_id": item["custom_id"], "body": item["body"]} for item in items],
                "params": params,
                "model": model,
                "fallback_model": fallback_model,
                "fallback_params": fallback_params,
                "output_schema": output_schema,
                "completion_window": completion_window,
                "callback_url": callback_url,
                "metadata": metadata,
            }
        )
        query = {"fallback": "true" if fallback else "false"}
        return self._json("POST", "/batches", json=payload, params=query, idempotency_key=idempotency_key)

    def get(self, batch_id: str) -> JsonObject:
        """GET /batches/{id}: status, counts, cost, passes and the webhook delivery."""
        return self._json("GET", f"/batches/{batch_id}")

    def list(self, status: str | None = None, limit: int = 20, after: str | None = None) -> JsonObject:
        """One page of batches, newest first: `{"data": [...], "has_more": bool, "next_cursor": str | None}`."""
        return self._json("GET", "/batches", params=_without_none({"status": status, "limit": limit, "after": after}))

    def iter_results(self, batch_id: str, status: str | None = None) -> Iterator[JsonObject]:
        """Every merged result row, streamed as NDJSON: memory stays constant whatever the batch size."""
        request = self._http.build_request(
            "GET",
            f"/batches/{batch_id}/results",
            params=_without_none({"status": status}),
            headers={"Accept": NDJSON},
        )
        try:
            response = self._http.send(request, stream=True)
        except httpx.TransportError as error:
            raise LlmBatchConnectionError(f"GET {request.url}: {type(error).__name__}: {error}") from error
        try:
            if response.is_error:
                response.read()
                raise _problem_from(response)
            try:
                for line in response.iter_lines():
                    if line:
                        row: JsonObject = json.loads(line)
                        yield row
            except httpx.TransportError as error:
                raise LlmBatchConnectionError(f"results of {batch_id} cut off: {error}") from error
        finally:
            response.close()

    def item(self, batch_id: str, custom_id: str) -> JsonObject:
        """One item with its body, merged result and every attempt."""
        return self._json("GET", f"/batches/{batch_id}/items/{custom_id}")

    def retry(
        self,
        batch_id: str,
        model: str | None = None,
        params: Mapping[str, Any] | None = None,
        custom_ids: Sequence[str] | None = None,
        idempotency_key: str | None = None,
    ) -> JsonObject:
        """Send the failed items (all, or `custom_ids`) again as a new pass (default: the fallback model)."""
        body = _without_none(
            {"model": model, "params": params, "custom_ids": None if custom_ids is None else [*custom_ids]}
        )
        return self._json("POST", f"/batches/{batch_id}/retry", json=body, idempotency_key=idempotency_key)

    def cancel(self, batch_id: str) -> JsonObject:
        return self._json("POST", f"/batches/{batch_id}/cancel")

    def redeliver_webhook(self, batch_id: str) -> JsonObject:
        """Send the batch's last webhook event again (same webhook-id, new signature)."""
        return self._json("POST", f"/batches/{batch_id}/webhook/redeliver")

    def wait(
        self,
        batch_id: str,
        timeout: float = DEFAULT_WAIT_SECONDS,
        poll_interval: float = DEFAULT_POLL_SECONDS,
        on_progress: Callable[[JsonObject], None] | None = None,
    ) -> JsonObject:
        """Poll until the batch is completed, failed or cancelled and return it; `on_progress` sees every poll.

        Connection failures and 429/502/503/504 answers are polled through (a restart of the service does not end
        the wait); other errors raise. Raises BatchWaitTimeout (a TimeoutError) after `timeout` seconds."""
        deadline = time.monotonic() + timeout
        last: JsonObject | None = None
        while True:
            try:
                last = self.get(batch_id)
            except LlmBatchError as error:
                if not isinstance(error, LlmBatchConnectionError) and error.status not in _TRANSIENT_STATUSES:
                    raise
            else:
                if on_progress is not None:
                    on_progress(last)
                if last["status"] in TERMINAL_STATUSES:
                    return last
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise BatchWaitTimeout(batch_id, timeout, last)
            time.sleep(min(poll_interval, remaining))

    def _json(
        self,
        method: str,
        path: str,
        *,
        json: Any = None,
        params: Mapping[str, Any] | None = None,
        idempotency_key: str | None = None,
    ) -> JsonObject:
        headers = {"Idempotency-Key": idempotency_key} if idempotency_key is not None else None
        try:
            response = self._http.request(method, path, json=json, params=params, headers=headers)
        except httpx.TransportError as error:
            raise LlmBatchConnectionError(f"{method} {path}: {type(error).__name__}: {error}") from error
        if response.is_error:
            raise _problem_from(response)
        body: JsonObject = response.json()
        return body
