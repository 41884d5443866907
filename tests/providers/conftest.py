"""The Groq emulator behind ``GroqBatchProvider``: in process (``httpx.ASGITransport``) or over a real
uvicorn on 127.0.0.1 (port 0, background thread), one fresh ``Emulator`` with a ``ManualClock`` per test.

Both transports serve ``env.front``, a swappable ASGI app, so a test can put a small middleware in front
of the emulator (``env.install(...)``) to hold back or cut a download, or rewrite a response.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field

import httpx
import pytest
from starlette.applications import Starlette
from starlette.types import ASGIApp, Receive, Scope, Send

from groq_emulator import Emulator, EmulatorConfig, ManualClock, create_emulator_app
from service.providers.groq import GroqBatchProvider
from tests.loopback import UvicornThread

ASGI_BASE_URL = "http://emulator.test"


class SwappableApp:
    """An ASGI app that forwards to whatever ``self.app`` currently is."""

    def __init__(self) -> None:
        self.app: ASGIApp | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if self.app is None:
            raise RuntimeError("no app installed")
        await self.app(scope, receive, send)


@dataclass
class LoopbackServer:
    front: SwappableApp
    base_url: str


@pytest.fixture(scope="session")
def loopback_server() -> Iterator[LoopbackServer]:
    front = SwappableApp()
    server = UvicornThread(front).start(within=10)
    yield LoopbackServer(front, server.base_url)
    server.stop()


@dataclass
class GroqEnv:
    """One emulator and the way to reach it; ``provider()`` builds a GroqBatchProvider for it."""

    transport: str  # "asgi" or "loopback"
    emulator: Emulator
    clock: ManualClock
    emulator_app: Starlette
    front: SwappableApp
    base_url: str
    _providers: list[GroqBatchProvider] = field(default_factory=list)
    _http_clients: list[httpx.AsyncClient] = field(default_factory=list)

    def install(self, app: ASGIApp) -> None:
        """Serve ``app`` (usually a middleware around ``emulator_app``) instead of the bare emulator."""
        self.front.app = app

    def provider(
        self, *, max_retries: int = 0, timeout_seconds: float = 10.0, completion_window: str = "24h"
    ) -> GroqBatchProvider:
        http_client = None
        if self.transport == "asgi":
            http_client = httpx.AsyncClient(transport=httpx.ASGITransport(app=self.front))
            self._http_clients.append(http_client)
        provider = GroqBatchProvider.connect(
            api_key="test-key",
            base_url=self.base_url,
            timeout_seconds=timeout_seconds,
            max_retries=max_retries,
            completion_window=completion_window,
            http_client=http_client,
        )
        self._providers.append(provider)
        return provider

    def statuses(self, method: str, path: str) -> list[int]:
        """Statuses of the logged API requests with this method and path, in order."""
        return [s for m, p, s in list(self.emulator.request_log) if m == method and p == path]

    async def aclose(self) -> None:
        for provider in self._providers:
            await provider.close()
        for client in self._http_clients:
            await client.aclose()


def new_emulator() -> tuple[Emulator, ManualClock, Starlette]:
    clock = ManualClock()
    emulator = Emulator(EmulatorConfig(clock=clock, seed=11))
    return emulator, clock, create_emulator_app(emulator=emulator)


async def _make_env(transport: str, request: pytest.FixtureRequest) -> AsyncIterator[GroqEnv]:
    emulator, clock, app = new_emulator()
    if transport == "asgi":
        front, base_url = SwappableApp(), ASGI_BASE_URL
    else:
        server: LoopbackServer = request.getfixturevalue("loopback_server")
        front, base_url = server.front, server.base_url
    front.app = app
    env = GroqEnv(transport, emulator, clock, app, front, base_url)
    try:
        yield env
    finally:
        emulator.faults.clear()
        await env.aclose()


@pytest.fixture(params=["asgi", "loopback"])
async def env(request: pytest.FixtureRequest) -> AsyncIterator[GroqEnv]:
    """The same test in process and over real HTTP."""
    async for value in _make_env(request.param, request):
        yield value


@pytest.fixture
async def loopback_env(request: pytest.FixtureRequest) -> AsyncIterator[GroqEnv]:
    """Real sockets only: timeouts, streaming and broken connections need them (ASGITransport buffers
    the whole response and ignores timeouts)."""
    async for value in _make_env("loopback", request):
        yield value


@pytest.fixture
async def asgi_env(request: pytest.FixtureRequest) -> AsyncIterator[GroqEnv]:
    async for value in _make_env("asgi", request):
        yield value
