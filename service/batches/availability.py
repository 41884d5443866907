"""Which catalogue models the account can use, as the provider's model list says: a model the list lacks is
marked unavailable (shown on /healthz, refused at submit, passed over by the cascade) until the list has it
again. The workers run this at start and every MODEL_SYNC_INTERVAL_SECONDS."""

from __future__ import annotations

import logging

from service.batches.config import LifecycleConfig
from service.pipeline.catalogue import Lifecycle
from service.providers.protocol import Providers
from service.store import Sessions, transaction
from service.store import availability as availability_store

logger = logging.getLogger(__name__)


async def sync_models(sessions: Sessions, config: LifecycleConfig, providers: Providers) -> list[str]:
    """Read every provider's model list and record which catalogue models are missing from it; those models.
    Provider errors propagate (nothing is recorded then)."""
    listed: set[str] = set()
    for provider in providers:
        listed.update(await provider.list_models())
    missing = sorted(
        entry.id
        for entry in config.catalogue
        if entry.lifecycle != Lifecycle.DECOMMISSIONED and entry.priced and entry.id not in listed
    )
    async with transaction(sessions) as session:
        await availability_store.replace_listing(session, missing)
    if missing:
        logger.warning("the providers' model lists lack %s: submissions naming them are refused", ", ".join(missing))
    return missing
