"""Shared fixtures: databases (a SQLite file, and a fresh PostgreSQL database per test), the app under test
with its workers running, and the Groq emulator it talks to through the official SDK."""

from __future__ import annotations

import asyncio
import concurrent.futures
import os
import uuid
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest
from asgi_lifespan import LifespanManager

import anthropic_emulator
import openai_emulator
from groq_emulator import Emulator, EmulatorConfig, create_emulator_app
from service.app import create_app
from service.settings import Settings

POSTGRES_ADMIN_DSN = os.environ.get("TEST_POSTGRES_DSN", "postgresql://postgres@127.0.0.1:5432/test")
IN_CI = os.environ.get("CI", "").lower() == "true"


async def _postgres_available() -> str | None:
    try:
        connection = await asyncpg.connect(POSTGRES_ADMIN_DSN, timeout=3)
    except Exception as error:  # any failure to connect means: no server here
        return f"{type(error).__name__}: {error}"
    await connection.close()
    return None


@pytest.fixture(scope="session")
def postgres_admin_dsn() -> str:
    with concurrent.futures.ThreadPoolExecutor(1) as pool:  # pytest-asyncio may already run a loop here
        problem = pool.submit(asyncio.run, _postgres_available()).result()
    if problem is not None:
        if IN_CI:
            pytest.fail(f"CI=true but PostgreSQL at {POSTGRES_ADMIN_DSN} is not reachable: {problem}")
        pytest.skip(f"PostgreSQL at {POSTGRES_ADMIN_DSN} is not reachable ({problem}); set TEST_POSTGRES_DSN")
    return POSTGRES_ADMIN_DSN


@pytest.fixture
async def postgres_url(postgres_admin_dsn: str) -> AsyncIterator[str]:
    name = f"llm_batch_test_{uuid.uuid4().hex[:12]}"
    admin = await asyncpg.connect(postgres_admin_dsn)
    await admin.execute(f'CREATE DATABASE "{name}"')
    await admin.close()
    base = postgres_admin_dsn.rsplit("/", 1)[0]
    yield f"{base}/{name}"
    admin = await asyncpg.connect(postgres_admin_dsn)
    await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    await admin.close()


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path}/llm_batch.db"
    url: str = request.getfixturevalue("postgres_url")
    return url


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path}/llm_batch.db"


def fast_emulator_config(**overrides: Any) -> EmulatorConfig:
    """Emulated schedule of ~0.3 s per provider batch, so a two-pass run finishes in about a second."""
    values: dict[str, Any] = {
        "seed": 7,
        "time_scale": 1.0,
        "validating_seconds": 0.05,
        "processing_seconds": 0.15,
        "finalizing_seconds": 0.05,
        "cancel_seconds": 0.1,
    }
    values.update(overrides)
    return EmulatorConfig(**values)


def fast_openai_config(**overrides: Any) -> openai_emulator.EmulatorConfig:
    """OpenAI's emulated schedule at the same pace as fast_emulator_config's."""
    values: dict[str, Any] = {
        "seed": 7,
        "time_scale": 1.0,
        "validating_seconds": 0.05,
        "processing_seconds": 0.15,
        "finalizing_seconds": 0.05,
        "cancel_seconds": 0.1,
    }
    values.update(overrides)
    return openai_emulator.EmulatorConfig(**values)


def fast_anthropic_config(**overrides: Any) -> anthropic_emulator.EmulatorConfig:
    """Anthropic's emulated schedule at the same pace as fast_emulator_config's."""
    values: dict[str, Any] = {"seed": 7, "time_scale": 1.0, "processing_seconds": 0.25, "cancel_seconds": 0.1}
    values.update(overrides)
    return anthropic_emulator.EmulatorConfig(**values)


def test_settings(database_url: str, tmp_path: Path, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "database_url": database_url,
        "groq_api_key": None,
        "openai_api_key": None,
        "anthropic_api_key": None,
        "poll_interval_seconds": 0.05,
        "worker_idle_seconds": 0.02,
        "spool_dir": str(tmp_path / "spool"),
        "api_tokens": [],
    }
    values.update(overrides)
    return Settings(**values)


class Service:
    """The app with its workers running, an HTTP client on it, and the emulators behind it (`emulator` is
    Groq's, as it was the only one)."""

    def __init__(
        self,
        client: httpx.AsyncClient,
        emulator: Emulator,
        settings: Settings,
        emulator_app: Any,
        app: Any,
        openai: openai_emulator.Emulator | None = None,
        anthropic: anthropic_emulator.Emulator | None = None,
        emulator_apps: dict[str, Any] | None = None,
    ) -> None:
        self.client = client
        self.emulator = emulator
        self.settings = settings
        self.emulator_app = emulator_app
        self.app = app
        self.openai = openai or openai_emulator.Emulator()
        self.anthropic = anthropic or anthropic_emulator.Emulator()
        self.emulator_apps = emulator_apps or {}

    async def submit(self, payload: dict[str, Any], *, fallback: bool = False) -> dict[str, Any]:
        response = await self.client.post("/batches", params={"fallback": str(fallback).lower()}, json=payload)
        assert response.status_code == 202, response.text
        body: dict[str, Any] = response.json()
        return body

    async def wait(self, batch_id: str, *, within: float = 60.0) -> dict[str, Any]:
        deadline = asyncio.get_running_loop().time() + within
        while True:
            response = await self.client.get(f"/batches/{batch_id}")
            body: dict[str, Any] = response.json()
            if body["status"] in ("completed", "failed", "cancelled"):
                return body
            if asyncio.get_running_loop().time() > deadline:
                raise AssertionError(f"batch {batch_id} still {body['status']} after {within}s: {body}")
            await asyncio.sleep(0.05)

    async def results(self, batch_id: str) -> list[dict[str, Any]]:
        rows: list[dict[str, Any]] = []
        after: str | None = None
        while True:
            params: dict[str, Any] = {"limit": 1000}
            if after:
                params["after"] = after
            page = (await self.client.get(f"/batches/{batch_id}/results", params=params)).json()
            rows.extend(page["data"])
            if not page["has_more"]:
                return rows
            after = page["next_cursor"]


ServiceFactory = Callable[..., Any]


async def wait_until(predicate: Callable[[], bool], *, within: float = 30.0, what: str = "condition") -> None:
    """Poll something the test cannot subscribe to (the emulator's state) until it holds."""
    deadline = asyncio.get_running_loop().time() + within
    while not predicate():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"{what} did not happen within {within}s")
        await asyncio.sleep(0.02)


@pytest.fixture
async def start_service(tmp_path: Path) -> AsyncIterator[ServiceFactory]:
    """start_service(database_url, settings overrides..., emulator_config=...) -> async context of a Service."""
    stacks: list[Any] = []

    async def start(
        database_url: str,
        *,
        emulator_config: EmulatorConfig | None = None,
        openai_config: openai_emulator.EmulatorConfig | None = None,
        anthropic_config: anthropic_emulator.EmulatorConfig | None = None,
        **overrides: Any,
    ) -> Service:
        emulator = Emulator(emulator_config or fast_emulator_config())
        openai = openai_emulator.Emulator(openai_config or fast_openai_config())
        anthropic = anthropic_emulator.Emulator(anthropic_config or fast_anthropic_config())
        settings = test_settings(database_url, tmp_path, **overrides)
        emulator_app = create_emulator_app(emulator=emulator)
        apps = {
            "groq": emulator_app,
            "openai": openai_emulator.create_emulator_app(emulator=openai),
            "anthropic": anthropic_emulator.create_emulator_app(emulator=anthropic),
        }
        app = create_app(settings, emulator=emulator_app, emulators=apps)
        manager = LifespanManager(app, startup_timeout=30, shutdown_timeout=30)
        await manager.__aenter__()
        client = httpx.AsyncClient(transport=httpx.ASGITransport(app=manager.app), base_url="http://llm-batch.test")
        stacks.append((manager, client))
        return Service(client, emulator, settings, emulator_app, app, openai, anthropic, apps)

    yield start
    for manager, client in reversed(stacks):
        await client.aclose()
        await manager.__aexit__(None, None, None)
