"""Fixtures: the Anthropic emulator in process (``httpx2.ASGITransport``, the SDK's own HTTP package) with
``AsyncAnthropic`` on a ManualClock, and one served by uvicorn on 127.0.0.1 for client timeouts."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass

import pytest
from anthropic import AsyncAnthropic
from starlette.applications import Starlette

from anthropic_emulator import Emulator, ManualClock, create_emulator_app
from tests.anthropic_emulator.helpers import asgi_client, manual_config
from tests.loopback import UvicornThread


@dataclass
class AsgiAnthropic:
    emulator: Emulator
    clock: ManualClock
    app: Starlette
    client: AsyncAnthropic


@dataclass
class LiveAnthropic:
    app: Starlette
    base_url: str


@pytest.fixture
async def anthropic_emulator() -> AsyncIterator[AsgiAnthropic]:
    clock = ManualClock()
    emulator = Emulator(manual_config(clock=clock))
    app = create_emulator_app(emulator=emulator)
    client = asgi_client(app)
    try:
        yield AsgiAnthropic(emulator, clock, app, client)
    finally:
        await client.close()


@pytest.fixture(scope="module")
def live_anthropic() -> Iterator[LiveAnthropic]:
    app = create_emulator_app(manual_config())
    server = UvicornThread(app).start(within=10)
    yield LiveAnthropic(app, server.base_url)
    server.stop()
