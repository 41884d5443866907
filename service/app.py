"""The composition root: `create_app()` builds the HTTP app, whose lifespan migrates the database, connects the
provider and runs the workers. Serve it with `uvicorn --factory service.app:create_app`.

`service.app:app` still works for deployments that name it: the module builds it on first access (PEP 562), so
importing this module builds nothing.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from typing import Any

import httpx
import httpx2
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
from service.providers.protocol import BatchProvider, Providers
from service.settings import Settings, get_settings
from service.store import Database
from service.ui import routes as ui_routes
from service.webhooks.ssrf import CallbackGuard
from service.workers.context import WorkerContext
from service.workers.runner import WorkerRunner, default_loops

logger = logging.getLogger("service")
EMULATOR_BASE_URL = "http://{provider}-emulator.invalid"


def built_in_emulators(settings: Settings) -> dict[str, ASGIApp]:
    """Every provider's emulator, in-process: the embedded default when no provider key is set at all."""
    from anthropic_emulator import EmulatorConfig as AnthropicConfig
    from anthropic_emulator import create_emulator_app as anthropic_app
    from groq_emulator import EmulatorConfig as GroqConfig
    from groq_emulator import create_emulator_app as groq_app
    from openai_emulator import EmulatorConfig as OpenAIConfig
    from openai_emulator import ModelSpec
    from openai_emulator import create_emulator_app as openai_app
    from openai_emulator import default_models as openai_models

    seed, scale = settings.emulator_seed, settings.emulator_time_scale
    emulators: dict[str, ASGIApp] = {
        "groq": groq_app(GroqConfig(seed=seed, time_scale=scale)),
        "openai": openai_app(OpenAIConfig(seed=seed, time_scale=scale)),
        "anthropic": anthropic_app(AnthropicConfig(seed=seed, time_scale=scale)),
    }
    for name, endpoint in settings.providers.items():  # an OpenAI-compatible endpoint serving its own models
        models = {**openai_models(), **{model: ModelSpec(snapshot=model, created=0) for model in endpoint.models}}
        emulators[name] = openai_app(OpenAIConfig(seed=seed, time_scale=scale, models=models))
    return emulators


def build_providers(
    settings: Settings, emulator: ASGIApp | None = None, emulators: Mapping[str, ASGIApp] | None = None
) -> tuple[Providers, str]:
    """The providers the service runs batches on, and how they are reached: each provider with a key (the SDKs'
    own variables; PROVIDERS endpoints name theirs), `"providers"`; or, with no key at all, every provider on its
    built-in emulator, in-process over an ASGI transport, `"emulator"`. `emulator` (Groq's) and `emulators` (by
    provider) replace the built-in ones (tests)."""
    if not settings.uses_emulator:
        built = {
            name: _connect(settings, name, api_key=key, base_url=None, http_client=None)
            for name in settings.provider_names()
            if (key := settings.provider_key(name)) is not None
        }
        return Providers(built), "providers"
    apps = {**built_in_emulators(settings), **(emulators or {})}
    if emulator is not None:
        apps["groq"] = emulator
    return Providers({name: _emulated(settings, name, app) for name, app in apps.items()}), "emulator"


def _emulated(settings: Settings, name: str, app: ASGIApp) -> BatchProvider:
    base_url = EMULATOR_BASE_URL.format(provider=name)
    if name == "anthropic":  # the anthropic SDK takes httpx2 clients only
        client: Any = httpx2.AsyncClient(
            transport=httpx2.ASGITransport(app=app), timeout=settings.provider_timeout_seconds
        )
    else:
        client = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), timeout=settings.provider_timeout_seconds)
    if name == "openai" or name in settings.providers:
        base_url += "/v1"
    return _connect(settings, name, api_key="emulator", base_url=base_url, http_client=client)


def _connect(settings: Settings, name: str, *, api_key: str, base_url: str | None, http_client: Any) -> BatchProvider:
    """One provider's adapter (the only place that picks an implementation). Each is imported here, when it is
    first needed: an SDK costs the process 6-37 MB, and most deployments use one or two providers."""
    if name == "groq":
        from service.providers.groq import GroqBatchProvider

        return GroqBatchProvider.connect(
            api_key=api_key,
            base_url=base_url or settings.groq_base_url,
            timeout_seconds=settings.groq_timeout_seconds,
            max_retries=settings.groq_max_retries,
            completion_window=settings.completion_window,
            http_client=http_client,
        )
    if name == "anthropic":
        from service.providers.anthropic import AnthropicBatchProvider

        return AnthropicBatchProvider.connect(
            api_key=api_key,
            base_url=base_url or settings.anthropic_base_url,
            timeout_seconds=settings.provider_timeout_seconds,
            max_retries=settings.provider_max_retries,
            http_client=http_client,
        )
    from service.providers.openai import OpenAIBatchProvider

    endpoint = settings.providers.get(name)
    return OpenAIBatchProvider.connect(
        name=name,
        api_key=api_key,
        base_url=base_url or (endpoint.base_url if endpoint is not None else settings.openai_base_url),
        timeout_seconds=settings.provider_timeout_seconds,
        max_retries=settings.provider_max_retries,
        completion_window=endpoint.completion_window if endpoint is not None else "24h",
        http_client=http_client,
    )


def create_app(
    settings: Settings | None = None,
    *,
    emulator: ASGIApp | None = None,
    emulators: Mapping[str, ASGIApp] | None = None,
    tune_gc: bool = False,
) -> FastAPI:
    """The app; `tune_gc` (a deployment's process, not a test's) tunes the garbage collector once it started."""
    settings = settings or get_settings()
    register_secrets(settings_secrets(settings))

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        database = Database.connect(settings.database_url)
        await database.migrate()
        providers, label = build_providers(settings, emulator, emulators)
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
        description="LLM batches on the batch APIs of Groq, OpenAI, Anthropic and OpenAI-compatible endpoints, "
        "through a cascade of models across them: the cheap one first, each failure sent on by its cause, one merged "
        "result per item, with the cost of each pass, tier and provider.",
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
