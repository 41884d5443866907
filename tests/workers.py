"""Workers a test drives by hand, next to (or instead of) the service's own: each with its own engine."""

from __future__ import annotations

import asyncio
from typing import Any

from service.app import build_providers
from service.providers.groq import GroqBatchProvider
from service.providers.protocol import BatchProvider, Providers
from service.settings import Settings
from service.store.database import create_engine, session_factory
from service.workers.batch_loop import run_worker
from service.workers.context import WorkerContext
from tests.conftest import Service


def worker_context(
    service: Service, provider: BatchProvider | Providers, worker_id: str, settings: Settings | None = None
) -> tuple[WorkerContext, Any]:
    """A worker on the service's database (with the service's settings unless others are given) and its engine."""
    settings = settings or service.settings
    engine = create_engine(settings.database_url)
    providers = provider if isinstance(provider, Providers) else Providers({provider.name: provider})
    ctx = WorkerContext.build(settings, session_factory(engine), providers, worker_id=worker_id)
    ctx.lease_seconds = 30.0
    return ctx, engine


def real_providers(service: Service) -> Providers:
    """The production adapters of every provider, talking to the service's emulators."""
    providers, _label = build_providers(service.settings, service.emulator_app, service.emulator_apps)
    return providers


def real_provider(service: Service) -> GroqBatchProvider:
    """The production Groq adapter, talking to the service's Groq emulator."""
    provider = real_providers(service).get("groq")
    assert isinstance(provider, GroqBatchProvider)
    return provider


async def work_until_finished(service: Service, ctx: WorkerContext, batch_id: str) -> dict[str, Any]:
    """Run the worker `ctx` until the batch is finished (the service's wait bounds it); the batch's summary."""
    stop = asyncio.Event()
    task = asyncio.create_task(run_worker(ctx, stop))
    try:
        return await service.wait(batch_id, within=60)
    finally:
        stop.set()
        await task
