"""HTTP routes: OpenAI's Files, Batches and Models API under ``/v1``, plus ``/_emulator`` control routes.

Work that can take a while (validating and counting tens of thousands of lines, simulating them) runs in the
thread pool, so the event loop keeps answering other requests meanwhile.
"""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Awaitable, Callable
from typing import Any

import orjson
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from openai_emulator.config import EmulatorConfig
from openai_emulator.errors import ApiError, error_body, missing_key, wrong_key
from openai_emulator.state import Emulator

PREFIX = "/v1"
Handler = Callable[[Request, Emulator], Awaitable[Response]]
Endpoint = Callable[[Request], Awaitable[Response]]


def json_response(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(orjson.dumps(body), status, headers=headers, media_type="application/json")


def _emulator(request: Request) -> Emulator:
    emulator: Emulator = request.app.state.emulator
    return emulator


def _authorise(request: Request, emulator: Emulator) -> None:
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token:
        raise missing_key()
    expected = emulator.config.api_key
    if expected is not None and not secrets.compare_digest(token, expected):
        raise wrong_key(token)


def api(handler: Handler) -> Endpoint:
    """Wrap an API handler: slow-down fault, auth, injected errors, error objects, request id, request log."""

    async def endpoint(request: Request) -> Response:
        emulator = _emulator(request)
        try:
            if emulator.faults.slow_seconds > 0:
                await asyncio.sleep(emulator.faults.slow_seconds)
            _authorise(request, emulator)
            fault = emulator.take_fault()
            if fault is not None:
                raise fault
            response = await handler(request, emulator)
        except ApiError as exc:
            response = json_response(exc.body, exc.status, exc.headers)
        response.headers["x-request-id"] = f"req_{secrets.token_hex(16)}"
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
        raise ApiError(400, f"We could not parse the JSON body of your request. ({exc})") from exc


def _int_query(request: Request, name: str) -> int | None:
    text = request.query_params.get(name)
    if text is None:
        return None
    try:
        return int(text)
    except ValueError as exc:
        raise ApiError(400, f"Invalid '{name}': expected an integer, but got '{text}' instead.", param=name) from exc


# -- files -------------------------------------------------------------------------------------
async def upload_file(request: Request, emulator: Emulator) -> Response:
    limit = emulator.config.max_file_bytes
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit + 65_536:
        raise ApiError(400, "File is too large.")
    if not request.headers.get("content-type", "").startswith("multipart/form-data"):
        raise ApiError(400, "Expected a multipart/form-data request with 'purpose' and 'file'.")
    try:
        async with request.form(max_files=1, max_fields=16) as form:
            purpose, upload = form.get("purpose"), form.get("file")
            anchor, seconds = form.get("expires_after[anchor]"), form.get("expires_after[seconds]")
            if not isinstance(purpose, str):
                raise ApiError(400, "Missing required parameter: 'purpose'.", param="purpose")
            if not isinstance(upload, UploadFile):
                raise ApiError(400, "Missing required parameter: 'file'.", param="file")
            data = await upload.read()
            filename = upload.filename or "upload"
    except ApiError:
        raise
    except Exception as exc:  # malformed multipart
        raise ApiError(400, f"Could not parse the multipart body: {exc}") from exc
    texts = (anchor if isinstance(anchor, str) else None, seconds if isinstance(seconds, str) else None)
    return json_response(await run_in_threadpool(emulator.upload_file, filename, purpose, data, *texts))


async def list_files(request: Request, emulator: Emulator) -> Response:
    cfg = emulator.config
    limit = _int_query(request, "limit") or cfg.file_list_default_limit
    if not 1 <= limit <= cfg.file_list_max_limit:
        raise ApiError(
            400, f"Invalid 'limit': expected a value between 1 and {cfg.file_list_max_limit}.", param="limit"
        )
    order = request.query_params.get("order", "desc")
    if order not in ("asc", "desc"):
        raise ApiError(400, f"Invalid value: '{order}'. Supported values are: 'asc' and 'desc'.", param="order")
    query = request.query_params
    return json_response(emulator.list_files(query.get("after"), limit, order, query.get("purpose")))


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
    after, limit = request.query_params.get("after"), _int_query(request, "limit")
    return json_response(await run_in_threadpool(emulator.list_batches, after, limit))


async def cancel_batch(request: Request, emulator: Emulator) -> Response:
    return json_response(await run_in_threadpool(emulator.cancel_batch, request.path_params["batch_id"]))


# -- models ------------------------------------------------------------------------------------
async def list_models(request: Request, emulator: Emulator) -> Response:
    return json_response(emulator.list_models())


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


async def retire_model(request: Request) -> Response:
    emulator = _emulator(request)
    body = await request.body()
    model = orjson.loads(body).get("model") if body.strip() else None
    if not isinstance(model, str) or not model:
        return json_response(error_body('expected a JSON body {"model": "<name>"}'), 400)
    emulator.retire(model)
    return json_response({"retired": sorted(emulator.config.retired_models)})


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


def create_emulator_app(config: EmulatorConfig | None = None, *, emulator: Emulator | None = None) -> Starlette:
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
        Route(f"{PREFIX}/models/{{model:path}}", api(retrieve_model), methods=["GET"]),
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
