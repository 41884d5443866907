"""What the lifecycle needs to know about the deployment: the settings and the model catalogue."""

from __future__ import annotations

from dataclasses import dataclass

from service.pipeline.catalogue import Catalogue, ModelEntry, ModelRef
from service.pipeline.cost import Usage
from service.settings import ChunkLimits, Settings


@dataclass(frozen=True)
class LifecycleConfig:
    settings: Settings
    catalogue: Catalogue

    @classmethod
    def from_settings(cls, settings: Settings) -> LifecycleConfig:
        overrides = {**settings.endpoint_catalogue(), **settings.catalogue_overrides()}
        catalogue = Catalogue.build(overrides, settings.model_prices, providers=settings.provider_names())
        return cls(settings=settings, catalogue=catalogue)

    def ref(self, name: str) -> ModelRef:
        """What a model name means here: `provider:model`, or a bare Groq model."""
        return self.catalogue.ref(name)

    def entry(self, provider: str, model: str) -> ModelEntry:
        """The catalogue's entry; a model named but unknown is treated as JSON mode only (never chosen: submit
        refuses models without a price)."""
        return self.catalogue.get(ModelRef(provider, model)) or ModelEntry(id=model, provider=provider)

    def cost_pico(self, provider: str, model: str, usage: Usage) -> int:
        return self.catalogue.cost_pico(ModelRef(provider, model), usage)

    def chunk_limits(self, provider: str) -> ChunkLimits:
        return self.settings.chunk_limits(provider)
