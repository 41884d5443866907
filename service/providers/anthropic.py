"""Anthropic's Message Batches API through the official `anthropic` SDK. Only the composition root imports this
module.

Anthropic takes a batch's requests inline (nothing is uploaded) and keeps no metadata on a batch: an earlier
attempt's batch is recognised only by when it was created and how many requests it holds (`find`). The service
sends each line with the custom_id `i<item id>`, unique per item, so a batch's results can later confirm which
chunk it served. SDK exceptions are mapped onto the protocol's two kinds: RetryableProviderError (408, 409, 429,
529 overloaded, 5xx, timeouts, connection failures; Retry-After honoured) and PermanentProviderError (413 and the
other 4xx; 404 is ProviderNotFound).
"""

from __future__ import annotations

import asyncio
import email.utils
import logging
import math
import time
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable, Collection, Mapping
from contextlib import aclosing
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Protocol, Self, TypeVar, cast

import anthropic
import httpx2
import orjson
from anthropic import AsyncAnthropic
from anthropic.types.messages import MessageBatch
from anthropic.types.messages.batch_create_params import Request

from service.observability.metrics import record_provider_call
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

NAME = "anthropic"
BATCH_PAGE_LIMIT = 100  # GET /v1/messages/batches allows 1-1000
MODEL_PAGE_LIMIT = 100
FIND_SLACK = timedelta(minutes=10)  # clock skew between us and Anthropic

T = TypeVar("T")
logger = logging.getLogger(__name__)


class _Page(Protocol):
    def has_next_page(self) -> bool: ...

    async def get_next_page(self) -> Self: ...


PageT = TypeVar("PageT", bound=_Page)


# -- errors ------------------------------------------------------------------------------------------------
def retry_after_seconds(headers: Mapping[str, str]) -> float | None:
    """`retry-after-ms`, else `retry-after` (seconds or an HTTP date); None when absent or unreadable."""
    milliseconds = _finite(headers.get("retry-after-ms"))
    if milliseconds is not None:
        return max(0.0, milliseconds / 1000)
    header = headers.get("retry-after")
    if not header:
        return None
    seconds = _finite(header)
    if seconds is not None:
        return max(0.0, seconds)
    try:
        parsed = email.utils.parsedate_to_datetime(header)
    except (ValueError, TypeError, IndexError, OverflowError):
        return None  # unparseable: the caller's own back-off applies
    return max(0.0, parsed.timestamp() - time.time())


def _finite(text: str | None) -> float | None:
    try:
        value = float(text) if text else math.nan
    except ValueError:
        return None
    return value if math.isfinite(value) else None


def _describe(error: anthropic.APIStatusError) -> str:
    """`{"type": "error", "error": {"type", "message"}}` as `529 overloaded_error: Overloaded`."""
    if error.api_message:
        kind = f" {error.type}" if error.type else ""
        return f"{error.status_code}{kind}: {error.api_message}"
    return f"{error.status_code}: {error.message}"


def map_sdk_error(error: Exception) -> ProviderError:
    """Classify an SDK exception the way our workers need it."""
    if isinstance(error, anthropic.APITimeoutError):
        return RetryableProviderError(f"timed out waiting for {NAME}")
    if isinstance(error, anthropic.APIConnectionError):
        return RetryableProviderError(f"could not connect to {NAME}: {error.message}")
    if isinstance(error, anthropic.APIStatusError):
        status, message = error.status_code, f"{NAME}: {_describe(error)}"
        if status in (408, 409, 429) or status >= 500:  # 529 overloaded included
            retry_after = retry_after_seconds(error.response.headers)
            return RetryableProviderError(message, status_code=status, retry_after=retry_after)
        if status == 404:
            return ProviderNotFound(message, status_code=status)
        return PermanentProviderError(message, status_code=status)
    if isinstance(error, anthropic.APIResponseValidationError):
        return RetryableProviderError(f"unexpected response from {NAME}: {error.message}")
    return ProviderError(f"{NAME}: {error}")


def call_status(error: anthropic.AnthropicError) -> str:
    """The `status` label of a failed call in the provider metrics."""
    if isinstance(error, anthropic.APIStatusError):
        return str(error.status_code)
    if isinstance(error, anthropic.APITimeoutError):
        return "timeout"
    if isinstance(error, anthropic.APIConnectionError):
        return "connection_error"
    return "error"


# -- what a batch says -------------------------------------------------------------------------------------
def naive_utc(value: datetime | str | None) -> datetime | None:
    """An RFC 3339 time (the SDK parses it into an aware datetime) as naive UTC, like every timestamp in the
    database."""
    if value is None:
        return None
    moment = value if isinstance(value, datetime) else datetime.fromisoformat(value)
    if moment.tzinfo is None:
        return moment
    return moment.astimezone(UTC).replace(tzinfo=None)


def request_counts(batch: MessageBatch) -> RequestCounts:
    """total: all five counts; completed: succeeded; failed: errored, canceled and expired."""
    counts = batch.request_counts
    failed = counts.errored + counts.canceled + counts.expired
    return RequestCounts(total=counts.processing + counts.succeeded + failed, completed=counts.succeeded, failed=failed)


def batch_end(batch: MessageBatch) -> BatchEnd | None:
    """`ended` is cancelled when a cancel was asked for, expired when every request expired, else completed: the
    errored, canceled and expired results of single requests speak for themselves at ingest."""
    if batch.processing_status != "ended":
        return None  # in_progress, canceling
    if batch.cancel_initiated_at is not None:
        return BatchEnd.CANCELLED
    counts = batch.request_counts
    if counts.expired > 0 and counts.expired == request_counts(batch).total:
        return BatchEnd.EXPIRED
    return BatchEnd.COMPLETED


def batch_info(batch: MessageBatch) -> ProviderBatchInfo:
    return ProviderBatchInfo(
        id=batch.id,
        status=str(batch.processing_status),
        ended=batch_end(batch),
        request_counts=request_counts(batch),
        created_at=naive_utc(batch.created_at),
    )


def read_requests(path: Path, expected: int) -> list[Request]:
    """The chunk's request objects (`{"custom_id", "params"}` a line), read line by line: one parsed copy of the
    requests, never the file's text besides. Refused for good when a line is not a JSON object or the count is
    not `expected` (`find` recognises a batch by its count)."""
    requests: list[Request] = []
    with path.open("rb") as handle:
        for number, line in enumerate(handle, 1):
            if not line.strip():
                continue
            try:
                parsed = orjson.loads(line)
            except orjson.JSONDecodeError as error:
                raise PermanentProviderError(f"line {number} of {path.name} is not JSON: {error}") from error
            if not isinstance(parsed, dict):
                raise PermanentProviderError(f"line {number} of {path.name} is not a request object")
            requests.append(cast(Request, parsed))
    if len(requests) != expected:
        raise PermanentProviderError(f"{path.name} holds {len(requests)} requests, not the chunk's {expected}")
    return requests


class AnthropicBatchProvider:
    """Message Batches on Anthropic (the provider protocol). Every method raises only ProviderError subclasses."""

    name = NAME
    tags_batches = False  # no batch metadata: found by creation window and request count (see find)

    def __init__(self, client: AsyncAnthropic) -> None:
        self._client = client

    @classmethod
    def connect(
        cls,
        *,
        api_key: str | None,
        base_url: str | None,
        timeout_seconds: float,
        max_retries: int,
        http_client: httpx2.AsyncClient | None = None,
    ) -> AnthropicBatchProvider:
        """`api_key`/`base_url` None: the SDK finds its own (ANTHROPIC_API_KEY, ANTHROPIC_BASE_URL without `/v1`,
        a profile...). The SDK chooses the auth header and the API version. `http_client`: an `httpx2` client
        (the SDK 2.x refuses an `httpx` one)."""
        client = AsyncAnthropic(
            api_key=api_key,
            base_url=base_url,
            timeout=httpx2.Timeout(timeout_seconds, connect=min(5.0, timeout_seconds)),
            max_retries=max_retries,
            http_client=http_client,
        )
        return cls(client)

    async def close(self) -> None:
        await self._client.close()

    def _record(self, endpoint: str, status: str, started: float) -> None:
        record_provider_call(endpoint, status, time.perf_counter() - started, provider=self.name)

    async def _call(self, endpoint: str, operation: Callable[[], Awaitable[T]]) -> T:
        started = time.perf_counter()
        try:
            result = await operation()
        except anthropic.AnthropicError as error:
            self._record(endpoint, call_status(error), started)
            raise map_sdk_error(error) from error
        self._record(endpoint, "ok", started)
        return result

    async def _pages(self, endpoint: str, first: Callable[[], Awaitable[PageT]]) -> AsyncGenerator[PageT, None]:
        """Each page of a list, following the SDK's cursor (`after_id` the last id while `has_more`)."""
        page = await self._call(endpoint, first)
        yield page
        while page.has_next_page():
            page = await self._call(endpoint, page.get_next_page)
            yield page

    # -- sending -------------------------------------------------------------------------------------------
    async def upload(self, request: ChunkRequest) -> str | None:
        """Nothing to upload: `create` sends the requests inline."""
        return None

    async def create(self, request: ChunkRequest, input_file_id: str | None) -> ProviderBatchInfo:
        """One try only (no idempotency key: a blind retry could make a second batch; callers `find` first).

        Each line of the chunk is already a complete request object. Memory: the lines are parsed into one list
        (read in a thread, line by line); the SDK then copies the body's containers and serialises it whole in
        memory (a str, then its bytes), on the event loop. For a 100 MB chunk (54,000 requests of 2 KB) that was
        1.1 s of reading in the thread, then 3.9 s with the event loop blocked, and a peak of 384 MB over the
        process's baseline: the service sizes Anthropic chunks so that this stays reasonable."""
        if input_file_id is not None:
            raise PermanentProviderError(f"{self.name} takes requests inline; it was given input file {input_file_id}")
        requests = await asyncio.to_thread(read_requests, request.lines(), request.line_count)
        batch = await self._call(
            "batches.create",
            lambda: self._client.with_options(max_retries=0).messages.batches.create(requests=requests),
        )
        return batch_info(batch)

    async def find(self, request: ChunkRequest, since: datetime | None) -> list[ProviderBatchInfo]:
        """Candidates for the chunk's batch, oldest first: the account's batches created at or after `since` less 10
        minutes of clock skew whose total request count is the chunk's line count. Anthropic keeps no metadata, so
        these may include other chunks' batches of the same size: the lifecycle decides among them (the results'
        custom_ids, `i<item id>`, say which chunk a batch served). With `since` None nothing can be matched
        safely: [].

        The list comes newest first; it is read page by page and no further than the bound."""
        if since is None:
            return []
        bound = since - FIND_SLACK
        found: list[ProviderBatchInfo] = []
        async with aclosing(self._batches_back_to(bound)) as batches:
            async for info in batches:
                if info.request_counts.total == request.line_count:
                    found.append(info)
        return list(reversed(found))

    async def _batches_back_to(self, bound: datetime) -> AsyncGenerator[ProviderBatchInfo, None]:
        """The account's batches created at or after `bound`, newest first."""
        list_batches = self._client.messages.batches.list
        async with aclosing(self._pages("batches.list", lambda: list_batches(limit=BATCH_PAGE_LIMIT))) as pages:
            async for page in pages:
                for batch in page.data:
                    info = batch_info(batch)
                    if info.created_at is None or info.created_at < bound:
                        return
                    yield info

    # -- following ---------------------------------------------------------------------------------------
    async def retrieve(self, batch_id: str) -> ProviderBatchInfo:
        batch = await self._call("batches.retrieve", lambda: self._client.messages.batches.retrieve(batch_id))
        return batch_info(batch)

    async def cancel(self, batch_id: str) -> ProviderBatchInfo:
        """The batch in `canceling`; cancelling an ended batch is a 400 (PermanentProviderError)."""
        return batch_info(await self._call("batches.cancel", lambda: self._client.messages.batches.cancel(batch_id)))

    def result_lines(self, batch: ProviderBatchInfo) -> AsyncIterator[bytes]:
        """The batch's results file (`results_url`, one line a request), streamed as raw lines: a line the SDK's
        own decoder would refuse still reaches the ingest, which counts it unreadable."""
        return self._result_lines(batch.id)

    async def _result_lines(self, batch_id: str) -> AsyncIterator[bytes]:
        started = time.perf_counter()
        try:
            async with self._client.messages.batches.with_streaming_response.results(batch_id) as response:
                async for line in split_lines(response.iter_bytes()):
                    yield line
        except anthropic.APIError as error:
            self._record("batches.results", call_status(error), started)
            raise map_sdk_error(error) from error
        except anthropic.AnthropicError as error:  # no results_url yet: the SDK's own check
            self._record("batches.results", "not_ready", started)
            raise RetryableProviderError(f"results of {batch_id} are not ready on {NAME}: {error}") from error
        except httpx2.HTTPError as error:  # the stream broke after the response started
            self._record("batches.results", "interrupted", started)
            raise RetryableProviderError(f"download of {batch_id} results from {NAME} interrupted: {error}") from error
        self._record("batches.results", "ok", started)

    # -- cleaning up ---------------------------------------------------------------------------------------
    async def delete_results(self, batch_id: str | None, file_ids: Collection[str]) -> None:
        """Delete the Message Batch (and so its results), quietly: gone already is fine, and one still processing
        is refused by Anthropic and left alone (warned). There are no files."""
        if batch_id is None:
            return
        try:
            await self._call("batches.delete", lambda: self._client.messages.batches.delete(batch_id))
        except ProviderNotFound:
            pass
        except PermanentProviderError as error:
            logger.warning("could not delete message batch %s: %s", batch_id, error)

    async def delete_uploads(self, key: str, keep: Collection[str | None] = ()) -> None:
        """Nothing is uploaded to Anthropic."""

    # -- models ------------------------------------------------------------------------------------------
    async def list_models(self) -> list[str]:
        """The ids of the models the account can use (active and deprecated ones), every page."""
        list_models = self._client.models.list
        pages = self._pages("models.list", lambda: list_models(limit=MODEL_PAGE_LIMIT))
        return [str(model.id) async for page in pages for model in page.data]


async def split_lines(chunks: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
    """Non-blank lines of a byte stream, split on b"\\n" only, without their line break (b"\\r\\n" too). Linear in
    the bytes read, however long a line is."""
    pending: list[bytes] = []
    async for chunk in chunks:
        *complete, rest = chunk.split(b"\n")
        if complete:
            complete[0] = b"".join([*pending, complete[0]])
            pending = []
            for line in complete:
                if line.strip():
                    yield line.rstrip(b"\r")
        pending.append(rest)
    last = b"".join(pending)
    if last.strip():
        yield last.rstrip(b"\r")
