"""The tiers of a batch: resolved from what a submission names, checked against the catalogue and what Groq
says of each model, and seen the way routing needs them."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from service.batches.config import LifecycleConfig
from service.kit.problems import invalid
from service.models import Batch
from service.pipeline.catalogue import Lifecycle
from service.pipeline.routing import Tier


@dataclass(frozen=True)
class TierSpec:
    model: str
    params: dict[str, Any] = field(default_factory=dict)

    def as_json(self) -> dict[str, Any]:
        return {"model": self.model, "params": self.params}


def resolve_cascade(
    config: LifecycleConfig,
    *,
    cascade: Sequence[Mapping[str, Any]] | None,
    model: str | None,
    fallback_model: str | None,
    fallback_params: Mapping[str, Any],
    fallback: bool,
) -> list[TierSpec]:
    """The tiers a submission asks for: `cascade` as given; else `model` alone, or with ?fallback=true a
    two-tier cascade of `model` and `fallback_model` (each defaulting to the CASCADE setting's tiers)."""
    if cascade is not None:
        return [TierSpec(str(tier["model"]), dict(tier.get("params") or {})) for tier in cascade]
    default = config.settings.default_cascade()
    first = model or default[0]
    if not fallback:
        return [TierSpec(first)]
    if fallback_model is not None:
        return [TierSpec(first), TierSpec(fallback_model, dict(fallback_params))]
    rest = [name for name in default[1:] if name != first] if model is not None else default[1:]
    tiers = [TierSpec(first)] + [TierSpec(name) for name in rest]
    if len(tiers) > 1 and fallback_params:
        tiers[1] = TierSpec(tiers[1].model, dict(fallback_params))
    return tiers


def check_model(config: LifecycleConfig, model: str, field_name: str, unavailable: Mapping[str, str]) -> str | None:
    """422 for a model that cannot be used (unknown, unpriced, decommissioned, not on the account); a warning
    for a deprecated one; None when it is fine."""
    entry = config.catalogue.get(model)
    if entry is None:
        raise invalid(
            f"model {model!r} is not in the catalogue; add it to MODEL_CATALOGUE (or MODEL_PRICES) so that its "
            "capabilities and batch prices are known",
            field=field_name,
        )
    if entry.lifecycle == Lifecycle.DECOMMISSIONED:
        raise invalid(entry.lifecycle_text(), field=field_name, replacement=entry.replacement)
    if model in unavailable:
        replacement = f"; use {entry.replacement} instead" if entry.replacement else ""
        raise invalid(f"model {model!r} cannot be used: {unavailable[model]}{replacement}", field=field_name)
    if not entry.priced:
        raise invalid(
            f"no batch price is configured for model {model!r}; add it to MODEL_PRICES so costs can be shown",
            field=field_name,
        )
    if entry.lifecycle == Lifecycle.DEPRECATED:
        return entry.lifecycle_text()
    return None


def tiers_of(batch: Batch) -> list[TierSpec]:
    return [TierSpec(str(tier["model"]), dict(tier.get("params") or {})) for tier in batch.tiers]


def routing_tiers(config: LifecycleConfig, batch: Batch, unavailable: Mapping[str, str]) -> list[Tier]:
    tiers = []
    for index, spec in enumerate(tiers_of(batch)):
        entry = config.entry(spec.model)
        usable = spec.model not in unavailable and entry.lifecycle != Lifecycle.DECOMMISSIONED
        tiers.append(
            Tier(
                index=index,
                model=spec.model,
                usable=usable,
                max_completion_tokens=entry.max_completion_tokens,
                context_window=entry.context_window,
                reasoning=entry.reasoning,
            )
        )
    return tiers


def retry_tier(batch: Batch, model: str) -> int | None:
    """The cascade tier a retry on `model` runs as (so that its failures can still move on), or None."""
    for index, spec in enumerate(tiers_of(batch)):
        if spec.model == model:
            return index
    return None
