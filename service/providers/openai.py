"""OpenAI's Files and Batches API through the official `openai` SDK, for OpenAI itself and for the OpenAI-compatible
endpoints an operator names (Azure OpenAI, DeepInfra, a self-hosted SGLang...): one `OpenAIBatchProvider` each,
told apart by `name`. Only the composition root imports this module.

A chunk's input file is named after its key (`upload_filename`), and its batch carries the key in its metadata
(`CHUNK_METADATA_KEY`), so `find` recognises what an earlier attempt created. SDK exceptions are mapped onto the
protocol's two kinds, as for Groq: RetryableProviderError (408, 409, 429, 5xx, timeouts, connection failures;
Retry-After honoured) and PermanentProviderError (other 4xx; 404 is ProviderNotFound).
"""

from __future__ import annotations

import email.utils
import logging
import math
import time
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable, Collection, Mapping
from contextlib import aclosing
from datetime import UTC, datetime
from typing import Any, Protocol, Self, TypeVar, cast

import httpx
import httpx2
import openai
from openai import AsyncOpenAI
from openai.types import Batch, FileObject

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

NAME = "openai"
DEFAULT_ENDPOINT = "/v1/chat/completions"
ENDPOINT_METADATA_KEY = "endpoint"  # ChunkRequest.metadata may name the chunk's endpoint (see `create`)
ENDED = {
    "completed": BatchEnd.COMPLETED,
    "failed": BatchEnd.FAILED,
    "expired": BatchEnd.EXPIRED,
    "cancelled": BatchEnd.CANCELLED,
}
BATCH_PAGE_LIMIT = 100  # GET /batches allows 1-100
FILE_PAGE_LIMIT = 1000  # GET /files allows 1-10,000
FIND_SLACK_SECONDS = 600  # clock skew between us and the provider
METADATA_PAIRS, METADATA_KEY_CHARS, METADATA_VALUE_CHARS = 16, 64, 512

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


def _describe(error: openai.APIStatusError) -> str:
    """The SDK unwraps OpenAI's `{"error": {...}}` into `body`; compatible servers may not wrap it at all."""
    body = error.body
    if isinstance(body, Mapping):
        inner = body.get("error", body)
        if isinstance(inner, Mapping) and inner.get("message"):
            code, param = inner.get("code"), inner.get("param")
            prefix = f"{error.status_code} {code}" if code else str(error.status_code)
            return f"{prefix}: {inner['message']}" + (f" (param {param})" if param else "")
    return f"{error.status_code}: {error.message}"


def map_sdk_error(error: Exception, provider: str = NAME) -> ProviderError:
    """Classify an SDK exception the way our workers need it; messages name the provider."""
    if isinstance(error, openai.APITimeoutError):
        return RetryableProviderError(f"timed out waiting for {provider}")
    if isinstance(error, openai.APIConnectionError):
        return RetryableProviderError(f"could not connect to {provider}: {error.message}")
    if isinstance(error, openai.APIStatusError):
        status, message = error.status_code, f"{provider}: {_describe(error)}"
        if status in (408, 409, 429) or status >= 500:
            retry_after = retry_after_seconds(error.response.headers)
            return RetryableProviderError(message, status_code=status, retry_after=retry_after)
        if status == 404:
            return ProviderNotFound(message, status_code=status)
        return PermanentProviderError(message, status_code=status)
    if isinstance(error, openai.APIResponseValidationError):
        return RetryableProviderError(f"unexpected response from {provider}: {error.message}")
    return ProviderError(f"{provider}: {error}")


def call_status(error: openai.OpenAIError) -> str:
    """The `status` label of a failed call in the provider metrics."""
    if isinstance(error, openai.APIStatusError):
        return str(error.status_code)
    if isinstance(error, openai.APITimeoutError):
        return "timeout"
    if isinstance(error, openai.APIConnectionError):
        return "connection_error"
    return "error"


# -- what a batch says -------------------------------------------------------------------------------------
def _as_dict(value: Any) -> dict[str, Any]:
    if value is None:
        return {}
    if isinstance(value, Mapping):
        return dict(value)
    dump = getattr(value, "model_dump", None)
    return dict(dump()) if callable(dump) else {}


def _errors_of(raw_errors: Any) -> list[dict[str, Any]]:
    """OpenAI sends `{object, data: [...]}`; a compatible server may send the bare array. Accept both."""
    if raw_errors is None:
        return []
    entries = raw_errors if isinstance(raw_errors, list) else _as_dict(raw_errors).get("data") or []
    return [_as_dict(entry) for entry in entries]


def naive_utc(unix_seconds: Any) -> datetime | None:
    """Unix seconds as naive UTC, like every timestamp in the database."""
    if not isinstance(unix_seconds, int | float) or isinstance(unix_seconds, bool):
        return None
    return datetime.fromtimestamp(unix_seconds, UTC).replace(tzinfo=None)


def batch_info(batch: Batch) -> ProviderBatchInfo:
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
        created_at=naive_utc(batch.created_at),
    )


def batch_metadata(metadata: Mapping[str, str]) -> dict[str, str]:
    """What OpenAI takes of a chunk's tags: 16 pairs (the chunk key first), keys of at most 64 characters (longer
    ones are left out), values cut to 512 characters."""
    first = sorted(metadata.items(), key=lambda pair: pair[0] != CHUNK_METADATA_KEY)
    fitting = [(key, str(value)[:METADATA_VALUE_CHARS]) for key, value in first if len(key) <= METADATA_KEY_CHARS]
    return dict(fitting[:METADATA_PAIRS])


def _key_tag(key: str) -> str:
    """The chunk key as the batch's metadata carries it (cut like any value)."""
    return key[:METADATA_VALUE_CHARS]


class _NewestFirst:
    """Whether a list seen so far is newest first (OpenAI's is, by observation; compatible servers may differ)."""

    def __init__(self) -> None:
        self.holds = True
        self.oldest: float | None = None

    def see(self, created_at: Any) -> None:
        if not isinstance(created_at, int | float):
            return  # a compatible server's batch without a time: it neither confirms nor breaks the order
        if self.oldest is not None and created_at > self.oldest:
            self.holds = False
        self.oldest = created_at if self.oldest is None else min(self.oldest, created_at)

    def passed(self, bound: float | None) -> bool:
        """True once everything still to come is older than `bound`."""
        return bound is not None and self.holds and self.oldest is not None and self.oldest < bound


class OpenAIBatchProvider:
    """Files + Batches on OpenAI or an OpenAI-compatible endpoint (the provider protocol). Every method raises only
    ProviderError subclasses."""

    tags_batches = True  # its batches carry the chunk key in their metadata

    def __init__(
        self,
        client: AsyncOpenAI,
        *,
        name: str = NAME,
        completion_window: str = "24h",
        endpoint: str = DEFAULT_ENDPOINT,
    ) -> None:
        self._client = client
        self.name = name
        self.completion_window = completion_window
        self.endpoint = endpoint

    @classmethod
    def connect(
        cls,
        *,
        name: str,
        api_key: str | None,
        base_url: str | None,
        timeout_seconds: float,
        max_retries: int,
        completion_window: str = "24h",
        endpoint: str = DEFAULT_ENDPOINT,
        http_client: httpx.AsyncClient | httpx2.AsyncClient | None = None,
    ) -> OpenAIBatchProvider:
        """`api_key`/`base_url` None: the SDK reads OPENAI_API_KEY/OPENAI_BASE_URL (which includes `/v1`).
        `http_client`: the SDK takes an `httpx2` client, and still an `httpx` one."""
        client = AsyncOpenAI(
            api_key=api_key,
            base_url=base_url,
            timeout=httpx2.Timeout(timeout_seconds, connect=min(5.0, timeout_seconds)),
            max_retries=max_retries,
            http_client=cast(httpx2.AsyncClient | None, http_client),
        )
        return cls(client, name=name, completion_window=completion_window, endpoint=endpoint)

    async def close(self) -> None:
        await self._client.close()

    def _record(self, endpoint: str, status: str, started: float) -> None:
        record_provider_call(endpoint, status, time.perf_counter() - started, provider=self.name)

    async def _call(self, endpoint: str, operation: Callable[[], Awaitable[T]]) -> T:
        started = time.perf_counter()
        try:
            result = await operation()
        except openai.OpenAIError as error:
            self._record(endpoint, call_status(error), started)
            raise map_sdk_error(error, self.name) from error
        self._record(endpoint, "ok", started)
        return result

    async def _pages(self, endpoint: str, first: Callable[[], Awaitable[PageT]]) -> AsyncGenerator[PageT, None]:
        """Each page of a list, following the SDK's cursor (`after` the last id while `has_more`)."""
        page = await self._call(endpoint, first)
        yield page
        while page.has_next_page():
            page = await self._call(endpoint, page.get_next_page)
            yield page

    # -- sending -------------------------------------------------------------------------------------------
    async def upload(self, request: ChunkRequest) -> str | None:
        """The chunk's lines as a `batch` file named after its key, streamed from disk (never loaded whole). The
        SDK may retry it: a stray copy carries the key's name, and `delete_uploads` clears it."""
        filename = upload_filename(request.key)
        with request.lines().open("rb") as handle:
            created = await self._call(
                "files.create",
                lambda: self._client.files.create(file=(filename, handle, "application/jsonl"), purpose="batch"),
            )
        return str(created.id)

    async def create(self, request: ChunkRequest, input_file_id: str | None) -> ProviderBatchInfo:
        """One try only (no idempotency key: a blind retry could make a second batch; callers `find` first).

        The endpoint is the one the chunk's lines call: `request.metadata["endpoint"]` when the service tags the
        chunk with it (ChunkRequest has no endpoint field), else this provider's default. Metadata is cut to what
        OpenAI accepts (`batch_metadata`)."""
        if input_file_id is None:
            raise PermanentProviderError(f"{self.name} runs a batch from an uploaded input file; none was given")
        endpoint = request.metadata.get(ENDPOINT_METADATA_KEY) or self.endpoint
        batch = await self._call(
            "batches.create",
            lambda: self._client.with_options(max_retries=0).batches.create(
                input_file_id=input_file_id,
                endpoint=cast(Any, endpoint),  # the SDK lists OpenAI's endpoints; a compatible server may have others
                completion_window=cast(Any, self.completion_window),
                metadata=batch_metadata(request.metadata),
            ),
        )
        return batch_info(batch)

    async def find(self, request: ChunkRequest, since: datetime | None) -> list[ProviderBatchInfo]:
        """The batches whose metadata carries this chunk's key, oldest first.

        The list has no filter and comes newest first: it is read page by page back to `since` less 10 minutes of
        clock skew (to its end when `since` is None, or when it turns out not to be newest first)."""
        tag = _key_tag(request.key)
        bound = None if since is None else since.replace(tzinfo=UTC).timestamp() - FIND_SLACK_SECONDS
        found: list[ProviderBatchInfo] = []
        async with aclosing(self._batches_back_to(bound)) as batches:
            async for batch in batches:
                if isinstance(batch.metadata, Mapping) and batch.metadata.get(CHUNK_METADATA_KEY) == tag:
                    found.append(batch_info(batch))
        return sorted(found, key=lambda info: info.created_at or datetime.min)

    async def _batches_back_to(self, bound: float | None) -> AsyncGenerator[Batch, None]:
        """The account's batches page by page, until a page ends before `bound` (None: all of them)."""
        order = _NewestFirst()
        list_batches = self._client.batches.list
        async with aclosing(self._pages("batches.list", lambda: list_batches(limit=BATCH_PAGE_LIMIT))) as pages:
            async for page in pages:
                for batch in page.data:
                    order.see(batch.created_at)
                    yield batch
                if order.passed(bound):
                    return

    # -- following ---------------------------------------------------------------------------------------
    async def retrieve(self, batch_id: str) -> ProviderBatchInfo:
        return batch_info(await self._call("batches.retrieve", lambda: self._client.batches.retrieve(batch_id)))

    async def cancel(self, batch_id: str) -> ProviderBatchInfo:
        """The batch in `cancelling` (its partial results come once it is `cancelled`). Cancelling a finished batch
        is refused for good: OpenAI answers 400; a gateway's 409 says the same here, not "try again"."""
        try:
            batch = await self._call("batches.cancel", lambda: self._client.batches.cancel(batch_id))
        except RetryableProviderError as error:
            if error.status_code == 409:
                raise PermanentProviderError(str(error), status_code=409) from error
            raise
        return batch_info(batch)

    def result_lines(self, batch: ProviderBatchInfo) -> AsyncIterator[bytes]:
        """The output file's lines, then the error file's, streamed."""
        return self._result_lines(batch)

    async def _result_lines(self, batch: ProviderBatchInfo) -> AsyncIterator[bytes]:
        for file_id in (batch.output_file_id, batch.error_file_id):
            if file_id:
                async for line in self.file_lines(file_id):
                    yield line

    async def file_lines(self, file_id: str) -> AsyncIterator[bytes]:
        """The lines of a file, streamed; memory stays flat for any size. Split on b"\\n" only: JSON strings may
        hold U+2028/U+2029/U+0085 unescaped, which a text splitter would cut."""
        started = time.perf_counter()
        try:
            async with self._client.files.with_streaming_response.content(file_id) as response:
                async for line in split_lines(response.iter_bytes()):
                    yield line
        except openai.OpenAIError as error:
            self._record("files.content", call_status(error), started)
            raise map_sdk_error(error, self.name) from error
        except (httpx.HTTPError, httpx2.HTTPError) as error:  # the stream broke after the response started
            self._record("files.content", "interrupted", started)
            raise RetryableProviderError(f"download of {file_id} from {self.name} interrupted: {error}") from error
        self._record("files.content", "ok", started)

    # -- cleaning up ---------------------------------------------------------------------------------------
    async def delete_results(self, batch_id: str | None, file_ids: Collection[str]) -> None:
        """Delete these files, each quietly. OpenAI keeps batches (they cannot be deleted); their files are what
        it stores of ours."""
        for file_id in dict.fromkeys(file_ids):
            await self.delete_quietly(file_id)

    async def delete_uploads(self, key: str, keep: Collection[str | None] = ()) -> None:
        """Delete the `batch` files named after chunk `key`, but those in `keep`."""
        name = upload_filename(key)
        for upload in await self._batch_files():
            if upload.filename == name and upload.purpose == "batch" and upload.id not in keep:
                await self.delete_quietly(upload.id)

    async def _batch_files(self) -> list[FileObject]:
        list_files = self._client.files.list
        pages = self._pages("files.list", lambda: list_files(purpose="batch", limit=FILE_PAGE_LIMIT))
        return [upload async for page in pages for upload in page.data]

    async def delete_quietly(self, file_id: str) -> None:
        """Delete one file; gone already, or refused (the provider's retention takes care of it), is fine.
        Retryable errors propagate."""
        try:
            await self._call("files.delete", lambda: self._client.files.delete(file_id))
        except ProviderNotFound:
            pass
        except PermanentProviderError as error:
            logger.warning("could not delete file %s on %s: %s", file_id, self.name, error)

    # -- models ------------------------------------------------------------------------------------------
    async def list_models(self) -> list[str]:
        """The ids of the models the account can use (GET /models): the live source of truth."""
        pages = self._pages("models.list", lambda: self._client.models.list())
        return [str(model.id) async for page in pages for model in page.data if getattr(model, "id", None)]


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
