"""HTTP routes: Anthropic's Message Batches and Models API at the host root (``/v1/...``; the SDK's
``ANTHROPIC_BASE_URL`` has no ``/v1``), plus ``/_emulator`` control routes.

Creating a batch (parsing up to 256 MB of JSON) and rendering batches run in the thread pool, so the event
loop keeps answering other requests meanwhile.
"""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import orjson
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route

from anthropic_emulator.config import EmulatorConfig
from anthropic_emulator.errors import ApiError, error_body, invalid
from anthropic_emulator.state import Emulator

Handler = Callable[[Request, Emulator], Awaitable[Response]]
Endpoint = Callable[[Request], Awaitable[Response]]
RESULTS_CHUNK = 64 * 1024


def json_response(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(orjson.dumps(body), status, headers=headers, media_type="application/json")


def _emulator(request: Request) -> Emulator:
    emulator: Emulator = request.app.state.emulator
    return emulator


def _base_url(request: Request) -> str:
    """Where this app is served, its mount path included (a `results_url` must lead back here)."""
    return str(request.base_url).rstrip("/") + str(request.scope.get("root_path", "")).rstrip("/")


def _authorise(request: Request, emulator: Emulator) -> None:
    """``x-api-key`` (the documented header) or ``Authorization: Bearer`` (what the SDK 2.x sends)."""
    key = request.headers.get("x-api-key", "").strip()
    if not key:
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        key = token.strip() if scheme.lower() == "bearer" else ""
    if not key:
        raise ApiError(401, "x-api-key header is required")
    expected = emulator.config.api_key
    if expected is not None and not secrets.compare_digest(key, expected):
        raise ApiError(401, "invalid x-api-key")
    version = request.headers.get("anthropic-version")
    if version is None:
        raise invalid("anthropic-version: header is required")
    if version not in emulator.config.api_versions:
        raise invalid(f"anthropic-version: invalid version '{version}'")


def api(handler: Handler) -> Endpoint:
    """Wrap an API handler: slow-down fault, auth and version, injected errors, error objects, request id, log."""

    async def endpoint(request: Request) -> Response:
        emulator = _emulator(request)
        request_id = emulator.request_id()
        try:
            if emulator.faults.slow_seconds > 0:
                await asyncio.sleep(emulator.faults.slow_seconds)
            _authorise(request, emulator)
            fault = emulator.take_fault()
            if fault is not None:
                raise fault
            response = await handler(request, emulator)
        except ApiError as exc:
            response = json_response(error_body(exc.type, exc.message, request_id), exc.status, exc.headers)
        response.headers["request-id"] = request_id
        emulator.log_request(request.method, request.url.path, response.status_code, dict(request.headers))
        return response

    return endpoint


async def _json_body(request: Request) -> Any:
    raw = await request.body()
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise invalid(f"Request body is not valid JSON: {exc}") from exc


def _int_query(request: Request, name: str) -> int | None:
    text = request.query_params.get(name)
    if text is None:
        return None
    try:
        return int(text)
    except ValueError as exc:
        raise invalid(f"{name}: Input should be a valid integer, unable to parse string as an integer") from exc


# -- message batches ---------------------------------------------------------------------------
async def create_batch(request: Request, emulator: Emulator) -> Response:
    limit = emulator.config.max_bytes
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise ApiError(413, "Request exceeds the maximum allowed number of bytes.")
    raw = await request.body()
    if len(raw) > limit:
        raise ApiError(413, "Request exceeds the maximum allowed number of bytes.")
    try:
        payload = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise invalid(f"Request body is not valid JSON: {exc}") from exc
    return json_response(await run_in_threadpool(emulator.create_batch, payload, _base_url(request)))


async def retrieve_batch(request: Request, emulator: Emulator) -> Response:
    batch_id = request.path_params["batch_id"]
    return json_response(await run_in_threadpool(emulator.retrieve_batch, batch_id, _base_url(request)))


async def list_batches(request: Request, emulator: Emulator) -> Response:
    query = request.query_params
    page = await run_in_threadpool(
        emulator.list_batches, query.get("after_id"), query.get("before_id"), _int_query(request, "limit"),
        _base_url(request),
    )  # fmt: skip
    return json_response(page)


async def cancel_batch(request: Request, emulator: Emulator) -> Response:
    batch_id = request.path_params["batch_id"]
    return json_response(await run_in_threadpool(emulator.cancel_batch, batch_id, _base_url(request)))


async def delete_batch(request: Request, emulator: Emulator) -> Response:
    return json_response(await run_in_threadpool(emulator.delete_batch, request.path_params["batch_id"]))


async def results(request: Request, emulator: Emulator) -> Response:
    content = await run_in_threadpool(emulator.results, request.path_params["batch_id"])

    async def chunks() -> AsyncIterator[bytes]:
        for start in range(0, len(content), RESULTS_CHUNK):
            yield content[start : start + RESULTS_CHUNK]

    return StreamingResponse(chunks(), media_type="application/x-jsonl")


# -- models ------------------------------------------------------------------------------------
async def list_models(request: Request, emulator: Emulator) -> Response:
    query = request.query_params
    lifecycle = [*query.getlist("lifecycle[]"), *query.getlist("lifecycle")]
    page = emulator.list_models(query.get("after_id"), query.get("before_id"), _int_query(request, "limit"), lifecycle)
    return json_response(page)


async def retrieve_model(request: Request, emulator: Emulator) -> Response:
    return json_response(emulator.retrieve_model(request.path_params["model"]))


# -- control routes (no auth, not logged, no faults) ---------------------------------------------
async def get_faults(request: Request) -> Response:
    return json_response(_emulator(request).faults.to_dict())


async def set_faults(request: Request) -> Response:
    emulator = _emulator(request)
    try:
        changes = await _json_body(request)
        if not isinstance(changes, dict):
            raise ValueError("expected a JSON object of fault fields")
        emulator.faults.update(changes)
    except ApiError as exc:
        return json_response(error_body(exc.type, exc.message, None), exc.status)
    except ValueError as exc:
        return json_response(error_body("invalid_request_error", str(exc), None), 400)
    return json_response(emulator.faults.to_dict())


async def reset(request: Request) -> Response:
    _emulator(request).reset()
    return json_response({"ok": True})


async def all_batches(request: Request) -> Response:
    batches = await run_in_threadpool(lambda: _emulator(request).batches)
    return json_response({"data": list(batches.values())})


async def request_log(request: Request) -> Response:
    log = _emulator(request).request_log
    return json_response({"data": [{"method": m, "path": p, "status": s} for m, p, s in list(log)]})


async def retire_model(request: Request) -> Response:
    emulator = _emulator(request)
    body = await request.body()
    model = orjson.loads(body).get("model") if body.strip() else None
    if not isinstance(model, str) or not model:
        return json_response(error_body("invalid_request_error", 'expected a JSON body {"model": "<name>"}', None), 400)
    emulator.retire(model)
    return json_response({"retired": sorted(s.id for s in emulator.config.models.values() if s.lifecycle == "retired")})


async def advance_clock(request: Request) -> Response:
    emulator = _emulator(request)
    try:
        body = await _json_body(request)
    except ApiError as exc:
        return json_response(error_body(exc.type, exc.message, None), exc.status)
    seconds = body.get("seconds") if isinstance(body, dict) else None
    advance = getattr(emulator.clock, "advance", None)
    if advance is None or not isinstance(seconds, int | float) or seconds < 0:
        message = 'needs a ManualClock and a JSON body {"seconds": >= 0}'
        return json_response(error_body("invalid_request_error", message, None), 400)
    return json_response({"now": advance(float(seconds))})


def create_emulator_app(config: EmulatorConfig | None = None, *, emulator: Emulator | None = None) -> Starlette:
    """The emulator as an ASGI app; the ``Emulator`` is at ``app.state.emulator`` (replaceable)."""
    batches = "/v1/messages/batches"
    routes = [
        Route(batches, api(create_batch), methods=["POST"]),
        Route(batches, api(list_batches), methods=["GET"]),
        Route(f"{batches}/{{batch_id}}", api(retrieve_batch), methods=["GET"]),
        Route(f"{batches}/{{batch_id}}", api(delete_batch), methods=["DELETE"]),
        Route(f"{batches}/{{batch_id}}/cancel", api(cancel_batch), methods=["POST"]),
        Route(f"{batches}/{{batch_id}}/results", api(results), methods=["GET"]),
        Route("/v1/models", api(list_models), methods=["GET"]),
        Route("/v1/models/{model}", api(retrieve_model), methods=["GET"]),
        Route("/_emulator/faults", get_faults, methods=["GET"]),
        Route("/_emulator/faults", set_faults, methods=["POST"]),
        Route("/_emulator/reset", reset, methods=["POST"]),
        Route("/_emulator/batches", all_batches, methods=["GET"]),
        Route("/_emulator/requests", request_log, methods=["GET"]),
        Route("/_emulator/models/retire", retire_model, methods=["POST"]),
        Route("/_emulator/clock/advance", advance_clock, methods=["POST"]),
    ]
    app = Starlette(routes=routes)
    app.state.emulator = emulator if emulator is not None else Emulator(config)
    return app
