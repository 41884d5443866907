"""An independent Groq- or OpenAI-compatible stand-in: the Files and Batches API on the wire, nothing of the
emulator.

`python -m tests.standin_provider --port N [--wire groq|openai] [--delay S] [--fail-share F] [--echo-custom-id]
[--causes] [--hold-first-create] [--faults N]`

Every batch completes `--delay` seconds after it is created. Each line answers a chat completion whose content
is a PR analysis (`summary`, `risk_level`, `categories`, `score`), with `summary` set to the line's custom_id when
`--echo-custom-id` is given (what a hostile caller uses to push a chosen string through the output validator).
Lines to a model whose name contains "20b" fail with json_validate_failed in `--fail-share` of the cases (chosen
by a hash of the custom_id, so reruns agree). Used by tests and by bench/ to show that nothing depends on the
emulator's own behaviour.

`--wire openai` serves OpenAI's paths (`/v1`, ids `file-…`, batches `validating` first). `--causes` makes every
answer's fate a function of the model and the request's last user message (`cause_of`), so that a test can
predict each item's route through a cascade from its text alone; `GET /_bill` is what was billed, per model;
`GET /_seen` counts the lines answered and the keys of their bodies. `--hold-first-create` and `--faults` are
tests/standin_mischief.py's.
"""

from __future__ import annotations

import argparse
import hashlib
import time
import uuid
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from typing import Any, Literal

import orjson
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp

from tests.standin_mischief import Mischief, with_mischief

Cause = Literal["ok", "not_json", "length", "off_schema", "refusal"]
# Under --causes: the share of requests (by `share_of`) that meet each fate on a model whose name contains the key.
CAUSES: dict[str, list[tuple[float, Cause]]] = {
    "20b": [(0.2, "not_json"), (0.3, "length")],
    "gpt-5-mini": [(0.2, "off_schema"), (0.3, "refusal")],
}
OUTPUT_TOKENS = 60
REFUSAL = "I can't help with that request."


def share_of(model: str, text: str) -> float:
    """Where a request falls in [0, 1): a hash of the model and the text, so that reruns and tests agree."""
    return int(hashlib.sha256(f"{model}\x00{text}".encode()).hexdigest()[:8], 16) / 0x100000000


def cause_of(model: str, text: str) -> Cause:
    """The fate of a first request with this text to this model under --causes (`length` only the first time)."""
    for key, bands in CAUSES.items():
        if key in model:
            share = share_of(model, text)
            return next((cause for bound, cause in bands if share < bound), "ok")
    return "ok"


def last_user_text(messages: Any) -> str:
    for message in reversed(messages if isinstance(messages, list) else []):
        if isinstance(message, dict) and message.get("role") == "user":
            content = message.get("content")
            if isinstance(content, str):
                return content
            if isinstance(content, list):
                return "".join(part.get("text", "") for part in content if isinstance(part, dict))
    return ""


def analysis(summary: str) -> str:
    return orjson.dumps({"summary": summary, "risk_level": "low", "categories": ["bugfix"], "score": 5}).decode()


@dataclass
class Bill:
    """What a stand-in billed, per model: prompt tokens (all of them), the cached part, output tokens, requests."""

    usage: dict[str, Counter[str]] = field(default_factory=lambda: defaultdict(Counter))

    def add(self, model: str, **tokens: int) -> None:
        self.usage[model].update(requests=1, **tokens)

    def body(self) -> dict[str, dict[str, int]]:
        return {model: dict(counts) for model, counts in self.usage.items()}


@dataclass
class StandIn:
    delay: float = 0.2
    fail_share: float = 0.0
    echo_custom_id: bool = False
    wire: Literal["groq", "openai"] = "groq"
    causes: bool = False
    files: dict[str, dict[str, Any]] = field(default_factory=dict)
    contents: dict[str, bytes] = field(default_factory=dict)
    batches: dict[str, dict[str, Any]] = field(default_factory=dict)
    bill: Bill = field(default_factory=Bill)
    seen: Counter[str] = field(default_factory=Counter)
    truncated: set[tuple[str, str]] = field(default_factory=set)

    def fate(self, custom_id: str, model: str, text: str) -> Cause:
        if self.causes:
            cause = cause_of(model, text)
            if cause == "length":
                if (model, text) in self.truncated:
                    return "ok"
                self.truncated.add((model, text))
            return cause
        share = int(hashlib.sha256(custom_id.encode()).hexdigest()[:8], 16) / 0xFFFFFFFF
        return "not_json" if "20b" in model and share < self.fail_share else "ok"

    def answer(self, line: dict[str, Any]) -> dict[str, Any]:
        custom_id = str(line.get("custom_id"))
        body = line.get("body") or {}
        self.seen.update(["lines", *(f"body.{key}" for key in body)])
        model = str(body.get("model", ""))
        cause = self.fate(custom_id, model, last_user_text(body.get("messages")))
        if cause == "not_json":
            return {
                "id": f"batch_req_{uuid.uuid4().hex[:20]}",
                "custom_id": custom_id,
                "response": None,
                "error": {
                    "code": "json_validate_failed",
                    "message": "Failed to generate JSON. Please adjust your prompt.",
                },
            }
        summary = custom_id if self.echo_custom_id else f"Reviewed {custom_id}."
        message: dict[str, Any] = {"role": "assistant", "content": analysis(summary)}
        finish_reason, output_tokens = "stop", OUTPUT_TOKENS
        if cause == "length":
            finish_reason = "length"
            output_tokens = int(body.get("max_completion_tokens") or body.get("max_tokens") or OUTPUT_TOKENS)
            message["content"] = message["content"][:12]
        elif cause == "off_schema":
            message["content"] = orjson.dumps({"summary": 5, "risk_level": "unheard-of"}).decode()
        elif cause == "refusal":
            message = {"role": "assistant", "content": None, "refusal": REFUSAL}
        prompt_tokens = max(1, len(orjson.dumps(body)) // 4)
        usage: dict[str, Any] = {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": output_tokens,
            "total_tokens": prompt_tokens + output_tokens,
        }
        cached = prompt_tokens // 3 if self.wire == "openai" else 0
        if cached:
            usage["prompt_tokens_details"] = {"cached_tokens": cached}
        self.bill.add(model, input=prompt_tokens, cached=cached, output=output_tokens)
        return {
            "id": f"batch_req_{uuid.uuid4().hex[:20]}",
            "custom_id": custom_id,
            "response": {
                "status_code": 200,
                "request_id": f"req_{uuid.uuid4().hex[:20]}",
                "body": {
                    "id": f"chatcmpl-{uuid.uuid4().hex[:20]}",
                    "object": "chat.completion",
                    "created": int(time.time()),
                    "model": model,
                    "choices": [{"index": 0, "message": message, "finish_reason": finish_reason}],
                    "usage": usage,
                },
            },
            "error": None,
        }

    def refresh(self, batch: dict[str, Any]) -> dict[str, Any]:
        if batch["status"] == "validating":
            batch["status"] = "in_progress"
            batch["in_progress_at"] = int(time.time())
        if batch["status"] == "in_progress" and time.time() >= batch["created_at"] + self.delay:
            outputs, errors = [], []
            for raw in self.contents[batch["input_file_id"]].splitlines():
                if raw.strip():
                    answered = self.answer(orjson.loads(raw))
                    (errors if answered["error"] else outputs).append(orjson.dumps(answered))
            batch["output_file_id"] = (
                self._store("batch_output.jsonl", b"\n".join(outputs) + b"\n") if outputs else None
            )
            batch["error_file_id"] = self._store("batch_errors.jsonl", b"\n".join(errors) + b"\n") if errors else None
            total = len(outputs) + len(errors)
            batch["request_counts"] = {"total": total, "completed": len(outputs), "failed": len(errors)}
            batch["status"] = "completed"
            batch["completed_at"] = int(time.time())
        return batch

    def _store(self, filename: str, content: bytes) -> str:
        file_id = f"file-{uuid.uuid4().hex[:24]}" if self.wire == "openai" else f"file_{uuid.uuid4().hex[:24]}"
        self.files[file_id] = {
            "id": file_id,
            "object": "file",
            "bytes": len(content),
            "created_at": int(time.time()),
            "filename": filename,
            "purpose": "batch",
        }
        self.contents[file_id] = content
        return file_id

    def new_batch(self, body: dict[str, Any]) -> dict[str, Any]:
        batch_id = f"batch_{uuid.uuid4().hex[:24]}"
        now = int(time.time())
        batch = {
            "id": batch_id,
            "object": "batch",
            "endpoint": body["endpoint"],
            "errors": None,
            "input_file_id": body["input_file_id"],
            "completion_window": body.get("completion_window", "24h"),
            "status": "validating" if self.wire == "openai" else "in_progress",
            "output_file_id": None,
            "error_file_id": None,
            "created_at": now,
            "expires_at": now + 86_400,
            "request_counts": {"total": 0, "completed": 0, "failed": 0},
            "metadata": body.get("metadata"),
        }
        self.batches[batch_id] = batch
        return batch

    def model_names(self) -> tuple[str, ...]:
        if self.wire == "openai":
            return ("gpt-5-mini", "gpt-5-nano", "gpt-4.1-nano")
        return ("openai/gpt-oss-20b", "openai/gpt-oss-120b")


def create_app(standin: StandIn, mischief: Mischief | None = None) -> ASGIApp:
    async def upload(request: Request) -> Response:
        form = await request.form()
        upload = form["file"]
        assert not isinstance(upload, str)
        file_id = standin._store(upload.filename or "input.jsonl", await upload.read())
        return JSONResponse(standin.files[file_id])

    async def list_files(_request: Request) -> Response:
        return JSONResponse({"object": "list", "data": list(standin.files.values()), "has_more": False})

    async def file_content(request: Request) -> Response:
        file_id = request.path_params["file_id"]
        if file_id not in standin.contents:
            return JSONResponse({"error": {"message": "file not found", "type": "invalid_request_error"}}, 404)
        return Response(standin.contents[file_id], media_type="application/octet-stream")

    async def delete_file(request: Request) -> Response:
        file_id = request.path_params["file_id"]
        standin.files.pop(file_id, None)
        standin.contents.pop(file_id, None)
        return JSONResponse({"id": file_id, "object": "file", "deleted": True})

    async def create_batch(request: Request) -> Response:
        return JSONResponse(standin.new_batch(orjson.loads(await request.body())))

    async def get_batch(request: Request) -> Response:
        batch = standin.batches.get(request.path_params["batch_id"])
        if batch is None:
            return JSONResponse({"error": {"message": "batch not found", "type": "invalid_request_error"}}, 404)
        return JSONResponse(standin.refresh(batch))

    async def cancel_batch(request: Request) -> Response:
        batch = standin.batches[request.path_params["batch_id"]]
        if batch["status"] in ("validating", "in_progress"):
            batch["status"] = "cancelled"
        return JSONResponse(batch)

    async def list_batches(_request: Request) -> Response:
        data = [standin.refresh(batch) for batch in reversed(list(standin.batches.values()))]
        return JSONResponse({"object": "list", "data": data, "has_more": False})

    async def models(_request: Request) -> Response:
        data = [{"id": name, "object": "model", "created": 0, "owned_by": "standin"} for name in standin.model_names()]
        return JSONResponse({"object": "list", "data": data})

    async def bill(_request: Request) -> Response:
        return JSONResponse(standin.bill.body())

    async def seen(_request: Request) -> Response:
        return JSONResponse(dict(standin.seen))

    base = "/v1" if standin.wire == "openai" else "/openai/v1"
    app = Starlette(
        routes=[
            Route(f"{base}/files", upload, methods=["POST"]),
            Route(f"{base}/files", list_files, methods=["GET"]),
            Route(f"{base}/files/{{file_id}}/content", file_content, methods=["GET"]),
            Route(f"{base}/files/{{file_id}}", delete_file, methods=["DELETE"]),
            Route(f"{base}/batches", create_batch, methods=["POST"]),
            Route(f"{base}/batches", list_batches, methods=["GET"]),
            Route(f"{base}/batches/{{batch_id}}", get_batch, methods=["GET"]),
            Route(f"{base}/batches/{{batch_id}}/cancel", cancel_batch, methods=["POST"]),
            Route(f"{base}/models", models, methods=["GET"]),
            Route("/_bill", bill, methods=["GET"]),
            Route("/_seen", seen, methods=["GET"]),
        ]
    )
    return with_mischief(app, mischief, standin.wire) if mischief is not None else app


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--wire", choices=("groq", "openai"), default="groq")
    parser.add_argument("--delay", type=float, default=0.2)
    parser.add_argument("--fail-share", type=float, default=0.0)
    parser.add_argument("--echo-custom-id", action="store_true")
    parser.add_argument("--causes", action="store_true")
    parser.add_argument("--hold-first-create", action="store_true")
    parser.add_argument("--faults", type=int, default=0)
    args = parser.parse_args()
    standin = StandIn(
        delay=args.delay,
        fail_share=args.fail_share,
        echo_custom_id=args.echo_custom_id,
        wire=args.wire,
        causes=args.causes,
    )
    mischief = Mischief(hold_first_create=args.hold_first_create, faults=args.faults)
    uvicorn.run(create_app(standin, mischief), host="127.0.0.1", port=args.port, log_level="warning")


if __name__ == "__main__":
    main()
