"""What the lifecycle needs to know about the deployment: the settings and the model catalogue."""

from __future__ import annotations

from dataclasses import dataclass

from service.pipeline.catalogue import Catalogue, ModelEntry
from service.pipeline.cost import Usage
from service.settings import Settings

GROQ = "groq"


@dataclass(frozen=True)
class LifecycleConfig:
    settings: Settings
    catalogue: Catalogue

    @classmethod
    def from_settings(cls, settings: Settings) -> LifecycleConfig:
        catalogue = Catalogue.build(settings.catalogue_overrides(), settings.model_prices)
        return cls(settings=settings, catalogue=catalogue)

    def entry(self, model: str) -> ModelEntry:
        """The catalogue's entry; a model named but unknown is treated as JSON mode only (never chosen: submit
        refuses models without a price)."""
        return self.catalogue.get(model) or ModelEntry(id=model)

    def cost_pico(self, model: str, usage: Usage) -> int:
        return self.catalogue.cost_pico(model, usage)

    def provider_of(self, model: str) -> str:
        """The provider that runs `model`'s batches (every catalogue model is Groq's today)."""
        return GROQ
