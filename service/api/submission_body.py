"""Reading a submission as it streams in: JSON (`{"items": [...], ...}`) or NDJSON (a header line, then one
item per line), in bounded memory and bounded time.

Each item is checked the moment it is complete and staged aside (service/batches/staging.py); the first bad
one ends the request with a 422 naming it, without reading the rest into memory. Values JSON has no place
for (NaN, Infinity, numbers beyond a double or a 64-bit integer, unpaired surrogates) are refused with the
field they stand in. The raw body is hashed as it passes, for Idempotency-Key.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

import ijson
import orjson
from fastapi import Request

from service.api.json_stream import Builder, Feeder, Refused, json_refusal, parse_bytes, too_deep
from service.api.limits import MAX_JSON_DEPTH, may_nest_deeper_than, nests_deeper_than
from service.batches.staging import StagedItems
from service.kit.cooperative import give_way
from service.kit.problems import Problem, invalid, limit_exceeded
from service.pipeline.errors import SubmissionError
from service.pipeline.validation import ItemChecker, output_limit

NDJSON = "application/x-ndjson"
PIECE_BYTES = 256 * 1024  # the most of a body parsed between two turns of the event loop (a few ms)
# Every digit read as "9": a run of 19 nines is a run of 19 digits, an integer that may not fit in 64 bits. A
# translate and a substring search are C loops, several times faster than a regex over each 2 KB line.
DIGITS_AS_NINES = bytes.maketrans(b"012345678", b"999999999")
LONG_DIGITS = b"9" * 19
JSON_TYPES = ("application/json", "text/json")


def media_type(request: Request) -> str:
    return request.headers.get("content-type", "").split(";", 1)[0].strip().lower()


def submission_format(request: Request) -> str:
    """`json` or `ndjson`; 415 for anything else (a missing Content-Type is read as JSON)."""
    kind = media_type(request)
    if kind == NDJSON:
        return "ndjson"
    if kind in ("", *JSON_TYPES) or kind.endswith("+json"):
        return "json"
    raise Problem(
        415,
        "unsupported-media-type",
        "Unsupported media type",
        f"Content-Type {kind!r} cannot be read: send the batch as application/json (one object with an items "
        f"list) or as {NDJSON} (a header line, then one item per line)",
        field="Content-Type",
    )


class BodyReader:
    """The request body as an async file (what ijson reads), hashed as it passes, with an idle timeout: a
    client that stops sending in the middle of its body gets 408 instead of holding the request open."""

    def __init__(self, request: Request, idle_timeout: float) -> None:
        self._chunks: AsyncIterator[bytes] = request.stream().__aiter__()
        self._idle_timeout = idle_timeout
        self._hash = hashlib.sha256()
        self._rest = memoryview(b"")  # what is left of a chunk larger than PIECE_BYTES
        self.consumed = 0
        self.finished = False

    async def next_chunk(self) -> bytes:
        """The next piece of the body, at most PIECE_BYTES: a server (or an in-process client) may hand over
        megabytes at once, and each piece is parsed before the event loop runs again."""
        if self._rest:
            piece, self._rest = bytes(self._rest[:PIECE_BYTES]), self._rest[PIECE_BYTES:]
            return piece
        if self.finished:
            return b""
        try:
            async with asyncio.timeout(self._idle_timeout):
                chunk = await anext(self._chunks, b"")
        except TimeoutError:
            raise Problem(
                408,
                "request-timeout",
                "Request timeout",
                f"the request body stopped arriving for {self._idle_timeout:g}s (REQUEST_BODY_TIMEOUT_SECONDS)",
            ) from None
        if not chunk:
            self.finished = True
            return b""
        self._hash.update(chunk)
        self.consumed += len(chunk)
        if len(chunk) > PIECE_BYTES:
            self._rest = memoryview(chunk)[PIECE_BYTES:]
            return chunk[:PIECE_BYTES]
        return chunk

    async def read(self, size: int = -1) -> bytes:
        """ijson's read(): the next chunk that is not empty, or b"" at the end (read(0) is ijson asking for the
        type of what read() returns: nothing is consumed)."""
        if size == 0:
            return b""
        while True:
            chunk = await self.next_chunk()
            if chunk or self.finished:
                return chunk

    async def drain(self) -> None:
        """Read (and drop) what the client still sends, so it can read our answer instead of a reset."""
        while await self.next_chunk():
            pass

    def hexdigest(self) -> str:
        return self._hash.hexdigest()


@dataclass
class Limits:
    max_items: int
    max_item_bytes: int  # the largest item that could still fit a provider batch file
    checker: ItemChecker


@dataclass
class RawSubmission:
    header: dict[str, Any]
    items: StagedItems
    body_hash: str = ""
    format: str = "json"


async def _feed_body(reader: BodyReader, builder: Builder) -> None:
    """The whole body through `builder`, chunk by chunk, yielding to the event loop between chunks."""
    feeder = Feeder(builder)
    try:
        while chunk := await reader.next_chunk():
            feeder.feed(chunk)
            await give_way()
        feeder.feed(b"", final=True)
    except (ijson.JSONError, UnicodeDecodeError) as error:
        if builder.top is None and not builder.stack and reader.consumed == 0:
            raise _Empty from None
        raise feeder.refusal(error) from None


class _Empty(Exception):
    """The body holds nothing at all."""


async def _parse_json(reader: BodyReader, on_item: Callable[[Any, int], None]) -> dict[str, Any]:
    builder = Builder(on_item)
    try:
        await _feed_body(reader, builder)
    except _Empty:
        raise SubmissionError("the body is empty: send a JSON object with an items list", field="body") from None
    if builder.top is None:
        raise SubmissionError("the body is empty: send a JSON object with an items list", field="body")
    if not builder.items_seen:
        raise SubmissionError("items: a batch needs an items list (at least one item)", field="items")
    return builder.top


def _diagnose_line(line: bytes, number: int) -> SubmissionError:
    """Why an NDJSON line is not JSON, said of the field (the line is read again event by event)."""
    builder, error = parse_bytes(line)
    if isinstance(error, Refused):
        inner = error.error
        refusal = inner if isinstance(inner, SubmissionError) else SubmissionError(inner.detail, field="line")
    elif error is not None:
        refusal = json_refusal(builder.value_path(), error)
    else:
        refusal = SubmissionError("is not a JSON value", field="line")
    where = f"line {number}" + (f", {refusal.field}" if refusal.field and refusal.field != "body" else "")
    return SubmissionError(f"{where}: {refusal.message}", field=refusal.field)


def _parse_line(line: bytes, number: int) -> Any:
    """One NDJSON line. orjson is fast but reads an integer beyond 64 bits as a float without a word: a line
    with a long run of digits is read again strictly (as a JSON body is read), which refuses it."""
    try:
        value = orjson.loads(line)
    except orjson.JSONDecodeError:
        raise _diagnose_line(line, number) from None
    if LONG_DIGITS in line.translate(DIGITS_AS_NINES) and parse_bytes(line)[1] is not None:
        raise _diagnose_line(line, number)
    return value


async def _lines(reader: BodyReader, max_line: int) -> AsyncIterator[tuple[int, bytes]]:
    """The body's lines, numbered from 1. Each piece is searched once and a long line is joined once (appending
    to it piece by piece and splitting it again each time was quadratic in its length)."""
    parts: list[bytes] = []  # the line being read, so far
    size = 0
    number = 0
    while chunk := await reader.next_chunk():
        start = 0
        while (end := chunk.find(b"\n", start)) >= 0:
            parts.append(chunk[start:end])
            line = b"".join(parts) if len(parts) > 1 else parts[0]
            parts, size = [], 0
            number += 1
            start = end + 1
            if line.strip():
                yield number, line
        if start < len(chunk):
            parts.append(chunk[start:])
            size += len(chunk) - start
        if size > max_line:
            raise limit_exceeded(
                f"line {number + 1} of the NDJSON body is longer than {max_line} bytes, more than one item can be "
                "(it could never fit in a provider batch file)",
                field=f"line {number + 1}",
                setting="MAX_BYTES_PER_PROVIDER_BATCH",
                maximum=max_line,
            )
        await give_way()
    last = b"".join(parts)
    if last.strip():
        yield number + 1, last


@dataclass
class _Stager:
    """Checks and stages items as the parser hands them over."""

    limits: Limits
    staged: StagedItems
    item_start: int = 0
    errors: list[Any] = field(default_factory=list)

    def add(self, item: Any, index: int) -> None:
        if index >= self.limits.max_items:
            raise Refused(
                limit_exceeded(
                    f"items has more than {self.limits.max_items} entries; a batch holds at most MAX_ITEMS_PER_BATCH"
                    f" = {self.limits.max_items} (split the work over several batches)",
                    field="items",
                    setting="MAX_ITEMS_PER_BATCH",
                    maximum=self.limits.max_items,
                )
            )
        metadata = item.get("metadata") if isinstance(item, dict) else None
        metadata_json = orjson.dumps(metadata) if metadata is not None else None
        try:
            custom_id, body, _metadata = self.limits.checker.check(
                item, index, len(metadata_json) if metadata_json else 0
            )
        except SubmissionError as error:
            raise Refused(error) from None
        body_json = orjson.dumps(body)
        if len(body_json) > self.limits.max_item_bytes:
            raise Refused(
                limit_exceeded(
                    f"items[{index}].body (custom_id {custom_id!r}) is {len(body_json)} bytes; no line larger than "
                    f"MAX_BYTES_PER_PROVIDER_BATCH = {self.limits.max_item_bytes} fits in a provider batch file",
                    field=f"items[{index}].body",
                    setting="MAX_BYTES_PER_PROVIDER_BATCH",
                    maximum=self.limits.max_item_bytes,
                )
            )
        self.staged.add(custom_id, body_json, metadata_json, "response_format" in body, output_limit(body))


async def read_submission(reader: BodyReader, kind: str, limits: Limits, staged: StagedItems) -> RawSubmission:
    """The header and the staged items of a submission. Raises SubmissionError or Problem (422/408/413); the
    caller drains the body and discards the staged items then."""
    stager = _Stager(limits, staged)
    try:
        if kind == "ndjson":
            header = await _read_ndjson(reader, stager)
        else:
            header = await _parse_json(reader, stager.add)
    except Refused as refused:
        raise refused.error from None
    if staged.count == 0:
        raise SubmissionError("items must not be empty", field="items")
    return RawSubmission(header=header, items=staged, body_hash=reader.hexdigest(), format=kind)


def _check_depth(line: bytes, value: Any, number: int, *, header: bool) -> None:
    """The same depth rule as in a JSON body: from each header field's value, and from each item."""
    if not may_nest_deeper_than(line, MAX_JSON_DEPTH):
        return
    if header and isinstance(value, dict):
        for key, part in value.items():
            if nests_deeper_than(part, MAX_JSON_DEPTH):
                raise too_deep(f"line {number}, {key}")
    elif nests_deeper_than(value, MAX_JSON_DEPTH):
        raise too_deep(f"line {number}")


async def _read_ndjson(reader: BodyReader, stager: _Stager) -> dict[str, Any]:
    header: dict[str, Any] | None = None
    index = 0
    async for number, line in _lines(reader, stager.limits.max_item_bytes + 64 * 1024):
        value = _parse_line(line, number)
        _check_depth(line, value, number, header=header is None)
        if header is None:
            if not isinstance(value, dict):
                raise invalid("line 1 of an NDJSON submission is the batch header: a JSON object", field="line 1")
            if "items" in value:
                raise invalid(
                    "line 1 is the header: in NDJSON the items follow it, one per line, not inside it",
                    field="line 1.items",
                )
            header = value
            continue
        try:
            stager.add(value, index)
        except Refused as refused:
            error = refused.error
            if isinstance(error, SubmissionError):
                raise SubmissionError(f"line {number}: {error.message}", field=error.field) from None
            raise
        index += 1
    if header is None:
        raise SubmissionError("the body is empty: send a header line, then one item per line", field="body")
    return header


async def read_json_object(reader: BodyReader) -> dict[str, Any] | None:
    """A small JSON body (a retry's), read as strictly as a submission: None when it is empty; 422 naming the
    field for NaN, Infinity, numbers too large and unpaired surrogates."""
    builder = Builder(None)
    try:
        await _feed_body(reader, builder)
    except _Empty:
        return None
    except Refused as refused:
        raise refused.error from None
    if builder.top is None:
        raise SubmissionError("the body must be a JSON object", field="body")
    return builder.top
