"""Reconciling the catalogue with Groq's model list, at start and every MODEL_SYNC_INTERVAL_SECONDS: a model of
the catalogue the account cannot use is marked so (shown on /healthz, refused at submit, passed over by the
cascade) until the list has it again."""

from __future__ import annotations

import asyncio
import contextlib
import logging

from service.pipeline.catalogue import Lifecycle
from service.providers.groq import ProviderError
from service.store import availability as availability_store
from service.store import transaction
from service.workers.context import WorkerContext

logger = logging.getLogger(__name__)

RETRY_SECONDS = 60.0


async def sync_models(ctx: WorkerContext) -> list[str]:
    """Read the model list and record which catalogue models are missing from it; those models."""
    listed = set(await ctx.provider.list_models())
    missing = sorted(
        entry.id
        for entry in ctx.config.catalogue
        if entry.lifecycle != Lifecycle.DECOMMISSIONED and entry.priced and entry.id not in listed
    )
    async with transaction(ctx.sessions) as session:
        await availability_store.replace_listing(session, missing)
    if missing:
        logger.warning("Groq's model list lacks %s: submissions naming them are refused", ", ".join(missing))
    return missing


async def run_model_sync(ctx: WorkerContext, stop: asyncio.Event) -> None:
    while not stop.is_set():
        try:
            await sync_models(ctx)
            wait = ctx.settings.model_sync_interval_seconds
        except ProviderError as error:
            logger.warning("could not read Groq's model list: %s", error)
            wait = min(RETRY_SECONDS, ctx.settings.model_sync_interval_seconds)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), timeout=wait)
