"""The composition root: `create_app()` builds the HTTP app, whose lifespan migrates the database, connects the
provider and runs the workers. Serve it with `uvicorn --factory service.app:create_app`.

`service.app:app` still works for deployments that name it: the module builds it on first access (PEP 562), so
importing this module builds nothing.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
from fastapi import Depends, FastAPI
from starlette.types import ASGIApp

from service.api import batch_routes, health_routes, metrics_routes, model_routes, webhook_routes
from service.api.auth import UNAUTHORIZED_RESPONSE, BearerAuthMiddleware, require_principal
from service.api.deps import AppState, ExportSlots
from service.api.errors import install_problem_handlers
from service.api.limits import install_request_limits
from service.api.openapi import install_openapi
from service.api.principals import TokenTable
from service.batches.config import LifecycleConfig
from service.kit.gc_tuning import tune_for_bulk_work
from service.observability.logging import configure_from_settings, settings_secrets
from service.observability.redaction import register_secrets
from service.providers.groq import GroqBatchProvider
from service.providers.protocol import Providers
from service.settings import Settings, get_settings
from service.store import Database
from service.ui import routes as ui_routes
from service.webhooks.ssrf import CallbackGuard
from service.workers.context import WorkerContext
from service.workers.runner import WorkerRunner, default_loops

logger = logging.getLogger("service")
EMULATOR_BASE_URL = "http://groq-emulator.invalid"


def _emulator_app(settings: Settings) -> ASGIApp:
    from groq_emulator import EmulatorConfig, create_emulator_app

    return create_emulator_app(EmulatorConfig(seed=settings.emulator_seed, time_scale=settings.emulator_time_scale))


def build_providers(settings: Settings, emulator: ASGIApp | None = None) -> tuple[Providers, str]:
    """The providers the service runs batches on, and how they are reached: Groq when a key is set
    (`"groq"`), otherwise the built-in emulator, in-process over an ASGI transport (`"emulator"`)."""
    if not settings.uses_emulator:
        assert settings.groq_api_key is not None
        groq = GroqBatchProvider.connect(
            api_key=settings.groq_api_key.get_secret_value(),
            base_url=settings.groq_base_url,
            timeout_seconds=settings.groq_timeout_seconds,
            max_retries=settings.groq_max_retries,
            completion_window=settings.completion_window,
        )
        return Providers({groq.name: groq}), "groq"
    transport = httpx.ASGITransport(app=emulator or _emulator_app(settings))
    groq = GroqBatchProvider.connect(
        api_key="emulator",
        base_url=EMULATOR_BASE_URL,
        timeout_seconds=settings.groq_timeout_seconds,
        max_retries=settings.groq_max_retries,
        completion_window=settings.completion_window,
        http_client=httpx.AsyncClient(transport=transport, timeout=settings.groq_timeout_seconds),
    )
    return Providers({groq.name: groq}), "emulator"


def create_app(settings: Settings | None = None, *, emulator: ASGIApp | None = None, tune_gc: bool = False) -> FastAPI:
    """The app; `tune_gc` (a deployment's process, not a test's) tunes the garbage collector once it started."""
    settings = settings or get_settings()
    register_secrets(settings_secrets(settings))

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        database = Database.connect(settings.database_url)
        await database.migrate()
        providers, label = build_providers(settings, emulator)
        config = LifecycleConfig.from_settings(settings)
        callback_guard = CallbackGuard(settings.callback_allowed_hosts)
        state = AppState(
            config,
            database,
            label,
            TokenTable.of(settings.token_grants()),
            callback_guard=callback_guard,
            exports=ExportSlots(settings.export_max_concurrent),
        )
        app.state.llm_batch = state
        for warning in health_routes.startup_warnings(state):
            logger.warning(warning)
        runner: WorkerRunner | None = None
        if tune_gc:
            tune_for_bulk_work()
        if settings.workers_enabled:
            runner = WorkerRunner(
                WorkerContext.build(settings, database.workers, providers),
                default_loops(callback_guard),
                grace_seconds=settings.worker_stop_grace_seconds,
            )
            state.wake = runner.wake
            await runner.start()
        try:
            yield
        finally:
            if runner is not None:
                await runner.stop()
            await providers.close()
            await database.dispose()

    app = FastAPI(
        title="llm-batch",
        version="0.2.0",
        description="LLM batches on Groq's Batch API through a cascade of models: the cheap one first, each "
        "failure sent on by its cause, one merged result per item, with the cost of each pass and tier.",
        lifespan=lifespan,
    )
    install_problem_handlers(app)
    install_openapi(app)
    install_request_limits(app, settings)
    # outermost: before any body is read
    app.add_middleware(BearerAuthMiddleware, grants=settings.token_grants())
    for router in (batch_routes.router, webhook_routes.router, model_routes.router):
        app.include_router(router, dependencies=[Depends(require_principal)], responses=UNAUTHORIZED_RESPONSE)
    app.include_router(health_routes.router)
    app.include_router(metrics_routes.router)
    app.include_router(ui_routes.router)
    return app


def serve_app() -> FastAPI:
    """The app as a deployment runs it: settings and logging from the environment."""
    configure_from_settings(get_settings())
    return create_app(tune_gc=True)


_served: dict[str, FastAPI] = {}


def __getattr__(name: str) -> Any:
    if name == "app":  # `uvicorn service.app:app`, built once, on first access
        if "app" not in _served:
            _served["app"] = serve_app()
        return _served["app"]
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
