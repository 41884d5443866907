"""The tiers of a batch: resolved from what a submission names (`provider:model`, or a bare Groq model), checked
against the catalogue, the credentials and what each provider says of its models, and seen the way routing needs
them."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from service.batches.config import LifecycleConfig
from service.kit.problems import invalid
from service.models import Batch
from service.pipeline.catalogue import Lifecycle, ModelRef, display_name
from service.pipeline.routing import Tier
from service.pipeline.tiers import TierSpec, stored_tiers
from service.store.availability import Availability


def tier_of(config: LifecycleConfig, name: str, params: Mapping[str, Any] | None = None) -> TierSpec:
    ref = config.ref(name)
    return TierSpec(ref.provider, ref.model, dict(params or {}))


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
        return [tier_of(config, str(tier["model"]), tier.get("params")) for tier in cascade]
    default = config.settings.default_cascade()
    first = model or default[0]
    if not fallback:
        return [tier_of(config, first)]
    if fallback_model is not None:
        return [tier_of(config, first), tier_of(config, fallback_model, fallback_params)]
    first_ref = config.ref(first)
    rest = [name for name in default[1:] if config.ref(name) != first_ref] if model is not None else default[1:]
    tiers = [tier_of(config, first)] + [tier_of(config, name) for name in rest]
    if len(tiers) > 1 and fallback_params:
        tiers[1] = TierSpec(tiers[1].provider, tiers[1].model, dict(fallback_params))
    return tiers


def check_model(config: LifecycleConfig, ref: ModelRef, field_name: str, availability: Availability) -> str | None:
    """422 for a model that cannot be used (unknown, unpriced, its provider's key missing, decommissioned and not
    listed by the account, not on the account); a warning for a deprecated one; None when it is fine."""
    name = display_name(ref)
    entry = config.catalogue.get(ref)
    if entry is None:
        known = ", ".join(sorted(config.catalogue.providers))
        raise invalid(
            f"model {name!r} is not in the catalogue (providers: {known}); add it to MODEL_CATALOGUE (or "
            "MODEL_PRICES) so that its capabilities and batch prices are known",
            field=field_name,
        )
    missing_key = config.settings.missing_key(ref.provider)
    if missing_key is not None:
        raise invalid(
            f"model {name!r} runs on {ref.provider}, and {missing_key} is not set: set it, or name a model of a "
            "provider with a key",
            field=field_name,
            missing_variable=missing_key,
        )
    if entry.lifecycle == Lifecycle.DECOMMISSIONED and name not in availability.listed:
        raise invalid(entry.lifecycle_text(), field=field_name, replacement=entry.replacement)
    if name in availability.unavailable:
        replacement = f"; use {entry.replacement} instead" if entry.replacement else ""
        raise invalid(f"model {name!r} cannot be used: {availability.unavailable[name]}{replacement}", field=field_name)
    if not entry.priced:
        raise invalid(
            f"no batch price is configured for model {name!r}; add it to MODEL_PRICES so costs can be shown",
            field=field_name,
        )
    if entry.lifecycle == Lifecycle.DEPRECATED:
        return entry.lifecycle_text()
    return None


def tiers_of(batch: Batch) -> list[TierSpec]:
    return stored_tiers(batch.tiers)


def routing_tiers(config: LifecycleConfig, batch: Batch, availability: Availability) -> list[Tier]:
    tiers = []
    for index, spec in enumerate(tiers_of(batch)):
        entry = config.entry(spec.provider, spec.model)
        gone = entry.lifecycle == Lifecycle.DECOMMISSIONED and spec.name not in availability.listed
        usable = spec.name not in availability.unavailable and not gone
        tiers.append(
            Tier(
                index=index,
                model=spec.name,
                usable=usable,
                max_completion_tokens=entry.max_completion_tokens,
                context_window=entry.context_window,
                reasoning=entry.reasoning,
            )
        )
    return tiers


def retry_tier(batch: Batch, ref: ModelRef) -> int | None:
    """The cascade tier a retry on `ref` runs as (so that its failures can still move on), or None."""
    for index, spec in enumerate(tiers_of(batch)):
        if spec.ref == ref:
            return index
    return None
