"""Helpers for driving the Groq emulator with the real ``groq`` SDK (importable from any test)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, Literal

import httpx
import orjson
from groq import AsyncGroq
from starlette.applications import Starlette

from groq_emulator import Emulator, EmulatorConfig, ManualClock

CHAT_URL: Literal["/v1/chat/completions"] = "/v1/chat/completions"


def chat_line(
    custom_id: str,
    model: str = "openai/gpt-oss-20b",
    content: str = "Summarise this pull request: fix cache invalidation in the session handler.",
    **body: Any,
) -> dict[str, Any]:
    """One valid batch input line; extra keyword arguments go into ``body``."""
    payload = {"model": model, "messages": [{"role": "user", "content": content}], **body}
    return {"custom_id": custom_id, "method": "POST", "url": CHAT_URL, "body": payload}


def to_jsonl(lines: Iterable[dict[str, Any]]) -> bytes:
    return b"".join(orjson.dumps(line) + b"\n" for line in lines)


def manual_config(**overrides: Any) -> EmulatorConfig:
    overrides.setdefault("clock", ManualClock())
    return EmulatorConfig(**overrides)


def asgi_client(app: Starlette, **options: Any) -> AsyncGroq:
    """``AsyncGroq`` talking to ``app`` in process (no sockets)."""
    http_client = httpx.AsyncClient(transport=httpx.ASGITransport(app=app))
    return AsyncGroq(base_url="http://emulator", api_key="test", http_client=http_client, **options)


def advance(emulator: Emulator, seconds: float) -> None:
    clock = emulator.clock
    assert isinstance(clock, ManualClock)
    clock.advance(seconds)


async def run_batch(
    client: AsyncGroq,
    emulator: Emulator,
    data: bytes,
    *,
    step: float = 5.0,
    max_steps: int = 100,
    **create: Any,
) -> Any:
    """Upload ``data``, create a batch and advance the ManualClock until the batch is terminal."""
    uploaded = await client.files.create(file=("input.jsonl", data), purpose="batch")
    assert uploaded.id is not None
    create.setdefault("completion_window", "24h")
    batch: Any = await client.batches.create(input_file_id=uploaded.id, endpoint=CHAT_URL, **create)
    for _ in range(max_steps):
        batch = await client.batches.retrieve(batch.id)
        if batch.status in ("completed", "failed", "expired", "cancelled"):
            return batch
        advance(emulator, step)
    raise AssertionError(f"batch still {batch.status}")


async def read_lines(client: AsyncGroq, file_id: str | None) -> list[dict[str, Any]]:
    """Parsed lines of an output/error file (``[]`` for ``None``)."""
    if file_id is None:
        return []
    response = await client.files.content(file_id)
    return [orjson.loads(line) for line in (await response.text()).splitlines() if line]
