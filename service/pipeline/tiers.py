"""A tier of a batch's cascade: a provider's model and the params its lines add, as a batch stores it."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from service.pipeline.catalogue import GROQ, ModelRef, display_name


@dataclass(frozen=True)
class TierSpec:
    provider: str
    model: str  # the provider's own model id
    params: dict[str, Any] = field(default_factory=dict)

    @property
    def ref(self) -> ModelRef:
        return ModelRef(self.provider, self.model)

    @property
    def name(self) -> str:
        """As callers name it: bare for Groq, `provider:model` otherwise."""
        return display_name(self.ref)

    def as_json(self) -> dict[str, Any]:
        return {"provider": self.provider, "model": self.model, "params": self.params}


def stored_tiers(raw: Sequence[Mapping[str, Any]]) -> list[TierSpec]:
    """A batch's tiers as stored (a tier stored before providers were named is Groq's)."""
    return [
        TierSpec(str(tier.get("provider") or GROQ), str(tier["model"]), dict(tier.get("params") or {})) for tier in raw
    ]
