"""create_app(): the HTTP routes, plus a lifespan that migrates the database and runs the workers."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx
from fastapi import FastAPI
from starlette.types import ASGIApp

from service.api import batches, health
from service.api.deps import AppState
from service.api.errors import install_problem_handlers
from service.api.openapi import install_openapi
from service.db import create_engine, migrate, session_factory
from service.pipeline.cost import PriceTable
from service.providers.groq import GroqBatchProvider
from service.settings import Settings, get_settings
from service.workers.context import WorkerContext
from service.workers.loop import ProviderHealth, run_worker

logger = logging.getLogger("service")
EMULATOR_BASE_URL = "http://groq-emulator.invalid"
WORKER_STOP_GRACE_SECONDS = 25.0


def _emulator_app(settings: Settings) -> ASGIApp:
    from service.emulator import EmulatorConfig, create_emulator_app

    return create_emulator_app(EmulatorConfig(seed=settings.emulator_seed, time_scale=settings.emulator_time_scale))


def build_provider(settings: Settings, emulator: ASGIApp | None = None) -> tuple[GroqBatchProvider, str]:
    """Groq when a key is set; otherwise the built-in emulator, in-process over an ASGI transport."""
    if not settings.uses_emulator:
        assert settings.groq_api_key is not None
        provider = GroqBatchProvider.create(
            api_key=settings.groq_api_key.get_secret_value(),
            base_url=settings.groq_base_url,
            timeout_seconds=settings.groq_timeout_seconds,
            max_retries=settings.groq_max_retries,
            completion_window=settings.completion_window,
        )
        return provider, "groq"
    transport = httpx.ASGITransport(app=emulator or _emulator_app(settings))
    provider = GroqBatchProvider.create(
        api_key="emulator",
        base_url=EMULATOR_BASE_URL,
        timeout_seconds=settings.groq_timeout_seconds,
        max_retries=settings.groq_max_retries,
        completion_window=settings.completion_window,
        http_client=httpx.AsyncClient(transport=transport, timeout=settings.groq_timeout_seconds),
    )
    return provider, "emulator"


def create_app(settings: Settings | None = None, *, emulator: ASGIApp | None = None) -> FastAPI:
    settings = settings or get_settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        engine = create_engine(settings.database_url)
        await migrate(engine)
        sessions = session_factory(engine)
        provider, label = build_provider(settings, emulator)
        prices = PriceTable(settings.prices())
        provider_health = ProviderHealth()
        state = AppState(settings, engine, sessions, prices, provider_health, label)
        app.state.llm_batch = state
        for warning in health.startup_warnings(state):
            logger.warning(warning)
        stop = asyncio.Event()
        worker: asyncio.Task[None] | None = None
        if settings.workers_enabled:
            context = WorkerContext(sessions=sessions, provider=provider, settings=settings, prices=prices)
            worker = asyncio.create_task(run_worker(context, provider_health, stop), name="llm-batch-worker")
        try:
            yield
        finally:
            stop.set()
            if worker is not None:
                try:
                    await asyncio.wait_for(worker, timeout=WORKER_STOP_GRACE_SECONDS)
                except TimeoutError:
                    logger.warning(
                        "worker did not stop within %.0fs; its leases will expire", WORKER_STOP_GRACE_SECONDS
                    )
            await provider.close()
            await engine.dispose()

    app = FastAPI(
        title="llm-batch",
        version="0.1.0",
        description="Two-pass LLM batches on Groq's Batch API: a cheap model first, failures to a strong "
        "model, one merged result per item, with the cost of each pass.",
        lifespan=lifespan,
    )
    install_problem_handlers(app)
    install_openapi(app)
    app.include_router(batches.router)
    app.include_router(health.router)
    return app


def _default_app() -> FastAPI:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    logging.getLogger("httpx").setLevel(logging.WARNING)
    return create_app()


app = _default_app()
