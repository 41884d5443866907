"""Reconciling the catalogue with the providers' model lists (`service/batches/availability.py`), at start and
every MODEL_SYNC_INTERVAL_SECONDS; sooner again after a provider error."""

from __future__ import annotations

import asyncio
import contextlib

from service.batches.availability import sync_models
from service.workers.context import WorkerContext

RETRY_SECONDS = 60.0


async def run_model_sync(ctx: WorkerContext, stop: asyncio.Event) -> None:
    while not stop.is_set():
        wait = ctx.settings.model_sync_interval_seconds
        if not await sync_models(ctx.sessions, ctx.config, ctx.providers):
            wait = min(RETRY_SECONDS, wait)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), timeout=wait)
