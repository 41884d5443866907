"""GET /models and the unusable models /healthz shows: the catalogue, with what the service knows of each."""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal

from service.pipeline.catalogue import Catalogue, Lifecycle
from service.store import Session
from service.store import availability as availability_store
from service.store.availability import Availability
from service.views.response_bodies import ModelList, ModelOut


def unusable(
    catalogue: Catalogue, availability: Availability, missing_keys: Mapping[str, str] | None = None
) -> dict[str, str]:
    """Model (as named) -> why it cannot be used, over the whole catalogue."""
    found = {}
    for entry in catalogue:
        name = entry.name
        if missing_keys and entry.provider in missing_keys:
            found[name] = f"{missing_keys[entry.provider]} is not set"
        elif entry.lifecycle == Lifecycle.DECOMMISSIONED and name not in availability.listed:
            found[name] = entry.lifecycle_text()
        elif name in availability.unavailable:
            found[name] = availability.unavailable[name]
        elif not entry.priced:
            found[name] = "no batch price is configured (MODEL_PRICES)"
    return found


async def unusable_models(
    session: Session, catalogue: Catalogue, missing_keys: Mapping[str, str] | None = None
) -> dict[str, str]:
    return unusable(catalogue, await availability_store.read(session), missing_keys)


async def model_list(
    session: Session, catalogue: Catalogue, default_cascade: list[str], missing_keys: Mapping[str, str] | None = None
) -> ModelList:
    refused = await unusable_models(session, catalogue, missing_keys)
    return ModelList(
        data=[
            ModelOut(
                id=entry.name,
                provider=entry.provider,
                model=entry.id,
                usable=entry.name not in refused,
                reason=refused.get(entry.name),
                structured_output=entry.structured_output,
                input_usd_per_million=str(entry.input_usd_per_million) if entry.priced else None,
                output_usd_per_million=str(entry.output_usd_per_million) if entry.priced else None,
                cached_input_usd_per_million=_price(entry.cached_input_usd_per_million),
                cache_write_usd_per_million=_price(entry.cache_write_usd_per_million),
                max_completion_tokens=entry.max_completion_tokens,
                context_window=entry.context_window,
                reasoning=entry.reasoning,
                lifecycle=entry.lifecycle,
                shutdown_date=entry.shutdown_date.isoformat() if entry.shutdown_date else None,
                replacement=entry.replacement,
            )
            for entry in sorted(catalogue, key=lambda entry: (entry.provider != "groq", entry.provider, entry.id))
        ],
        default_cascade=default_cascade,
    )


def _price(value: Decimal | None) -> str | None:
    return None if value is None else str(value)
