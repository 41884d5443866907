"""The service as the monolith meets it: a real uvicorn on 127.0.0.1 serving the app with its workers and the
built-in Groq emulator, behind a bearer token, with signed webhooks allowed to loopback receivers."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
from llm_batch_client import AsyncLlmBatchClient, LlmBatchClient

from tests.cli.live_server import LiveService, start_live_service
from tests.client.clean_venv import CleanVenv, clean_venv
from tests.payloads import pr_batch
from tests.webhooks.helpers import webhook_settings

TOKEN = "monolith-token-for-tests"
PARAMS: dict[str, Any] = pr_batch(1)["params"]


def start_service(tmp_path: Path, **overrides: Any) -> LiveService:
    settings = {"api_tokens": [TOKEN], **webhook_settings(), **overrides}
    return start_live_service(f"sqlite:///{tmp_path}/llm_batch.db", tmp_path, **settings)


@pytest.fixture
def service(tmp_path: Path) -> Iterator[LiveService]:
    live = start_service(tmp_path)
    yield live
    live.server.stop()


@pytest.fixture
def client(service: LiveService) -> Iterator[LlmBatchClient]:
    with LlmBatchClient(service.url, token=TOKEN, timeout=30) as llm_batch:
        yield llm_batch


@pytest.fixture
async def async_client(service: LiveService) -> AsyncIterator[AsyncLlmBatchClient]:
    async with AsyncLlmBatchClient(service.url, token=TOKEN, timeout=30) as llm_batch:
        yield llm_batch


def items(count: int, *, start: int = 1, with_pk: bool = True) -> list[dict[str, Any]]:
    """PR analyses, each with metadata {"pk": n} as the Django command sends them."""
    payload: list[dict[str, Any]] = pr_batch(count, start=start)["items"]
    if with_pk:
        for number, item in enumerate(payload, start=start):
            item["metadata"] = {"pk": number}
    return payload


@pytest.fixture(scope="session")
def client_venv() -> CleanVenv:
    return clean_venv()
