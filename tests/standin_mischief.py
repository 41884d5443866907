"""What the independent stand-ins (tests/standin_provider.py, tests/standin_anthropic.py) do wrong on purpose,
as ASGI middleware in front of their routes, so that a test can break a provider from outside the service:

- `hold_first_create`: the first batch create is carried out (the batch exists and will be billed) and its
  answer never sent, so the worker waiting on it can be killed with the batch made and not recorded;
- `faults`: among the first `2 * faults` calls to the provider's API, every second one is answered 429 with
  `retry-after: 1` or a server error by turns (500 on OpenAI's and Groq's wire, 529 `overloaded_error` on
  Anthropic's), in each wire's error body.

`GET /_mischief` says whether the create is held, how many calls were made, how many were faulted, and the id of
every batch created (held or not), in order.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from dataclasses import dataclass, field
from typing import Literal

import orjson
from starlette.types import ASGIApp, Message, Receive, Scope, Send

Wire = Literal["groq", "openai", "anthropic"]


@dataclass
class Mischief:
    hold_first_create: bool = False
    faults: int = 0
    held: bool = False
    calls: int = 0
    faulted: Counter[int] = field(default_factory=Counter)
    created: list[str] = field(default_factory=list)

    def report(self) -> dict[str, object]:
        faulted = {str(status): count for status, count in self.faulted.items()}
        return {"held": self.held, "calls": self.calls, "faulted": faulted, "created": self.created}

    def recording(self, send: Send) -> Send:
        """`send`, noting the id of the batch a successful create answers with."""
        status, body = 0, bytearray()

        async def record(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            elif message["type"] == "http.response.body":
                body.extend(message.get("body", b""))
                if not message.get("more_body") and status == 200:
                    self.created.append(str(orjson.loads(bytes(body))["id"]))
            await send(message)

        return record


def _fault_body(wire: Wire, status: int) -> bytes:
    if wire == "anthropic":
        kind = "rate_limit_error" if status == 429 else "overloaded_error"
        return orjson.dumps({"type": "error", "error": {"type": kind, "message": f"stand-in {kind}"}})
    code = "rate_limit_exceeded" if status == 429 else "server_error"
    return orjson.dumps({"error": {"message": f"stand-in {code}", "type": code, "param": None, "code": code}})


async def _respond(send: Send, status: int, body: bytes, headers: list[tuple[bytes, bytes]]) -> None:
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


def with_mischief(app: ASGIApp, mischief: Mischief, wire: Wire) -> ASGIApp:
    server_error = 529 if wire == "anthropic" else 500

    async def middleware(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await app(scope, receive, send)
            return
        path, method = scope["path"], scope["method"]
        if path == "/_mischief":
            await _respond(send, 200, orjson.dumps(mischief.report()), [(b"content-type", b"application/json")])
            return
        if path.startswith("/_"):
            await app(scope, receive, send)
            return
        mischief.calls += 1
        creating = method == "POST" and path.endswith("/batches")
        if creating and mischief.hold_first_create and not mischief.held:
            mischief.held = True

            async def swallow(_message: Message) -> None:
                return None

            await app(scope, receive, mischief.recording(swallow))  # the batch is created; no answer is sent
            await asyncio.Event().wait()
        if mischief.calls <= 2 * mischief.faults and mischief.calls % 2 == 0:
            status = 429 if mischief.calls % 4 == 2 else server_error
            mischief.faulted[status] += 1
            headers = [(b"content-type", b"application/json")]
            if status == 429:
                headers.append((b"retry-after", b"1"))
            await _respond(send, status, _fault_body(wire, status), headers)
            return
        await app(scope, receive, mischief.recording(send) if creating else send)

    return middleware
