"""The OpenAI and Anthropic emulators behind their adapters, in process or over a real uvicorn on 127.0.0.1 (the
session's ``loopback_server`` of ``conftest.py``), one fresh emulator with a ``ManualClock`` per test.

``OpenAIEnv.provider()`` / ``AnthropicEnv.provider()`` build an adapter through its ``connect``; ``install``
puts a middleware (below) in front of the emulator; ``statuses`` reads the emulator's request log.
"""

from __future__ import annotations

import asyncio
import threading
from abc import ABC, abstractmethod
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import httpx2
import orjson
import pytest
from starlette.applications import Starlette
from starlette.types import ASGIApp, Message, Receive, Scope, Send

import anthropic_emulator
import openai_emulator
from groq_emulator import ManualClock
from groq_emulator.state import RequestRecord
from service.pipeline.chunk_names import CHUNK_METADATA_KEY
from service.providers.anthropic import AnthropicBatchProvider
from service.providers.openai import OpenAIBatchProvider
from service.providers.protocol import ChunkRequest
from tests.providers.conftest import LoopbackServer, SwappableApp


@dataclass(kw_only=True)
class EmulatedEnv:
    transport: str  # "asgi" or "loopback"
    clock: ManualClock
    emulator_app: Starlette
    front: SwappableApp
    base_url: str
    request_log: list[RequestRecord]  # the emulator's own list: (method, path, status) of each API request
    _closers: list[Callable[[], Awaitable[None]]] = field(default_factory=list)

    def install(self, app: ASGIApp) -> None:
        """Serve ``app`` (usually a middleware around ``emulator_app``) instead of the bare emulator."""
        self.front.app = app

    def now(self) -> datetime:
        """The emulated time, as naive UTC (like the database's timestamps)."""
        return datetime.fromtimestamp(self.clock.now(), UTC).replace(tzinfo=None)

    def statuses(self, method: str, path: str) -> list[int]:
        """Statuses of the logged API requests with this method and path, in order."""
        return [s for m, p, s in list(self.request_log) if m == method and p == path]

    async def aclose(self) -> None:
        for closer in reversed(self._closers):
            await closer()


@dataclass(kw_only=True)
class OpenAIEnv(EmulatedEnv):
    emulator: openai_emulator.Emulator

    def provider(
        self,
        *,
        name: str = "openai",
        max_retries: int = 0,
        timeout_seconds: float = 10.0,
        completion_window: str = "24h",
        endpoint: str = "/v1/chat/completions",
    ) -> OpenAIBatchProvider:
        http_client = None
        if self.transport == "asgi":  # the SDK still takes an httpx client; over loopback it makes its httpx2 one
            http_client = httpx.AsyncClient(transport=httpx.ASGITransport(app=self.front))
            self._closers.append(http_client.aclose)
        provider = OpenAIBatchProvider.connect(
            name=name,
            api_key="sk-test",
            base_url=self.base_url,
            timeout_seconds=timeout_seconds,
            max_retries=max_retries,
            completion_window=completion_window,
            endpoint=endpoint,
            http_client=http_client,
        )
        self._closers.append(provider.close)
        return provider


@dataclass(kw_only=True)
class AnthropicEnv(EmulatedEnv):
    emulator: anthropic_emulator.Emulator

    def provider(self, *, max_retries: int = 0, timeout_seconds: float = 10.0) -> AnthropicBatchProvider:
        http_client = None
        if self.transport == "asgi":  # the SDK 2.x takes only an httpx2 client
            http_client = httpx2.AsyncClient(transport=httpx2.ASGITransport(app=self.front))
            self._closers.append(http_client.aclose)
        provider = AnthropicBatchProvider.connect(
            api_key="sk-ant-test",
            base_url=self.base_url,
            timeout_seconds=timeout_seconds,
            max_retries=max_retries,
            http_client=http_client,
        )
        self._closers.append(provider.close)
        return provider


def _front(transport: str, request: pytest.FixtureRequest, asgi_base: str, path: str) -> tuple[SwappableApp, str]:
    if transport == "asgi":
        return SwappableApp(), asgi_base + path
    server: LoopbackServer = request.getfixturevalue("loopback_server")
    return server.front, server.base_url + path


async def openai_env(transport: str, request: pytest.FixtureRequest, **config: Any) -> AsyncIterator[OpenAIEnv]:
    clock = openai_emulator.ManualClock()
    emulator = openai_emulator.Emulator(openai_emulator.EmulatorConfig(clock=clock, seed=7, **config))
    app = openai_emulator.create_emulator_app(emulator=emulator)
    front, base_url = _front(transport, request, "http://openai.test", "/v1")
    front.app = app
    env = OpenAIEnv(
        transport=transport, clock=clock, emulator_app=app, front=front, base_url=base_url,
        request_log=emulator.request_log, emulator=emulator,
    )  # fmt: skip
    try:
        yield env
    finally:
        emulator.faults.clear()
        await env.aclose()


async def anthropic_env(transport: str, request: pytest.FixtureRequest, **config: Any) -> AsyncIterator[AnthropicEnv]:
    clock = anthropic_emulator.ManualClock()
    emulator = anthropic_emulator.Emulator(anthropic_emulator.EmulatorConfig(clock=clock, seed=7, **config))
    app = anthropic_emulator.create_emulator_app(emulator=emulator)
    front, base_url = _front(transport, request, "http://anthropic.test", "")
    front.app = app
    env = AnthropicEnv(
        transport=transport, clock=clock, emulator_app=app, front=front, base_url=base_url,
        request_log=emulator.request_log, emulator=emulator,
    )  # fmt: skip
    try:
        yield env
    finally:
        emulator.faults.clear()
        await env.aclose()


# -- chunks ------------------------------------------------------------------------------------------------
def write_jsonl(path: Path, lines: list[dict[str, Any]]) -> bytes:
    data = b"".join(orjson.dumps(line) + b"\n" for line in lines)
    path.write_bytes(data)
    return data


def chunk_request(tmp_path: Path, key: str, lines: list[dict[str, Any]], **metadata: str) -> ChunkRequest:
    """A chunk as the lifecycle hands it over: its lines spooled, its key in its metadata."""
    path = tmp_path / f"{key.replace('/', '_')}-{len(list(tmp_path.iterdir()))}.jsonl"
    write_jsonl(path, lines)
    return ChunkRequest(
        key=key,
        path=path,
        line_count=len(lines),
        model="m",
        metadata={CHUNK_METADATA_KEY: key, **metadata},
    )


# -- middlewares in front of an emulator -------------------------------------------------------------------
class _BodyOf(ABC):
    """Collects the body of a download (a path ending in ``suffix``) and hands it to ``finish`` whole."""

    def __init__(self, app: ASGIApp, suffix: str, head: int) -> None:
        self.app, self.suffix, self.head = app, suffix, head

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not scope["path"].endswith(self.suffix):
            await self.app(scope, receive, send)
            return
        body = bytearray()

        async def collect(message: Message) -> None:
            if message["type"] != "http.response.body":
                await send(message)
                return
            body.extend(message.get("body", b""))
            if not message.get("more_body", False):
                await self.finish(bytes(body), send)

        await self.app(scope, receive, collect)

    @abstractmethod
    async def finish(self, body: bytes, send: Send) -> None: ...


class HoldBackDownload(_BodyOf):
    """Sends the first ``head`` bytes of a download, then waits (up to 5 s) for ``release``."""

    def __init__(self, app: ASGIApp, suffix: str, head: int = 16_384) -> None:
        super().__init__(app, suffix, head)
        self.release = threading.Event()  # set by the test, read in the server's thread
        self.released_in_time: bool | None = None

    async def finish(self, body: bytes, send: Send) -> None:
        await send({"type": "http.response.body", "body": body[: self.head], "more_body": True})
        self.released_in_time = await asyncio.to_thread(self.release.wait, 5.0)
        await send({"type": "http.response.body", "body": body[self.head :], "more_body": False})


class CutDownload(_BodyOf):
    """Sends the first ``head`` bytes of a download, then drops the connection."""

    async def finish(self, body: bytes, send: Send) -> None:
        await send({"type": "http.response.body", "body": body[: self.head], "more_body": True})
        raise ConnectionResetError("emulated: connection lost mid-download")


class ReplaceDownload(_BodyOf):
    """Serves ``body`` instead of the download (the real one is read and dropped), in one ASGI message."""

    def __init__(self, app: ASGIApp, suffix: str, body: bytes) -> None:
        super().__init__(app, suffix, head=0)
        self.body = body

    async def finish(self, body: bytes, send: Send) -> None:
        await send({"type": "http.response.body", "body": self.body, "more_body": False})
