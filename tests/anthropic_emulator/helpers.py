"""Helpers for driving the Anthropic emulator with the official ``anthropic`` SDK (importable from any test)."""

from __future__ import annotations

from typing import Any

import httpx2
from anthropic import AsyncAnthropic
from starlette.applications import Starlette

from anthropic_emulator import Emulator, EmulatorConfig, ManualClock, create_emulator_app

PROMPT = "Summarise this pull request: fix cache invalidation in the session handler."


def request(custom_id: str, model: str = "claude-haiku-4-5", content: str = PROMPT, **params: Any) -> dict[str, Any]:
    """One batch request; extra keyword arguments go into ``params``."""
    body: dict[str, Any] = {"model": model, "max_tokens": 1024, "messages": [{"role": "user", "content": content}]}
    body.update(params)
    return {"custom_id": custom_id, "params": body}


def manual_config(**overrides: Any) -> EmulatorConfig:
    overrides.setdefault("clock", ManualClock())
    return EmulatorConfig(**overrides)


def asgi_client(app: Starlette, **options: Any) -> AsyncAnthropic:
    """``AsyncAnthropic`` talking to ``app`` in process. The SDK 2.x takes only an ``httpx2`` client."""
    http_client = httpx2.AsyncClient(transport=httpx2.ASGITransport(app=app))
    return AsyncAnthropic(base_url="http://emulator", api_key="sk-ant-test", http_client=http_client, **options)


def advance(emulator: Emulator, seconds: float) -> None:
    clock = emulator.clock
    assert isinstance(clock, ManualClock)
    clock.advance(seconds)


async def run_batch(client: AsyncAnthropic, emulator: Emulator, requests: list[dict[str, Any]]) -> Any:
    """Create a batch and advance the ManualClock until it has ended."""
    batch = await client.messages.batches.create(requests=requests)  # type: ignore[arg-type]
    for _ in range(100):
        batch = await client.messages.batches.retrieve(batch.id)
        if batch.processing_status == "ended":
            return batch
        advance(emulator, 30)
    raise AssertionError(f"batch still {batch.processing_status}")


async def results(client: AsyncAnthropic, batch_id: str) -> dict[str, Any]:
    """The SDK's parsed result lines by custom_id."""
    found = [line async for line in await client.messages.batches.results(batch_id)]
    by_id = {line.custom_id: line.result for line in found}
    assert len(by_id) == len(found)
    return by_id


async def run(requests: list[dict[str, Any]], **config: Any) -> dict[str, Any]:
    """Run ``requests`` on a fresh emulator; their results by custom_id."""
    emulator = Emulator(manual_config(**config))
    async with asgi_client(create_emulator_app(emulator=emulator)) as client:
        batch = await run_batch(client, emulator, requests)
        return await results(client, batch.id)
