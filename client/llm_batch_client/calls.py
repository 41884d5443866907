"""HTTP requests as values: what to send, built by pure functions the sync and the async client share.

A submission is streamed as NDJSON: the header line, then one item per line, read from the items while the body
is being sent, never held in memory as a whole, whatever holds the items (a list, a generator, a Django
`queryset.iterator()`, an async iterable for the async client). A resend reads them again and sends the same
bytes, as the Idempotency-Key needs; an iterator, once read, cannot be (see ItemStream).
"""

from __future__ import annotations

import datetime as dt
import json
import uuid
from collections.abc import AsyncIterable, AsyncIterator, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any
from urllib.parse import quote

JSON = "application/json"
NDJSON = "application/x-ndjson"
CHUNK_BYTES = 64 * 1024  # what the NDJSON body is sent in: many items per chunk, a bounded buffer

Json = Mapping[str, Any]
Items = Iterable[Json] | AsyncIterable[Json]


@dataclass(frozen=True)
class TierSpec:
    """One tier of a cascade: a model of the catalogue (GET /models) and params merged over each body."""

    model: str
    params: Json | None = None

    def as_json(self) -> dict[str, Any]:
        return {"model": self.model, **({"params": dict(self.params)} if self.params is not None else {})}


@dataclass(frozen=True)
class BatchOptions:
    """The batch-wide fields of a submission (or an estimate); None leaves a field to the service's default.

    `cascade` is the tiers, cheapest first (a model name or a TierSpec each); without it `model` (and, with
    fallback, `fallback_model`) or the service's CASCADE setting. `strict` asks strict structured output of the
    models that support it (the service's default: true). `budget_usd` is the most the batch may cost.
    """

    model: str | None = None
    fallback_model: str | None = None
    fallback_params: Json | None = None
    cascade: Sequence[TierSpec | str] | None = None
    strict: bool | None = None
    params: Json | None = None
    output_schema: Json | None = None
    completion_window: str | None = None
    callback_url: str | None = None
    metadata: Json | None = None
    budget_usd: Decimal | str | int | None = None
    reuse: bool | None = None

    def header(self) -> dict[str, Any]:
        """The fields as the service reads them, those left to its defaults omitted."""
        values: dict[str, Any] = {
            "model": self.model,
            "fallback_model": self.fallback_model,
            "fallback_params": _plain(self.fallback_params),
            "cascade": None if self.cascade is None else [_tier(tier) for tier in self.cascade],
            "strict": self.strict,
            "params": _plain(self.params),
            "output_schema": _plain(self.output_schema),
            "completion_window": self.completion_window,
            "callback_url": self.callback_url,
            "metadata": _plain(self.metadata),
            "budget_usd": None if self.budget_usd is None else format(Decimal(str(self.budget_usd)), "f"),
            "reuse": self.reuse,
        }
        return {name: value for name, value in values.items() if value is not None}


def _tier(tier: TierSpec | str) -> dict[str, Any]:
    return TierSpec(tier).as_json() if isinstance(tier, str) else tier.as_json()


def _plain(value: Json | None) -> dict[str, Any] | None:
    return None if value is None else dict(value)


def json_default(value: Any) -> Any:
    """What json.dumps cannot write itself, as a monolith's rows hold it: Decimal, dates and times, UUIDs."""
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, (dt.datetime, dt.date, dt.time)):
        return value.isoformat()
    if isinstance(value, uuid.UUID):
        return str(value)
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


# One encoder for every value (json.dumps with options builds a new one per call, a cost per item of a
# submission), writing ASCII: non-ASCII text as \u escapes, which the C encoder writes faster than UTF-8.
_ENCODER = json.JSONEncoder(separators=(",", ":"), default=json_default)


def encode_json(value: Any) -> bytes:
    return _ENCODER.encode(value).encode("utf-8")


def item_json(item: Json, position: int) -> dict[str, Any]:
    """An item as the service reads it: custom_id, body and, if given, metadata (echoed on its result rows)."""
    if type(item) is not dict and not isinstance(item, Mapping):
        raise TypeError(f"item {position}: expected a mapping with custom_id and body, got {type(item).__name__}")
    if "custom_id" not in item or "body" not in item:
        raise ValueError(f"item {position}: an item needs custom_id and body (got keys {sorted(item)})")
    metadata = item.get("metadata")
    if metadata is None:
        return {"custom_id": item["custom_id"], "body": item["body"]}
    return {"custom_id": item["custom_id"], "body": item["body"], "metadata": metadata}


class _Chunker:
    """Lines gathered into chunks of about CHUNK_BYTES, starting with the header line. The lines are JSON text
    in ASCII (see _ENCODER), so their length is their size, and a chunk is encoded to bytes at once."""

    def __init__(self, first: str) -> None:
        self._parts: list[str] = [first]
        self._size = len(first)

    def add(self, line: str) -> bytes | None:
        self._parts += (line, "\n")
        self._size += len(line) + 1
        return self.flush() if self._size >= CHUNK_BYTES else None

    def flush(self) -> bytes | None:
        if not self._parts:
            return None
        chunk = "".join(self._parts).encode("utf-8")
        self._parts, self._size = [], 0
        return chunk

    def rest(self) -> list[bytes]:
        last = self.flush()
        return [last] if last is not None else []


class ItemStream:
    """An NDJSON submission body read lazily from `items`. It can be sent again (after a lost answer) while
    nothing was read from it yet, or when `items` is not an iterator (a list, a QuerySet, an object whose
    __iter__ starts afresh each time); a generator or another iterator, once read, cannot."""

    def __init__(self, header: Mapping[str, Any], items: Items) -> None:
        self._header = _ENCODER.encode(dict(header)) + "\n"
        self._items = items
        self.started = False
        self.items_read = 0

    @property
    def replayable(self) -> bool:
        return not self.started or not isinstance(self._items, (Iterator, AsyncIterator))

    def _begin(self) -> _Chunker:
        self.started, self.items_read = True, 0
        return _Chunker(self._header)

    def _line(self, item: Json) -> str:
        self.items_read += 1
        return _ENCODER.encode(item_json(item, self.items_read))

    def chunks(self) -> Iterator[bytes]:
        if not isinstance(self._items, Iterable):
            raise TypeError("the sync client needs items it can iterate without await (not an async iterable)")
        chunker = self._begin()
        for item in self._items:
            ready = chunker.add(self._line(item))
            if ready is not None:
                yield ready
        yield from chunker.rest()

    async def achunks(self) -> AsyncIterator[bytes]:
        if not isinstance(self._items, AsyncIterable):
            for chunk in self.chunks():
                yield chunk
            return
        chunker = self._begin()
        async for item in self._items:
            ready = chunker.add(self._line(item))
            if ready is not None:
                yield ready
        for last in chunker.rest():
            yield last


@dataclass(frozen=True)
class Call:
    """One request. `body` is encoded JSON; `stream` an NDJSON body read while sending. `safe` calls (reads,
    estimates) and calls with an `idempotency_key` may be sent again after a lost answer."""

    method: str
    path: str
    params: Mapping[str, str] = field(default_factory=dict)
    body: bytes | None = None
    stream: ItemStream | None = None
    accept: str = JSON
    idempotency_key: str | None = None
    safe: bool = False

    @property
    def content_type(self) -> str | None:
        if self.stream is not None:
            return NDJSON
        return JSON if self.body is not None else None

    @property
    def resendable(self) -> bool:
        if not (self.safe or self.idempotency_key is not None):
            return False
        return self.stream is None or self.stream.replayable

    def headers(self) -> dict[str, str]:
        headers = {"Accept": self.accept}
        if self.content_type is not None:
            headers["Content-Type"] = self.content_type
        if self.idempotency_key is not None:
            headers["Idempotency-Key"] = self.idempotency_key
        return headers

    def after(self, cursor: str) -> Call:
        """The same request for the page after `cursor`."""
        return Call(self.method, self.path, {**self.params, "after": cursor}, accept=self.accept, safe=self.safe)

    def describe(self) -> str:
        return f"{self.method} {self.path}"


def segment(value: str) -> str:
    """A path segment, percent-encoded: `acme/payments#26313` is one segment, not a path and a fragment."""
    return quote(value, safe="")


def query(**values: object) -> dict[str, str]:
    """Query parameters, None left out, booleans as true/false, datetimes in ISO 8601 and UTC (an aware
    datetime is converted; a naive one is taken to be UTC already, as the service's own times are)."""
    out: dict[str, str] = {}
    for name, value in values.items():
        if value is None:
            continue
        if isinstance(value, bool):
            out[name] = "true" if value else "false"
        elif isinstance(value, dt.datetime):
            moment = value if value.tzinfo is None else value.astimezone(dt.timezone.utc).replace(tzinfo=None)
            out[name] = moment.isoformat()
        else:
            out[name] = str(value)
    return out


def submission(
    path: str, items: Items, options: BatchOptions | None, fallback: bool, idempotency_key: str | None, safe: bool
) -> Call:
    """POST /batches or /batches/estimate, its items streamed as NDJSON."""
    if isinstance(items, (Mapping, str, bytes)):
        raise TypeError("items must be an iterable of items (mappings with custom_id and body)")
    header = (options or BatchOptions()).header()
    params = query(fallback=fallback)
    stream = ItemStream(header, items)
    return Call("POST", path, params, stream=stream, idempotency_key=idempotency_key, safe=safe)


def new_idempotency_key() -> str:
    return f"llmb-{uuid.uuid4()}"
