"""Reconciling the catalogue with the providers' model lists (`service/batches/availability.py`), at start and
every MODEL_SYNC_INTERVAL_SECONDS; sooner again after a provider error."""

from __future__ import annotations

import asyncio
import contextlib
import logging

from service.batches.availability import sync_models
from service.providers.protocol import ProviderError
from service.workers.context import WorkerContext

logger = logging.getLogger(__name__)

RETRY_SECONDS = 60.0


async def run_model_sync(ctx: WorkerContext, stop: asyncio.Event) -> None:
    while not stop.is_set():
        try:
            await sync_models(ctx.sessions, ctx.config, ctx.providers)
            wait = ctx.settings.model_sync_interval_seconds
        except ProviderError as error:
            logger.warning("could not read the providers' model lists: %s", error)
            wait = min(RETRY_SECONDS, ctx.settings.model_sync_interval_seconds)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), timeout=wait)
