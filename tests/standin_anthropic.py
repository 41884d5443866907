"""An independent Anthropic-compatible stand-in: Message Batches and Models on the wire (PROVIDERS_BATCH_API.md B1-B3),
nothing of the emulator.

`python -m tests.standin_anthropic --port N [--delay S] [--hold-first-create] [--faults N]`

Every batch ends `--delay` seconds after it is created, each request answered by a PR analysis as text, with
usage that reads from and writes to the prompt cache (`input_tokens` is the uncached rest, as Anthropic bills it).
A custom_id outside `^[a-zA-Z0-9_-]{1,64}$` is refused at create (400, as Anthropic does); params without
`max_tokens` ≥ 1, or with a `system` role inside `messages`, end `errored` with `invalid_request_error`.
`GET /_bill` is what was billed, per model; `GET /_seen` counts the requests, the keys of their params and the
reads of the model list.
`POST /_retire {"model": M}` retires a model now: the model list leaves it out, and every request naming it that
is answered from then on ends `errored` with `not_found_error` (as the facts file infers). `--hold-first-create`
and `--faults` are tests/standin_mischief.py's.
"""

from __future__ import annotations

import argparse
import re
import uuid
from collections import Counter
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp

from tests.standin_mischief import Mischief, with_mischief
from tests.standin_provider import OUTPUT_TOKENS, Bill, analysis, last_user_text

CUSTOM_ID = re.compile(r"^[a-zA-Z0-9_-]{1,64}$")
MODELS = ("claude-haiku-4-5", "claude-sonnet-4-5")


def rfc3339(moment: datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")


def error(status: int, kind: str, message: str) -> JSONResponse:
    return JSONResponse({"type": "error", "error": {"type": kind, "message": message}}, status)


class AnthropicStandIn:
    def __init__(self, delay: float) -> None:
        self.delay = delay
        self.batches: dict[str, dict[str, Any]] = {}
        self.requests: dict[str, list[dict[str, Any]]] = {}
        self.results: dict[str, bytes] = {}
        self.bill = Bill()
        self.seen: Counter[str] = Counter()
        self.retired: set[str] = set()

    def create(self, requests: list[dict[str, Any]]) -> dict[str, Any]:
        batch_id = f"msgbatch_{uuid.uuid4().hex[:24]}"
        now = datetime.now(UTC)
        self.requests[batch_id] = requests
        self.batches[batch_id] = {
            "id": batch_id,
            "type": "message_batch",
            "processing_status": "in_progress",
            "request_counts": {"processing": len(requests), "succeeded": 0, "errored": 0, "canceled": 0, "expired": 0},
            "ended_at": None,
            "created_at": rfc3339(now),
            "expires_at": rfc3339(now + timedelta(days=1)),
            "archived_at": None,
            "cancel_initiated_at": None,
            "results_url": None,
        }
        return self.batches[batch_id]

    def refresh(self, batch: dict[str, Any], base_url: str) -> dict[str, Any]:
        """A batch ends `delay` seconds after it was created; one being cancelled ends at once, none of its
        requests run (canceled requests are not billed)."""
        created = datetime.fromisoformat(batch["created_at"])
        status = batch["processing_status"]
        due = datetime.now(UTC) >= created + timedelta(seconds=self.delay)
        if status == "ended" or (status == "in_progress" and not due):
            return batch
        requests = self.requests[batch["id"]]
        if status == "canceling":
            lines = [{"custom_id": request["custom_id"], "result": {"type": "canceled"}} for request in requests]
        else:
            lines = [self.answer(request) for request in requests]
        counts = {"processing": 0, "succeeded": 0, "errored": 0, "canceled": 0, "expired": 0}
        for line in lines:
            counts[line["result"]["type"]] += 1
        self.results[batch["id"]] = b"".join(orjson.dumps(line) + b"\n" for line in lines)
        batch.update(
            processing_status="ended",
            request_counts=counts,
            ended_at=rfc3339(datetime.now(UTC)),
            results_url=f"{base_url}v1/messages/batches/{batch['id']}/results",
        )
        return batch

    def answer(self, request: dict[str, Any]) -> dict[str, Any]:
        params = request.get("params") or {}
        self.seen.update(["requests", *(f"params.{key}" for key in params)])
        messages = params.get("messages") or []
        if (
            not isinstance(params.get("max_tokens"), int)
            or params["max_tokens"] < 1
            or any(isinstance(message, dict) and message.get("role") == "system" for message in messages)
        ):
            return errored(request, "invalid_request_error", "params: max_tokens ≥ 1 and no system role")
        model = str(params.get("model"))
        if model in self.retired:
            return errored(request, "not_found_error", f"model: {model}")
        total = max(1, len(orjson.dumps(params)) // 4)
        read, written = total // 4, total // 8
        usage = {
            "input_tokens": total - read - written,
            "output_tokens": OUTPUT_TOKENS,
            "cache_read_input_tokens": read,
            "cache_creation_input_tokens": written,
            "service_tier": "batch",
        }
        self.bill.add(model, input=total - read - written, cache_read=read, cache_write=written, output=OUTPUT_TOKENS)
        message = {
            "id": f"msg_{uuid.uuid4().hex[:24]}",
            "type": "message",
            "role": "assistant",
            "model": model,
            "content": [{"type": "text", "text": analysis(f"Reviewed: {last_user_text(messages)[:40]}")}],
            "stop_reason": "end_turn",
            "stop_sequence": None,
            "usage": usage,
        }
        return {"custom_id": request["custom_id"], "result": {"type": "succeeded", "message": message}}


def errored(request: dict[str, Any], kind: str, message: str) -> dict[str, Any]:
    failure = {"type": kind, "message": message}
    return {
        "custom_id": request["custom_id"],
        "result": {"type": "errored", "error": {"type": "error", "error": failure, "request_id": None}},
    }


def create_app(standin: AnthropicStandIn, mischief: Mischief | None = None) -> ASGIApp:
    async def create(request: Request) -> Response:
        requests = orjson.loads(await request.body()).get("requests")
        if not isinstance(requests, list) or not requests:
            return error(400, "invalid_request_error", "requests: a non-empty list is required")
        for index, item in enumerate(requests):
            if not CUSTOM_ID.match(str(item.get("custom_id"))):
                return error(400, "invalid_request_error", f"requests.{index}.custom_id: String should match pattern")
        if len({item["custom_id"] for item in requests}) != len(requests):
            return error(400, "invalid_request_error", "requests: custom_id values must be unique")
        return JSONResponse(standin.create(requests))

    async def retrieve(request: Request) -> Response:
        batch = standin.batches.get(request.path_params["batch_id"])
        if batch is None:
            return error(404, "not_found_error", "batch not found")
        return JSONResponse(standin.refresh(batch, str(request.base_url)))

    async def list_batches(request: Request) -> Response:
        limit = int(request.query_params.get("limit", 20))
        newest_first = [standin.refresh(batch, str(request.base_url)) for batch in reversed(standin.batches.values())]
        after = request.query_params.get("after_id")
        if after is not None:
            ids = [batch["id"] for batch in newest_first]
            newest_first = newest_first[ids.index(after) + 1 :] if after in ids else []
        page = newest_first[:limit]
        return JSONResponse(
            {
                "data": page,
                "has_more": len(newest_first) > limit,
                "first_id": page[0]["id"] if page else None,
                "last_id": page[-1]["id"] if page else None,
            }
        )

    async def cancel(request: Request) -> Response:
        batch = standin.batches.get(request.path_params["batch_id"])
        if batch is None:
            return error(404, "not_found_error", "batch not found")
        if batch["processing_status"] == "in_progress":
            batch.update(processing_status="canceling", cancel_initiated_at=rfc3339(datetime.now(UTC)))
        return JSONResponse(batch)

    async def results(request: Request) -> Response:
        content = standin.results.get(request.path_params["batch_id"])
        if content is None:
            return error(404, "not_found_error", "no results for this batch")
        return Response(content, media_type="application/binary")

    async def delete(request: Request) -> Response:
        batch_id = request.path_params["batch_id"]
        batch = standin.batches.get(batch_id)
        if batch is None:
            return error(404, "not_found_error", "batch not found")
        if batch["processing_status"] != "ended":
            return error(400, "invalid_request_error", "the batch is still processing: cancel it first")
        del standin.batches[batch_id]
        standin.results.pop(batch_id, None)
        return JSONResponse({"id": batch_id, "type": "message_batch_deleted"})

    async def models(_request: Request) -> Response:
        standin.seen["models.list"] += 1
        names = [name for name in MODELS if name not in standin.retired]
        data = [
            {"type": "model", "id": name, "display_name": name, "created_at": "2025-10-01T00:00:00Z"} for name in names
        ]
        first, last = (names[0], names[-1]) if names else (None, None)
        return JSONResponse({"data": data, "has_more": False, "first_id": first, "last_id": last})

    async def retire(request: Request) -> Response:
        standin.retired.add(str(orjson.loads(await request.body())["model"]))
        return JSONResponse({"retired": sorted(standin.retired)})

    async def bill(_request: Request) -> Response:
        return JSONResponse(standin.bill.body())

    async def seen(_request: Request) -> Response:
        return JSONResponse(dict(standin.seen))

    base = "/v1/messages/batches"
    app = Starlette(
        routes=[
            Route(base, create, methods=["POST"]),
            Route(base, list_batches, methods=["GET"]),
            Route(f"{base}/{{batch_id}}", retrieve, methods=["GET"]),
            Route(f"{base}/{{batch_id}}", delete, methods=["DELETE"]),
            Route(f"{base}/{{batch_id}}/cancel", cancel, methods=["POST"]),
            Route(f"{base}/{{batch_id}}/results", results, methods=["GET"]),
            Route("/v1/models", models, methods=["GET"]),
            Route("/_bill", bill, methods=["GET"]),
            Route("/_seen", seen, methods=["GET"]),
            Route("/_retire", retire, methods=["POST"]),
        ]
    )
    return with_mischief(app, mischief, "anthropic") if mischief is not None else app


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--delay", type=float, default=0.2)
    parser.add_argument("--hold-first-create", action="store_true")
    parser.add_argument("--faults", type=int, default=0)
    args = parser.parse_args()
    mischief = Mischief(hold_first_create=args.hold_first_create, faults=args.faults)
    app = create_app(AnthropicStandIn(args.delay), mischief)
    uvicorn.run(app, host="127.0.0.1", port=args.port, log_level="warning")


if __name__ == "__main__":
    main()
