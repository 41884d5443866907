"""Groq's Files and Batches API through the official `groq` SDK: the first implementation of the provider
protocol (`protocol.py`). Only the composition root imports this module.

SDK exceptions are mapped onto the protocol's two kinds: RetryableProviderError (wait and try again; nothing is
lost) and PermanentProviderError (the request itself is wrong; retrying cannot help). A chunk's input file is
named after its key, and its batch carries the key in its metadata, so a worker taking over a dead one's chunk
finds what it already created.
"""

from __future__ import annotations

import email.utils
import logging
import math
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Collection, Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, Literal, TypeVar

import groq
import httpx
from groq import AsyncGroq

from service.observability.metrics import record_provider_call
from service.pipeline.chunk_names import CHUNK_METADATA_KEY, upload_filename
from service.providers.protocol import (
    BatchEnd,
    ChunkRequest,
    PermanentProviderError,
    ProviderBatchInfo,
    ProviderError,
    ProviderNotFound,
    RequestCounts,
    RetryableProviderError,
)

NAME = "groq"
ENDED = {
    "completed": BatchEnd.COMPLETED,
    "failed": BatchEnd.FAILED,
    "expired": BatchEnd.EXPIRED,
    "cancelled": BatchEnd.CANCELLED,
}
BATCH_ENDPOINT: Literal["/v1/chat/completions"] = "/v1/chat/completions"
LIST_PAGE_LIMIT = 100

T = TypeVar("T")
logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class ProviderFile:
    id: str
    filename: str
    purpose: str


def _retry_after_seconds(response: httpx.Response | None) -> float | None:
    if response is None:
        return None
    header_ms = response.headers.get("retry-after-ms")
    if header_ms:
        try:
            value = float(header_ms) / 1000
        except ValueError:
            value = math.nan
        if math.isfinite(value):
            return max(0.0, value)
    header = response.headers.get("retry-after")
    if not header:
        return None
    try:
        seconds = float(header)
        return max(0.0, seconds) if math.isfinite(seconds) else None
    except ValueError:
        pass
    try:
        parsed = email.utils.parsedate_to_datetime(header)
    except (ValueError, TypeError, IndexError, OverflowError):
        return None  # unparseable: fall back to our own back-off
    return max(0.0, parsed.timestamp() - time.time())


def _describe(error: groq.APIStatusError) -> str:
    body = error.body
    if isinstance(body, Mapping):
        inner = body.get("error", body)
        if isinstance(inner, Mapping) and inner.get("message"):
            code = inner.get("code")
            return (
                f"{error.status_code} {code}: {inner['message']}"
                if code
                else f"{error.status_code}: {inner['message']}"
            )
    return f"{error.status_code}: {error.message}"


def map_sdk_error(error: Exception) -> ProviderError:
    """Classify an SDK exception the way our workers need it."""
    if isinstance(error, groq.APITimeoutError):
        return RetryableProviderError("timed out waiting for Groq")
    if isinstance(error, groq.APIConnectionError):
        return RetryableProviderError(f"could not connect to Groq: {error.message}")
    if isinstance(error, groq.APIStatusError):
        status = error.status_code
        message = _describe(error)
        if status in (408, 409, 429) or status >= 500:
            return RetryableProviderError(message, status_code=status, retry_after=_retry_after_seconds(error.response))
        if status == 404:
            return ProviderNotFound(message, status_code=status)
        return PermanentProviderError(message, status_code=status)
    if isinstance(error, groq.APIResponseValidationError):
        return RetryableProviderError(f"unexpected response from Groq: {error.message}")
    return ProviderError(str(error))


def call_status(error: groq.GroqError) -> str:
    """The `status` label of a failed call in the provider metrics."""
    if isinstance(error, groq.APIStatusError):
        return str(error.status_code)
    if isinstance(error, groq.APITimeoutError):
        return "timeout"
    if isinstance(error, groq.APIConnectionError):
        return "connection_error"
    return "error"


def _as_dict(value: Any) -> dict[str, Any]:
    if value is None:
        return {}
    if isinstance(value, Mapping):
        return dict(value)
    dump = getattr(value, "model_dump", None)
    return dict(dump()) if callable(dump) else {}


def _errors_of(raw_errors: Any) -> list[dict[str, Any]]:
    """Groq's docs show a bare array; the SDK types it as {object, data}. Accept both."""
    if raw_errors is None:
        return []
    if isinstance(raw_errors, list):
        return [_as_dict(entry) for entry in raw_errors]
    as_dict = _as_dict(raw_errors)
    data = as_dict.get("data") or []
    return [_as_dict(entry) for entry in data]


def batch_info(batch: Any) -> ProviderBatchInfo:
    counts = batch.request_counts
    metadata = batch.metadata if isinstance(batch.metadata, Mapping) else {}
    return ProviderBatchInfo(
        id=batch.id,
        status=str(batch.status),
        ended=ENDED.get(str(batch.status)),
        input_file_id=batch.input_file_id,
        output_file_id=batch.output_file_id,
        error_file_id=batch.error_file_id,
        request_counts=RequestCounts(
            total=int(getattr(counts, "total", 0) or 0),
            completed=int(getattr(counts, "completed", 0) or 0),
            failed=int(getattr(counts, "failed", 0) or 0),
        ),
        metadata={str(k): str(v) for k, v in metadata.items()},
        errors=_errors_of(batch.errors),
    )


class GroqBatchProvider:
    """Files + Batches on Groq (the provider protocol). Every method raises only ProviderError subclasses."""

    name = NAME
    tags_batches = True

    def __init__(self, client: AsyncGroq, *, completion_window: str = "24h") -> None:
        self._client = client
        self.completion_window = completion_window

    @classmethod
    def connect(
        cls,
        *,
        api_key: str,
        base_url: str | None,
        timeout_seconds: float,
        max_retries: int,
        completion_window: str = "24h",
        http_client: httpx.AsyncClient | None = None,
    ) -> GroqBatchProvider:
        client = AsyncGroq(
            api_key=api_key,
            base_url=base_url,
            timeout=httpx.Timeout(timeout_seconds, connect=min(5.0, timeout_seconds)),
            max_retries=max_retries,
            http_client=http_client,
        )
        return cls(client, completion_window=completion_window)

    async def close(self) -> None:
        await self._client.close()

    async def _call(self, endpoint: str, operation: Callable[[], Awaitable[T]]) -> T:
        started = time.perf_counter()
        try:
            result = await operation()
        except groq.GroqError as error:
            record_provider_call(endpoint, call_status(error), time.perf_counter() - started)
            raise map_sdk_error(error) from error
        record_provider_call(endpoint, "ok", time.perf_counter() - started)
        return result

    async def upload_jsonl(self, path: Path, *, filename: str) -> str:
        """Upload a batch input file, streamed from disk in 64 KiB parts (never loaded whole)."""
        with path.open("rb") as handle:
            created = await self._call(
                "files.create",
                lambda: self._client.files.create(file=(filename, handle, "application/jsonl"), purpose="batch"),
            )
        return str(created.id)

    async def create_batch(self, input_file_id: str, *, metadata: Mapping[str, str]) -> ProviderBatchInfo:
        """One try only: the SDK sends no idempotency key, so a blind retry after a 5xx that had in fact
        created the batch would make a second one. Callers reconcile by metadata before trying again."""
        batch = await self._call(
            "batches.create",
            lambda: self._client.with_options(max_retries=0).batches.create(
                input_file_id=input_file_id,
                endpoint=BATCH_ENDPOINT,
                completion_window=self.completion_window,
                metadata=dict(metadata),
            ),
        )
        return batch_info(batch)

    async def retrieve(self, batch_id: str) -> ProviderBatchInfo:
        return batch_info(await self._call("batches.retrieve", lambda: self._client.batches.retrieve(batch_id)))

    async def cancel(self, batch_id: str) -> ProviderBatchInfo:
        return batch_info(await self._call("batches.cancel", lambda: self._client.batches.cancel(batch_id)))

    async def iter_batches(self) -> AsyncIterator[ProviderBatchInfo]:
        """Every batch of the account, following `paging.next_cursor`."""
        cursor: str | None = None
        while True:
            query: dict[str, Any] = {"limit": LIST_PAGE_LIMIT}
            if cursor:
                query["cursor"] = cursor
            page = await self._call("batches.list", lambda q=query: self._client.batches.list(extra_query=q))  # type: ignore[misc]
            for batch in page.data or []:
                yield batch_info(batch)
            paging = getattr(page, "paging", None)
            cursor = paging.get("next_cursor") if isinstance(paging, Mapping) else None
            if not cursor:
                return

    async def find_batch(self, metadata_key: str, value: str) -> ProviderBatchInfo | None:
        """Reconciliation: the provider batch created for a chunk, found by the metadata we sent."""
        async for batch in self.iter_batches():
            if batch.metadata.get(metadata_key) == value:
                return batch
        return None

    async def find_batches(self, metadata_key: str, value: str) -> list[ProviderBatchInfo]:
        """Every provider batch carrying this metadata value, oldest first (normally none or one)."""
        found = [batch async for batch in self.iter_batches() if batch.metadata.get(metadata_key) == value]
        return list(reversed(found))  # the list is newest first

    async def list_files(self) -> list[ProviderFile]:
        """The account's files (Groq answers them in one list)."""
        page = await self._call("files.list", lambda: self._client.files.list())
        return [
            ProviderFile(id=str(entry.id), filename=entry.filename or "", purpose=str(entry.purpose or ""))
            for entry in page.data
            if entry.id
        ]

    async def iter_file_lines(self, file_id: str) -> AsyncIterator[bytes]:
        """The lines of an output or error file, streamed; memory stays flat for any file size.

        Split on b"\n" only: JSON strings may hold U+2028/U+2029/U+0085 unescaped, which a text
        line splitter would cut, and the raw bytes go to the JSON parser untouched."""
        started = time.perf_counter()
        try:
            async with self._client.files.with_streaming_response.content(file_id) as response:
                pending = b""
                async for chunk in response.iter_bytes():
                    pending += chunk
                    *lines, pending = pending.split(b"\n")
                    for line in lines:
                        if line.strip():
                            yield line.rstrip(b"\r")
                if pending.strip():
                    yield pending.rstrip(b"\r")
        except groq.GroqError as error:
            record_provider_call("files.content", call_status(error), time.perf_counter() - started)
            raise map_sdk_error(error) from error
        except httpx.HTTPError as error:  # the stream broke after the response started
            record_provider_call("files.content", "interrupted", time.perf_counter() - started)
            raise RetryableProviderError(f"download of {file_id} interrupted: {error}") from error
        record_provider_call("files.content", "ok", time.perf_counter() - started)

    async def list_models(self) -> list[str]:
        """The ids of the models the account can use (GET /openai/v1/models): the live source of truth."""
        page = await self._call("models.list", lambda: self._client.models.list())
        return [str(model.id) for model in page.data if getattr(model, "id", None)]

    async def delete_file(self, file_id: str) -> None:
        await self._call("files.delete", lambda: self._client.files.delete(file_id))

    # -- the provider protocol -----------------------------------------------------------------------------

    async def upload(self, request: ChunkRequest) -> str | None:
        return await self.upload_jsonl(request.lines(), filename=upload_filename(request.key))

    async def create(self, request: ChunkRequest, input_file_id: str | None) -> ProviderBatchInfo:
        if input_file_id is None:
            raise PermanentProviderError("Groq runs a batch from an uploaded input file; none was given")
        return await self.create_batch(input_file_id, metadata=request.metadata)

    async def find(self, request: ChunkRequest, since: datetime | None) -> list[ProviderBatchInfo]:
        return await self.find_batches(CHUNK_METADATA_KEY, request.key)

    def result_lines(self, batch: ProviderBatchInfo) -> AsyncIterator[bytes]:
        return self._result_lines(batch)

    async def _result_lines(self, batch: ProviderBatchInfo) -> AsyncIterator[bytes]:
        for file_id in (batch.output_file_id, batch.error_file_id):
            if file_id:
                async for line in self.iter_file_lines(file_id):
                    yield line

    async def delete_results(self, batch_id: str | None, file_ids: Collection[str]) -> None:
        for file_id in dict.fromkeys(file_ids):  # Groq keeps batches; their files are what it stores of ours
            await self.delete_quietly(file_id)

    async def delete_uploads(self, key: str, keep: Collection[str | None] = ()) -> None:
        name = upload_filename(key)
        for upload in await self.list_files():
            if upload.filename == name and upload.purpose == "batch" and upload.id not in keep:
                await self.delete_quietly(upload.id)

    async def delete_quietly(self, file_id: str) -> None:
        """Delete one file; gone already, or refused (Groq's retention takes care of it), is fine. Retryable
        errors propagate."""
        try:
            await self.delete_file(file_id)
        except ProviderNotFound:
            pass
        except PermanentProviderError as error:
            logger.warning("could not delete file %s: %s", file_id, error)
