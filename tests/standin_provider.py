"""An independent Groq-compatible stand-in: the Files and Batches API on the wire, nothing of the emulator.

`python -m tests.standin_provider --port N [--delay S] [--fail-share F] [--echo-custom-id]`

Every batch completes `--delay` seconds after it is created. Each line answers a chat completion whose content
is a PR analysis (`summary`, `risk_level`, `categories`, `score`), with `summary` set to the line's custom_id when
`--echo-custom-id` is given (what a hostile caller uses to push a chosen string through the output validator).
Lines to a model whose name contains "20b" fail with json_validate_failed in `--fail-share` of the cases (chosen
by a hash of the custom_id, so reruns agree). Used by tests and by bench/ to show that nothing depends on the
emulator's own behaviour.
"""

from __future__ import annotations

import argparse
import hashlib
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

import orjson
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route


@dataclass
class StandIn:
    delay: float = 0.2
    fail_share: float = 0.0
    echo_custom_id: bool = False
    files: dict[str, dict[str, Any]] = field(default_factory=dict)
    contents: dict[str, bytes] = field(default_factory=dict)
    batches: dict[str, dict[str, Any]] = field(default_factory=dict)

    def answer(self, line: dict[str, Any]) -> dict[str, Any]:
        custom_id = str(line.get("custom_id"))
        body = line.get("body") or {}
        model = str(body.get("model", ""))
        request_id = f"req_{uuid.uuid4().hex[:20]}"
        share = int(hashlib.sha256(custom_id.encode()).hexdigest()[:8], 16) / 0xFFFFFFFF
        if "20b" in model and share < self.fail_share:
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
        content = orjson.dumps({"summary": summary, "risk_level": "low", "categories": ["bugfix"], "score": 5}).decode()
        prompt_tokens = max(1, len(orjson.dumps(body)) // 4)
        return {
            "id": f"batch_req_{uuid.uuid4().hex[:20]}",
            "custom_id": custom_id,
            "response": {
                "status_code": 200,
                "request_id": request_id,
                "body": {
                    "id": f"chatcmpl-{uuid.uuid4().hex[:20]}",
                    "object": "chat.completion",
                    "created": int(time.time()),
                    "model": model,
                    "choices": [
                        {"index": 0, "message": {"role": "assistant", "content": content}, "finish_reason": "stop"}
                    ],
                    "usage": {
                        "prompt_tokens": prompt_tokens,
                        "completion_tokens": 60,
                        "total_tokens": prompt_tokens + 60,
                    },
                },
            },
            "error": None,
        }

    def refresh(self, batch: dict[str, Any]) -> dict[str, Any]:
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
        file_id = f"file_{uuid.uuid4().hex[:24]}"
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


def create_app(standin: StandIn) -> Starlette:
    async def upload(request: Request) -> Response:
        form = await request.form()
        upload = form["file"]
        assert not isinstance(upload, str)
        file_id = standin._store(upload.filename or "input.jsonl", await upload.read())
        return JSONResponse(standin.files[file_id])

    async def list_files(_request: Request) -> Response:
        return JSONResponse({"object": "list", "data": list(standin.files.values())})

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
        body = orjson.loads(await request.body())
        batch_id = f"batch_{uuid.uuid4().hex[:24]}"
        standin.batches[batch_id] = {
            "id": batch_id,
            "object": "batch",
            "endpoint": body["endpoint"],
            "errors": None,
            "input_file_id": body["input_file_id"],
            "completion_window": body.get("completion_window", "24h"),
            "status": "in_progress",
            "output_file_id": None,
            "error_file_id": None,
            "created_at": int(time.time()),
            "request_counts": {"total": 0, "completed": 0, "failed": 0},
            "metadata": body.get("metadata"),
        }
        return JSONResponse(standin.batches[batch_id])

    async def get_batch(request: Request) -> Response:
        batch = standin.batches.get(request.path_params["batch_id"])
        if batch is None:
            return JSONResponse({"error": {"message": "batch not found", "type": "invalid_request_error"}}, 404)
        return JSONResponse(standin.refresh(batch))

    async def cancel_batch(request: Request) -> Response:
        batch = standin.batches[request.path_params["batch_id"]]
        if batch["status"] == "in_progress":
            batch["status"] = "cancelled"
        return JSONResponse(batch)

    async def list_batches(_request: Request) -> Response:
        data = [standin.refresh(batch) for batch in reversed(list(standin.batches.values()))]
        return JSONResponse({"object": "list", "data": data})

    async def models(_request: Request) -> Response:
        names = ("openai/gpt-oss-20b", "openai/gpt-oss-120b")
        return JSONResponse({"object": "list", "data": [{"id": name, "object": "model"} for name in names]})

    base = "/openai/v1"
    return Starlette(
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
        ]
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--delay", type=float, default=0.2)
    parser.add_argument("--fail-share", type=float, default=0.0)
    parser.add_argument("--echo-custom-id", action="store_true")
    args = parser.parse_args()
    standin = StandIn(delay=args.delay, fail_share=args.fail_share, echo_custom_id=args.echo_custom_id)
    uvicorn.run(create_app(standin), host="127.0.0.1", port=args.port, log_level="warning")


if __name__ == "__main__":
    main()
