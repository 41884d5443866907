"""Fixtures: the OpenAI emulator in process behind ``httpx.ASGITransport`` with ``AsyncOpenAI`` (ManualClock),
and one served by uvicorn on 127.0.0.1 for what only a socket shows (client timeouts)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass

import pytest
from openai import AsyncOpenAI
from starlette.applications import Starlette

from openai_emulator import Emulator, ManualClock, create_emulator_app
from tests.loopback import UvicornThread
from tests.openai_emulator.helpers import asgi_client, manual_config


@dataclass
class AsgiOpenAI:
    emulator: Emulator
    clock: ManualClock
    app: Starlette
    client: AsyncOpenAI


@dataclass
class LiveOpenAI:
    app: Starlette
    base_url: str


@pytest.fixture
async def openai_emulator() -> AsyncIterator[AsgiOpenAI]:
    clock = ManualClock()
    emulator = Emulator(manual_config(clock=clock))
    app = create_emulator_app(emulator=emulator)
    client = asgi_client(app)
    try:
        yield AsgiOpenAI(emulator, clock, app, client)
    finally:
        await client.close()


@pytest.fixture(scope="module")
def live_openai() -> Iterator[LiveOpenAI]:
    app = create_emulator_app(manual_config())
    server = UvicornThread(app).start(within=10)
    yield LiveOpenAI(app, f"{server.base_url}/v1")
    server.stop()
