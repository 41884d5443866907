"""Helpers for driving the OpenAI emulator with the official ``openai`` SDK (importable from any test)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, Literal

import httpx
import orjson
from openai import AsyncOpenAI
from starlette.applications import Starlette

from openai_emulator import Emulator, EmulatorConfig, ManualClock

CHAT: Literal["/v1/chat/completions"] = "/v1/chat/completions"
RESPONSES: Literal["/v1/responses"] = "/v1/responses"
PROMPT = "Summarise this pull request: fix cache invalidation in the session handler."
TERMINAL = ("completed", "failed", "expired", "cancelled")


def chat_line(custom_id: str, model: str = "gpt-5-mini", content: str = PROMPT, **body: Any) -> dict[str, Any]:
    """One valid /v1/chat/completions input line; extra keyword arguments go into ``body``."""
    payload = {"model": model, "messages": [{"role": "user", "content": content}], **body}
    return {"custom_id": custom_id, "method": "POST", "url": CHAT, "body": payload}


def responses_line(custom_id: str, model: str = "gpt-5.4-mini", prompt: str = PROMPT, **body: Any) -> dict[str, Any]:
    payload = {"model": model, "input": prompt, **body}
    return {"custom_id": custom_id, "method": "POST", "url": RESPONSES, "body": payload}


def to_jsonl(lines: Iterable[dict[str, Any]]) -> bytes:
    return b"".join(orjson.dumps(line) + b"\n" for line in lines)


def manual_config(**overrides: Any) -> EmulatorConfig:
    overrides.setdefault("clock", ManualClock())
    return EmulatorConfig(**overrides)


def asgi_client(app: Starlette, **options: Any) -> AsyncOpenAI:
    """``AsyncOpenAI`` talking to ``app`` in process over ``httpx.ASGITransport`` (no sockets)."""
    http_client = httpx.AsyncClient(transport=httpx.ASGITransport(app=app))
    return AsyncOpenAI(base_url="http://emulator/v1", api_key="sk-test", http_client=http_client, **options)  # type: ignore[arg-type]


def advance(emulator: Emulator, seconds: float) -> None:
    clock = emulator.clock
    assert isinstance(clock, ManualClock)
    clock.advance(seconds)


async def create(client: AsyncOpenAI, data: bytes, endpoint: str = CHAT, **extra: Any) -> Any:
    uploaded = await client.files.create(file=("input.jsonl", data), purpose="batch")
    extra.setdefault("completion_window", "24h")
    return await client.batches.create(input_file_id=uploaded.id, endpoint=endpoint, **extra)  # type: ignore[arg-type]


async def run_batch(
    client: AsyncOpenAI, emulator: Emulator, data: bytes, endpoint: str = CHAT, *, step: float = 10.0, **extra: Any
) -> Any:
    """Upload ``data``, create a batch and advance the ManualClock until the batch is terminal."""
    batch = await create(client, data, endpoint, **extra)
    for _ in range(200):
        batch = await client.batches.retrieve(batch.id)
        if batch.status in TERMINAL:
            return batch
        advance(emulator, step)
    raise AssertionError(f"batch still {batch.status}")


async def read_lines(client: AsyncOpenAI, file_id: str | None) -> list[dict[str, Any]]:
    """Parsed lines of an output/error file (``[]`` for ``None``)."""
    if file_id is None:
        return []
    response = await client.files.content(file_id)
    return [orjson.loads(line) for line in response.text.splitlines() if line]


async def results(client: AsyncOpenAI, batch: Any) -> dict[str, dict[str, Any]]:
    """Every result line of a finished batch by custom_id (output and error file together)."""
    found = await read_lines(client, batch.output_file_id) + await read_lines(client, batch.error_file_id)
    by_id = {line["custom_id"]: line for line in found}
    assert len(by_id) == len(found)
    return by_id


def body(line: dict[str, Any]) -> dict[str, Any]:
    value: dict[str, Any] = line["response"]["body"]
    return value
