"""GET /models and the unusable models /healthz shows: the catalogue, with what the service knows of each."""

from __future__ import annotations

from collections.abc import Mapping

from service.pipeline.catalogue import Catalogue, Lifecycle
from service.store import Session
from service.store import availability as availability_store
from service.views.response_bodies import ModelList, ModelOut


def unusable(catalogue: Catalogue, unavailable: Mapping[str, str]) -> dict[str, str]:
    """Model -> why it cannot be used, over the whole catalogue."""
    found = {}
    for entry in catalogue:
        if entry.lifecycle == Lifecycle.DECOMMISSIONED:
            found[entry.id] = entry.lifecycle_text()
        elif entry.id in unavailable:
            found[entry.id] = unavailable[entry.id]
        elif not entry.priced:
            found[entry.id] = "no batch price is configured (MODEL_PRICES)"
    return found


async def unusable_models(session: Session, catalogue: Catalogue) -> dict[str, str]:
    return unusable(catalogue, await availability_store.unavailable(session))


async def model_list(session: Session, catalogue: Catalogue, default_cascade: list[str]) -> ModelList:
    refused = await unusable_models(session, catalogue)
    return ModelList(
        data=[
            ModelOut(
                id=entry.id,
                usable=entry.id not in refused,
                reason=refused.get(entry.id),
                structured_output=entry.structured_output,
                input_usd_per_million=str(entry.input_usd_per_million) if entry.priced else None,
                output_usd_per_million=str(entry.output_usd_per_million) if entry.priced else None,
                max_completion_tokens=entry.max_completion_tokens,
                context_window=entry.context_window,
                reasoning=entry.reasoning,
                lifecycle=entry.lifecycle,
                shutdown_date=entry.shutdown_date.isoformat() if entry.shutdown_date else None,
                replacement=entry.replacement,
            )
            for entry in sorted(catalogue, key=lambda entry: entry.id)
        ],
        default_cascade=default_cascade,
    )
