"""Reusable fixtures and helpers for driving the Groq emulator with the real ``groq`` SDK.

- ``emulator_server`` (session): uvicorn on 127.0.0.1, port 0, in a background thread.
- ``live_emulator``: a fresh ``Emulator`` (ManualClock) swapped into that server, plus a sync ``Groq``.
- ``asgi_emulator``: a fresh ``Emulator`` (ManualClock) behind ``httpx.ASGITransport``, plus ``AsyncGroq``.
Helpers (``chat_line``, ``to_jsonl``, ``asgi_client``, ``run_batch``, ``read_lines``...) live in
``tests/emulator/helpers.py``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass

import pytest
from groq import AsyncGroq, Groq
from starlette.applications import Starlette

from groq_emulator import Emulator, ManualClock, create_emulator_app
from tests.groq_emulator.helpers import asgi_client, manual_config
from tests.loopback import UvicornThread


@dataclass
class LiveServer:
    app: Starlette
    base_url: str


@dataclass
class LiveEmulator:
    emulator: Emulator
    clock: ManualClock
    base_url: str
    client: Groq


@dataclass
class AsgiEmulator:
    emulator: Emulator
    clock: ManualClock
    app: Starlette
    client: AsyncGroq


@pytest.fixture(scope="session")
def emulator_server() -> Iterator[LiveServer]:
    app = create_emulator_app(manual_config())
    server = UvicornThread(app).start(within=10)
    yield LiveServer(app, server.base_url)
    server.stop()


@pytest.fixture
def live_emulator(emulator_server: LiveServer) -> Iterator[LiveEmulator]:
    clock = ManualClock()
    emulator = Emulator(manual_config(clock=clock))
    emulator_server.app.state.emulator = emulator
    client = Groq(base_url=emulator_server.base_url, api_key="test")
    try:
        yield LiveEmulator(emulator, clock, emulator_server.base_url, client)
    finally:
        client.close()


@pytest.fixture
async def asgi_emulator() -> AsyncIterator[AsgiEmulator]:
    clock = ManualClock()
    emulator = Emulator(manual_config(clock=clock))
    app = create_emulator_app(emulator=emulator)
    client = asgi_client(app)
    try:
        yield AsgiEmulator(emulator, clock, app, client)
    finally:
        await client.close()
