"""The service as the monolith meets it: a real uvicorn on 127.0.0.1 serving the app with its workers and the
built-in Groq emulator, behind a bearer token, with signed webhooks allowed to loopback receivers."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
from llm_batch_client import AsyncLlmBatchClient, LlmBatchClient

from groq_emulator.config import (
    ModelBehaviour,
    default_behaviours,
)
from tests.cli.live_server import LiveService, start_live_service
from tests.client.clean_venv import (
    POSTGRES_TARGET,
    TARGETS,
    CleanVenv,
    PythonMissing,
    Target,
    clean_venv,
)
from tests.conftest import fast_emulator_config
from tests.payloads import pr_batch
from tests.webhooks.helpers import webhook_settings

TOKEN = "monolith-token-for-tests"
# Tiers named provider:model; the service names a Groq model back bare, as it always did.
SMALL, LARGE = "groq:openai/gpt-oss-20b", "groq:openai/gpt-oss-120b"
SMALL_BARE, LARGE_BARE = "openai/gpt-oss-20b", "openai/gpt-oss-120b"
EXAMPLE_TARGETS = (TARGETS[0], TARGETS[-1])
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


def venv_for(target: Target) -> CleanVenv:
    try:
        return clean_venv(target)
    except PythonMissing as missing:
        pytest.skip(str(missing))  # even with CI=true: what this machine lacks cannot run here


@pytest.fixture(scope="session", params=TARGETS, ids=lambda target: target.name)
def client_venv(request: pytest.FixtureRequest) -> CleanVenv:
    """The client's wheel with Django in a clean venv, on each Python the client supports."""
    target: Target = request.param
    return venv_for(target)


@pytest.fixture(scope="session")
def postgres_example_venv() -> CleanVenv:
    """The newest Python and Django with psycopg: examples/django on PostgreSQL."""
    return venv_for(POSTGRES_TARGET)


@pytest.fixture(scope="session", params=EXAMPLE_TARGETS, ids=lambda target: target.name)
def example_venv(request: pytest.FixtureRequest) -> CleanVenv:
    """The oldest Python with Django 5.2 LTS, and the newest with Django 6: what examples/django runs on."""
    target: Target = request.param
    return venv_for(target)


def serving_provider_names(behaviours: dict[str, ModelBehaviour] | None = None) -> dict[str, Any]:
    """start_service() arguments: the Groq emulator with `behaviours` for its models. The service reads SMALL and
    LARGE (`groq:...`) as the Groq models they name."""
    return {"emulator_config": fast_emulator_config(behaviours=behaviours or default_behaviours())}
