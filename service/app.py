"""create_app(): the HTTP routes, plus a lifespan that migrates the database and runs the workers."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx
from fastapi import Depends, FastAPI
from starlette.types import ASGIApp

from service.api import batches, health, webhooks
from service.api.auth import UNAUTHORIZED_RESPONSE, BearerAuthMiddleware, require_token
from service.api.deps import AppState
from service.api.errors import install_problem_handlers
from service.api.limits import install_request_limits
from service.api.openapi import install_openapi
from service.db import create_engine, migrate, session_factory
from service.observability import routes as observability_routes
from service.observability.logging import configure_from_settings, settings_secrets
from service.observability.redaction import register_secrets
from service.pipeline.cost import PriceTable
from service.providers.groq import GroqBatchProvider
from service.settings import Settings, get_settings
from service.ui import routes as ui_routes
from service.webhooks.ssrf import CallbackGuard
from service.workers.loop import ProviderHealth
from service.workers.runner import WorkerRunner, build_worker_context, default_loops

logger = logging.getLogger("service")
EMULATOR_BASE_URL = "http://groq-emulator.invalid"


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
    register_secrets(settings_secrets(settings))

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        engine = create_engine(settings.database_url)
        await migrate(engine)
        sessions = session_factory(engine)
        provider, label = build_provider(settings, emulator)
        prices = PriceTable(settings.prices())
        provider_health = ProviderHealth()
        callback_guard = CallbackGuard(settings.callback_allowed_hosts)
        state = AppState(settings, engine, sessions, prices, label, callback_guard=callback_guard)
        app.state.llm_batch = state
        for warning in health.startup_warnings(state):
            logger.warning(warning)
        runner: WorkerRunner | None = None
        if settings.workers_enabled:
            runner = WorkerRunner(
                build_worker_context(settings, sessions, provider),
                default_loops(provider_health, callback_guard),
                grace_seconds=settings.worker_stop_grace_seconds,
            )
            await runner.start()
        try:
            yield
        finally:
            if runner is not None:
                await runner.stop()
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
    install_request_limits(app, settings)
    app.add_middleware(BearerAuthMiddleware, tokens=settings.api_tokens)  # outermost: before any body is read
    for router in (batches.router, webhooks.router):
        app.include_router(router, dependencies=[Depends(require_token)], responses=UNAUTHORIZED_RESPONSE)
    app.include_router(health.router)
    app.include_router(observability_routes.router)
    app.include_router(ui_routes.router)
    return app


def _default_app() -> FastAPI:
    configure_from_settings(get_settings())
    return create_app()


app = _default_app()
