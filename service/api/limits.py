"""Limits on input, each configurable (README explains the defaults). Over a limit: 413 (the body) or 422 (a
part of it), problem+json naming the setting; nothing is stored.

The body limit is checked before reading (Content-Length) and while reading (a chunked or lying client), so
an oversized request is never buffered whole.
"""

from __future__ import annotations

from typing import Any

import orjson
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from starlette.datastructures import Headers
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from service.api.errors import problem_response
from service.api.request_bodies import BatchHeader
from service.kit.problems import limit_exceeded
from service.pipeline.expectations import response_format_schema
from service.settings import Settings

MEBIBYTE = 1024 * 1024
# JSON nesting allowed in the free-form parts of a request (bodies, params, schemas, metadata). Real ones nest a
# few levels; much deeper input would only exhaust the recursion of the JSON Schema and JSON libraries (500).
MAX_JSON_DEPTH = 64
# The largest whole number a query parameter may carry: what every database column it is compared with holds
# (PostgreSQL's INTEGER; SQLite's 2^63 is wider). Larger: 422 naming the parameter, not the driver's overflow.
MAX_QUERY_INT = 2**31 - 1


class RequestTooLarge(StarletteHTTPException):
    """Raised while the body is read. An HTTPException, so FastAPI passes it on instead of turning it into a
    400 "error parsing the body"."""

    def __init__(self, limit: int) -> None:
        super().__init__(413, f"request body larger than {limit} bytes")
        self.limit = limit


def _too_large_response(limit: int) -> JSONResponse:
    return problem_response(
        413,
        "request-too-large",
        "Request too large",
        f"the request body is larger than MAX_REQUEST_BYTES ({limit} bytes = {limit / MEBIBYTE:g} MiB); "
        "split the items over several batches",
        limit="MAX_REQUEST_BYTES",
        maximum=limit,
    )


class BodySizeLimitMiddleware:
    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = Headers(scope=scope).get("content-length")
        if declared is not None and declared.isascii() and declared.isdigit() and int(declared) > self.max_bytes:
            await _too_large_response(self.max_bytes)(scope, receive, send)
            return
        received = 0
        response_started = False

        async def limited_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    raise RequestTooLarge(self.max_bytes)
            return message

        async def tracking_send(message: Message) -> None:
            nonlocal response_started
            if message["type"] == "http.response.start":
                response_started = True
            await send(message)

        try:
            await self.app(scope, limited_receive, tracking_send)
        except RequestTooLarge:
            if response_started:
                raise
            await _too_large_response(self.max_bytes)(scope, receive, send)


async def _request_too_large(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestTooLarge)
    return _too_large_response(exc.limit)


def install_request_limits(app: FastAPI, settings: Settings) -> None:
    app.add_middleware(BodySizeLimitMiddleware, max_bytes=settings.max_request_bytes)
    app.add_exception_handler(RequestTooLarge, _request_too_large)


def json_size(value: Any) -> int | None:
    """Bytes of the compact JSON of `value`; None when it nests too deeply to be serialised."""
    try:
        return len(orjson.dumps(value))
    except (orjson.JSONEncodeError, RecursionError):
        return None


def _check_json_size(value: Any, *, field: str, setting: str, maximum: int) -> None:
    size = json_size(value)
    if size is None or size > maximum:
        shown = "nests too deeply" if size is None else f"is {size} bytes"
        raise limit_exceeded(
            f"{field} {shown}; at most {setting} = {maximum} bytes of JSON",
            field=field,
            setting=setting,
            maximum=maximum,
        )


def nests_deeper_than(value: Any, limit: int) -> bool:
    """Whether the objects and arrays of a JSON value (dicts and lists) nest more than `limit` levels;
    iterative, so any depth can be measured."""
    stack = [(value, 1)] if isinstance(value, dict | list) else []
    while stack:
        node, depth = stack.pop()
        if depth > limit:
            return True
        for child in node.values() if isinstance(node, dict) else node:
            if isinstance(child, dict | list):
                stack.append((child, depth + 1))
    return False


def may_nest_deeper_than(text: bytes, limit: int) -> bool:
    """False when the JSON text cannot nest more than `limit` levels: it opens no more objects and arrays
    than that in all (a count in C, where walking the parsed value costs a Python step per node)."""
    return text.count(b"{") + text.count(b"[") > limit


def check_json_depth(value: Any, field: str) -> None:
    if nests_deeper_than(value, MAX_JSON_DEPTH):
        raise limit_exceeded(
            f"{field} nests objects and arrays more than MAX_JSON_DEPTH = {MAX_JSON_DEPTH} levels deep",
            field=field,
            setting="MAX_JSON_DEPTH",
            maximum=MAX_JSON_DEPTH,
        )


def check_header_limits(header: BatchHeader, settings: Settings) -> None:
    """The configurable limits of a submission's header (its items are checked as they are read)."""
    if len(header.metadata) > settings.max_metadata_keys:
        raise limit_exceeded(
            f"metadata has {len(header.metadata)} keys; at most MAX_METADATA_KEYS = {settings.max_metadata_keys}",
            field="metadata",
            setting="MAX_METADATA_KEYS",
            maximum=settings.max_metadata_keys,
        )
    _check_json_size(
        header.metadata, field="metadata", setting="MAX_METADATA_BYTES", maximum=settings.max_metadata_bytes
    )
    schemas = {
        "output_schema": header.output_schema,
        "params.response_format.json_schema.schema": response_format_schema(header.params),
    }
    for field, schema in schemas.items():
        if schema is not None:
            _check_json_size(
                schema, field=field, setting="MAX_OUTPUT_SCHEMA_BYTES", maximum=settings.max_output_schema_bytes
            )
