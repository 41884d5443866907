"""Which catalogue models the account can use, as each provider's model list says: the list wins over the
catalogue's table. A model the list lacks is marked unavailable (shown on /healthz and /models, refused at submit,
passed over by the cascade) until the list has it again; a model the list has although the table says it was
decommissioned is usable (an enterprise account keeps a model others lost). The workers run this at start and
every MODEL_SYNC_INTERVAL_SECONDS."""

from __future__ import annotations

import logging
import re

from service.batches.config import LifecycleConfig
from service.pipeline.catalogue import Lifecycle, ModelEntry
from service.providers.protocol import BatchProvider, ProviderError, Providers
from service.store import Sessions, transaction
from service.store import availability as availability_store

logger = logging.getLogger(__name__)

# A listed snapshot of a catalogue alias: `claude-haiku-4-5-20251001`, `gpt-5-mini-2025-08-07`.
SNAPSHOT_SUFFIX = re.compile(r"-\d{4}-?\d{2}-?\d{2}$")


def listed(entry: ModelEntry, ids: set[str]) -> bool:
    """Whether a model list names the entry: its id, or a dated snapshot of it."""
    return entry.id in ids or any(
        name.startswith(entry.id + "-") and SNAPSHOT_SUFFIX.fullmatch(name[len(entry.id) :]) for name in ids
    )


async def sync_provider(sessions: Sessions, config: LifecycleConfig, provider: BatchProvider) -> list[str]:
    """Read one provider's model list and record what it says of the provider's catalogue models; the models it
    lacks. Provider errors propagate (nothing is recorded then)."""
    ids = set(await provider.list_models())
    entries = [entry for entry in config.catalogue.of_provider(provider.name) if entry.priced]
    missing = sorted(
        entry.name for entry in entries if entry.lifecycle != Lifecycle.DECOMMISSIONED and not listed(entry, ids)
    )
    kept = sorted(entry.name for entry in entries if entry.lifecycle == Lifecycle.DECOMMISSIONED and listed(entry, ids))
    async with transaction(sessions) as session:
        await availability_store.replace_listing(session, [entry.name for entry in entries], missing, kept)
    if missing:
        logger.warning("%s's model list lacks %s: tiers naming them are refused", provider.name, ", ".join(missing))
    return missing


async def sync_models(sessions: Sessions, config: LifecycleConfig, providers: Providers) -> bool:
    """Every provider's list, each on its own (one provider's outage leaves the others' records fresh); whether
    every list could be read."""
    complete = True
    for provider in providers:
        try:
            await sync_provider(sessions, config, provider)
        except ProviderError as error:
            logger.warning("could not read %s's model list: %s", provider.name, error)
            complete = False
    return complete
