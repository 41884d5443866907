"""What the batch lifecycle asks of a provider's batch API, whatever the provider: one protocol, provider-neutral
results, and two kinds of error. Each provider is one module of `service/providers/` implementing it; only the
composition root (`service/app.py`) picks and builds them.

The operations are those a chunk needs over its life: send its lines (upload a file where the provider takes one,
then create the batch with the chunk's key, once), find what an earlier attempt at the chunk already created (by
the key where the provider keeps metadata; by the creation window and the request count where it keeps none),
follow the batch, read its result lines, cancel it, and delete what it left behind.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Collection, Iterator, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime
from enum import StrEnum
from pathlib import Path
from typing import Any, Protocol


class ProviderError(Exception):
    """A call to the provider did not succeed."""

    def __init__(self, message: str, *, status_code: int | None = None) -> None:
        super().__init__(message)
        self.status_code = status_code


class RetryableProviderError(ProviderError):
    """Rate limits, 5xx, timeouts, connection failures: the work waits, it is never dropped."""

    def __init__(self, message: str, *, status_code: int | None = None, retry_after: float | None = None):
        super().__init__(message, status_code=status_code)
        self.retry_after = retry_after


class PermanentProviderError(ProviderError):
    """The provider refused the request itself (400, 401, 403, 404, 413, 422...): retrying cannot help."""


class ProviderNotFound(PermanentProviderError):
    pass


class BatchEnd(StrEnum):
    """How a provider batch ended, in our words (each provider has its own statuses)."""

    COMPLETED = "completed"  # it ran: every request has a result line (succeeded or failed)
    FAILED = "failed"  # refused as a whole (validation); no request ran
    EXPIRED = "expired"  # its window closed: requests without a result never ran
    CANCELLED = "cancelled"  # cancelled: requests without a result never ran
    LOST = "lost"  # the provider no longer knows it (404): its results are gone


@dataclass(frozen=True)
class RequestCounts:
    total: int = 0
    completed: int = 0
    failed: int = 0


@dataclass(frozen=True)
class ProviderBatchInfo:
    """A provider batch as the provider last described it."""

    id: str
    status: str  # the provider's own word for its state, as shown to people
    ended: BatchEnd | None = None  # None while it runs
    input_file_id: str | None = None
    output_file_id: str | None = None
    error_file_id: str | None = None
    request_counts: RequestCounts = field(default_factory=RequestCounts)
    metadata: dict[str, str] = field(default_factory=dict)
    errors: list[dict[str, Any]] = field(default_factory=list)
    created_at: datetime | None = None

    @property
    def is_terminal(self) -> bool:
        return self.ended is not None

    def file_ids(self) -> list[str]:
        """The files this batch reads and writes on the provider (none where requests go inline)."""
        return [file_id for file_id in (self.input_file_id, self.output_file_id, self.error_file_id) if file_id]


@dataclass(frozen=True)
class ChunkRequest:
    """One chunk as a provider is asked to run it."""

    key: str  # the chunk's name: unique, carried by its uploads and (where kept) by its batch's metadata
    path: Path | None  # its request lines, one JSON object a line, in the provider's line format (once spooled)
    line_count: int
    model: str
    metadata: Mapping[str, str]  # what the provider batch is tagged with, where the provider keeps tags

    def lines(self) -> Path:
        if self.path is None:
            raise PermanentProviderError(f"the lines of {self.key} were not spooled")
        return self.path

    def unlink(self) -> ChunkRequest:
        """The same request once its spooled lines are deleted (sent, or refused for good)."""
        if self.path is not None:
            self.path.unlink(missing_ok=True)
        return replace(self, path=None)


class BatchProvider(Protocol):
    """One provider's batch API. Every method raises only ProviderError subclasses."""

    name: str
    # Its batches carry the chunk's key (metadata), so `find` names them exactly; False: `find` matches by
    # creation window and request count, and the lifecycle creates one such chunk at a time.
    tags_batches: bool

    async def upload(self, request: ChunkRequest) -> str | None:
        """Upload the chunk's lines as an input file; its id, or None when the provider takes the requests
        inline with `create` (then nothing is uploaded)."""
        ...

    async def create(self, request: ChunkRequest, input_file_id: str | None) -> ProviderBatchInfo:
        """Create the provider batch, one try only: no provider makes a create idempotent, so a blind retry
        after an error that had in fact created it would make a second one (callers `find` first)."""
        ...

    async def find(self, request: ChunkRequest, since: datetime | None) -> list[ProviderBatchInfo]:
        """The provider batches an earlier attempt at this chunk created (after `since`, when the chunk was
        first sent), oldest first: normally none or one."""
        ...

    async def retrieve(self, batch_id: str) -> ProviderBatchInfo: ...

    async def cancel(self, batch_id: str) -> ProviderBatchInfo: ...

    def result_lines(self, batch: ProviderBatchInfo) -> AsyncIterator[bytes]:
        """Every result line of an ended batch (its successes and its failures), streamed."""
        ...

    async def delete_results(self, batch_id: str | None, file_ids: Collection[str]) -> None:
        """Delete what the provider keeps of a finished chunk: these files (its input and results), and the
        batch itself where the provider deletes batches. Gone already is fine."""
        ...

    async def delete_uploads(self, key: str, keep: Collection[str | None] = ()) -> None:
        """Delete the uploads named after chunk `key` but those in `keep` (none where nothing is uploaded)."""
        ...

    async def list_models(self) -> list[str]:
        """The ids of the models the account can use: the live source of truth."""
        ...

    async def close(self) -> None: ...


class Providers:
    """The providers this deployment runs, by name; built by the composition root."""

    def __init__(self, providers: Mapping[str, BatchProvider]) -> None:
        self._providers = dict(providers)

    def get(self, name: str) -> BatchProvider:
        return self._providers[name]

    def __iter__(self) -> Iterator[BatchProvider]:
        return iter(self._providers.values())

    def __contains__(self, name: object) -> bool:
        return name in self._providers

    async def close(self) -> None:
        for provider in self._providers.values():
            await provider.close()
