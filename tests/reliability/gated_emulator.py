"""The three providers' emulators as one process, with a gate that can hold back a response after a provider
acted.

`python -m tests.reliability.gated_emulator --port N [emulator timings]`: Groq's emulator at the root (its
`/openai/v1/...`), OpenAI's under `/oa` (OPENAI_BASE_URL `http://host:N/oa/v1`), Anthropic's under `/an`
(ANTHROPIC_BASE_URL `http://host:N/an`), each with its `/_emulator` control routes under its prefix.
`POST /_gate {"method": "POST", "path": "/openai/v1/batches", "count": 1}` arms the gate: the next matching
request is handled for real (the batch is created, the file stored) and its response is never sent, so the worker
that asked is stuck exactly between the provider's side effect and its own commit, where a test SIGKILLs it.
`GET /_gate` lists the held requests.
"""

from __future__ import annotations

import argparse
import asyncio
from dataclasses import dataclass
from typing import Any

import orjson
import uvicorn
from starlette.applications import Starlette
from starlette.routing import Mount
from starlette.types import ASGIApp, Message, Receive, Scope, Send

import anthropic_emulator
import openai_emulator
from groq_emulator import EmulatorConfig, create_emulator_app
from tests.loopback import read_body

OPENAI_PREFIX, ANTHROPIC_PREFIX = "/oa", "/an"


@dataclass
class Rule:
    method: str
    path: str
    count: int


class Gate:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self.rules: list[Rule] = []
        self.held: list[dict[str, Any]] = []

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if scope["path"] == "/_gate":
            await self._control(scope, receive, send)
            return
        rule = next(
            (r for r in self.rules if r.count > 0 and r.method == scope["method"] and r.path == scope["path"]), None
        )
        if rule is None:
            await self.app(scope, receive, send)
            return
        rule.count -= 1
        messages: list[Message] = []

        async def capture(message: Message) -> None:
            messages.append(message)

        await self.app(scope, receive, capture)
        status = next((m["status"] for m in messages if m["type"] == "http.response.start"), None)
        self.held.append({"method": scope["method"], "path": scope["path"], "status": status})
        await asyncio.Event().wait()  # the response never leaves; the client dies waiting for it

    async def _control(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["method"] == "POST":
            spec = orjson.loads(await read_body(receive))
            self.rules.append(Rule(spec["method"], spec["path"], int(spec.get("count", 1))))
        payload = orjson.dumps({"held": self.held, "armed": [r.__dict__ for r in self.rules if r.count > 0]})
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"application/json")]})
        await send({"type": "http.response.body", "body": payload})


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m tests.reliability.gated_emulator")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--validating-seconds", type=float, default=0.05)
    parser.add_argument("--processing-seconds", type=float, default=0.3)
    parser.add_argument("--finalizing-seconds", type=float, default=0.05)
    args = parser.parse_args(argv)
    config = EmulatorConfig(
        seed=args.seed,
        time_scale=1.0,
        validating_seconds=args.validating_seconds,
        processing_seconds=args.processing_seconds,
        finalizing_seconds=args.finalizing_seconds,
        cancel_seconds=0.1,
    )
    openai = openai_emulator.EmulatorConfig(
        seed=args.seed,
        validating_seconds=args.validating_seconds,
        processing_seconds=args.processing_seconds,
        finalizing_seconds=args.finalizing_seconds,
        cancel_seconds=0.1,
    )
    anthropic = anthropic_emulator.EmulatorConfig(seed=args.seed, processing_seconds=args.processing_seconds)
    app = Starlette(
        routes=[
            Mount(OPENAI_PREFIX, openai_emulator.create_emulator_app(openai)),
            Mount(ANTHROPIC_PREFIX, anthropic_emulator.create_emulator_app(anthropic)),
            Mount("/", create_emulator_app(config)),
        ]
    )
    uvicorn.run(Gate(app), host="127.0.0.1", port=args.port, log_level="warning")


if __name__ == "__main__":
    main()
