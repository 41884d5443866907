"""HTTP routes: Groq's Files + Batches API under ``/openai/v1`` plus ``/_emulator`` control routes.

Work that can take a while (validating or simulating tens of thousands of lines) runs in the thread
pool, so the event loop keeps answering other requests meanwhile.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import orjson
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from groq_emulator.config import EmulatorConfig
from groq_emulator.errors import ApiError, error_body, invalid_api_key
from groq_emulator.state import Emulator

PREFIX = "/openai/v1"
Handler = Callable[[Request, Emulator], Awaitable[Response]]
Endpoint = Callable[[Request], Awaitable[Response]]


def json_response(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(orjson.dumps(body), status, headers=headers, media_type="application/json")


def _emulator(request: Request) -> Emulator:
    emulator: Emulator = request.app.state.emulator
    return emulator


def api(handler: Handler) -> Endpoint:
    """Wrap an API handler: slow-down fault, auth, injected errors, error objects, request log."""

    async def endpoint(request: Request) -> Response:
        emulator = _emulator(request)
        try:
            if emulator.faults.slow_seconds > 0:
                await asyncio.sleep(emulator.faults.slow_seconds)
            scheme, _, token = request.headers.get("authorization", "").partition(" ")
            if scheme.lower() != "bearer" or not token.strip():
                raise invalid_api_key()
            fault = emulator.take_fault()
            if fault is not None:
                raise fault
            response = await handler(request, emulator)
        except ApiError as exc:
            response = json_response(exc.body, exc.status, exc.headers)
        emulator.log_request(request.method, request.url.path, response.status_code, dict(request.headers))
        return response

    return endpoint


async def _json_body(request: Request) -> Any:
    raw = await request.body()
    if not raw.strip():
        return {}
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise ApiError(400, f"Request body is not valid JSON: {exc}") from exc


# -- files -------------------------------------------------------------------------------------
async def upload_file(request: Request, emulator: Emulator) -> Response:
    limit = emulator.config.max_bytes
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit + 65_536:
        raise ApiError(400, f"File is too large; the maximum is {limit} bytes.", code="file_too_large", param="file")
    if not request.headers.get("content-type", "").startswith("multipart/form-data"):
        raise ApiError(400, "Expected a multipart/form-data request with 'purpose' and 'file'")
    try:
        async with request.form(max_files=1, max_fields=16) as form:
            purpose = form.get("purpose")
            upload = form.get("file")
            if not isinstance(purpose, str):
                raise ApiError(400, "Missing required parameter: 'purpose'", param="purpose")
            if not isinstance(upload, UploadFile):
                raise ApiError(400, "Missing required parameter: 'file'", param="file")
            data = await upload.read()
            filename = upload.filename or "upload"
    except ApiError:
        raise
    except Exception as exc:  # malformed multipart
        raise ApiError(400, f"Could not parse the multipart body: {exc}") from exc
    return json_response(await run_in_threadpool(emulator.upload_file, filename, purpose, data))


async def list_files(request: Request, emulator: Emulator) -> Response:
    return json_response(emulator.list_files())


async def file_info(request: Request, emulator: Emulator) -> Response:
    return json_response(emulator.file_info(request.path_params["file_id"]))


async def delete_file(request: Request, emulator: Emulator) -> Response:
    return json_response(emulator.delete_file(request.path_params["file_id"]))


async def file_content(request: Request, emulator: Emulator) -> Response:
    content = emulator.file_content(request.path_params["file_id"])
    return Response(content, media_type="application/octet-stream")


# -- batches -----------------------------------------------------------------------------------
async def create_batch(request: Request, emulator: Emulator) -> Response:
    return json_response(await run_in_threadpool(emulator.create_batch, await _json_body(request)))


async def retrieve_batch(request: Request, emulator: Emulator) -> Response:
    return json_response(await run_in_threadpool(emulator.retrieve_batch, request.path_params["batch_id"]))


async def list_batches(request: Request, emulator: Emulator) -> Response:
    query = request.query_params
    ids = [part.strip() for value in query.getlist("id") for part in value.split(",") if part.strip()]
    limit_text = query.get("limit")
    try:
        limit = int(limit_text) if limit_text is not None else None
    except ValueError as exc:
        raise ApiError(400, f"Invalid value for limit: '{limit_text}'", param="limit") from exc
    return json_response(await run_in_threadpool(emulator.list_batches, ids, query.get("cursor") or None, limit))


async def cancel_batch(request: Request, emulator: Emulator) -> Response:
    return json_response(await run_in_threadpool(emulator.cancel_batch, request.path_params["batch_id"]))


# -- models ------------------------------------------------------------------------------------
async def list_models(request: Request, emulator: Emulator) -> Response:
    return json_response(emulator.list_models())


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
        return json_response(exc.body, exc.status)
    except ValueError as exc:
        return json_response(error_body(str(exc)), 400)
    return json_response(emulator.faults.to_dict())


async def reset(request: Request) -> Response:
    _emulator(request).reset()
    return json_response({"ok": True})


async def all_batches(request: Request) -> Response:
    batches = await run_in_threadpool(lambda: _emulator(request).batches)
    return json_response({"object": "list", "data": list(batches.values())})


async def request_log(request: Request) -> Response:
    log = _emulator(request).request_log
    return json_response({"data": [{"method": m, "path": p, "status": s} for m, p, s in list(log)]})


async def advance_clock(request: Request) -> Response:
    emulator = _emulator(request)
    try:
        body = await _json_body(request)
    except ApiError as exc:
        return json_response(exc.body, exc.status)
    seconds = body.get("seconds") if isinstance(body, dict) else None
    advance = getattr(emulator.clock, "advance", None)
    if advance is None or not isinstance(seconds, int | float) or seconds < 0:
        return json_response(error_body('needs a ManualClock and a JSON body {"seconds": >= 0}'), 400)
    return json_response({"now": advance(float(seconds))})


def create_emulator_app(config: EmulatorConfig | None = None, emulator: Emulator | None = None) -> Starlette:
    """The emulator as an ASGI app; the ``Emulator`` is at ``app.state.emulator`` (replaceable)."""
    routes = [
        Route(f"{PREFIX}/files", api(upload_file), methods=["POST"]),
        Route(f"{PREFIX}/files", api(list_files), methods=["GET"]),
        Route(f"{PREFIX}/files/{{file_id}}", api(file_info), methods=["GET"]),
        Route(f"{PREFIX}/files/{{file_id}}", api(delete_file), methods=["DELETE"]),
        Route(f"{PREFIX}/files/{{file_id}}/content", api(file_content), methods=["GET"]),
        Route(f"{PREFIX}/batches", api(create_batch), methods=["POST"]),
        Route(f"{PREFIX}/batches", api(list_batches), methods=["GET"]),
        Route(f"{PREFIX}/batches/{{batch_id}}", api(retrieve_batch), methods=["GET"]),
        Route(f"{PREFIX}/batches/{{batch_id}}/cancel", api(cancel_batch), methods=["POST"]),
        Route(f"{PREFIX}/models", api(list_models), methods=["GET"]),
        Route("/_emulator/faults", get_faults, methods=["GET"]),
        Route("/_emulator/faults", set_faults, methods=["POST"]),
        Route("/_emulator/reset", reset, methods=["POST"]),
        Route("/_emulator/batches", all_batches, methods=["GET"]),
        Route("/_emulator/requests", request_log, methods=["GET"]),
        Route("/_emulator/clock/advance", advance_clock, methods=["POST"]),
    ]
    app = Starlette(routes=routes)
    app.state.emulator = emulator if emulator is not None else Emulator(config)
    return app
