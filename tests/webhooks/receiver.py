"""Real HTTP servers on 127.0.0.1 for tests: a scripted webhook receiver, and any ASGI app in a uvicorn thread."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from tests.loopback import UvicornThread, read_body

HANG = "hang"  # answer nothing for longer than the sender waits


@dataclass(frozen=True)
class ReceivedRequest:
    method: str
    path: str
    headers: dict[str, str]  # lower-case names
    body: bytes
    at: float  # time.monotonic() when it arrived


class Receiver:
    """A webhook receiver: the n-th request gets script[n] (an HTTP status, or HANG); later ones get `then`."""

    def __init__(
        self,
        script: Sequence[int | str] = (),
        *,
        then: int = 204,
        hang_seconds: float = 3.0,
        headers: dict[str, str] | None = None,
    ) -> None:
        self.script = list(script)
        self.then = then
        self.hang_seconds = hang_seconds
        self.extra_headers = headers or {}
        self.received: list[ReceivedRequest] = []
        self._server = UvicornThread(self._app)

    @property
    def port(self) -> int:
        return self._server.port

    def url(self, path: str = "/hooks/llm-batch", host: str = "127.0.0.1") -> str:
        return f"http://{host}:{self.port}{path}"

    async def _app(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        body = await read_body(receive)
        headers = {name.decode("latin-1").lower(): value.decode("latin-1") for name, value in scope["headers"]}
        self.received.append(ReceivedRequest(scope["method"], scope["path"], headers, body, time.monotonic()))
        index = len(self.received) - 1
        answer = self.script[index] if index < len(self.script) else self.then
        if answer == HANG:
            await asyncio.sleep(self.hang_seconds)
            answer = self.then
        response_headers = [(b"content-type", b"text/plain")]
        response_headers += [(k.encode(), v.encode()) for k, v in self.extra_headers.items()]
        await send({"type": "http.response.start", "status": int(answer), "headers": response_headers})
        await send({"type": "http.response.body", "body": b"ok"})

    def __enter__(self) -> Receiver:
        self._server.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self._server.stop()

    async def wait_for(self, count: int, *, within: float = 30.0) -> list[ReceivedRequest]:
        deadline = time.monotonic() + within
        while len(self.received) < count:
            if time.monotonic() > deadline:
                raise AssertionError(f"receiver got {len(self.received)} requests, expected {count}, in {within}s")
            await asyncio.sleep(0.02)
        return self.received
