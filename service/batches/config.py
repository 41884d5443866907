"""What the lifecycle needs to know about the deployment: the settings and the batch prices."""

from __future__ import annotations

from dataclasses import dataclass

from service.pipeline.cost import PriceTable
from service.settings import Settings


@dataclass(frozen=True)
class LifecycleConfig:
    settings: Settings
    prices: PriceTable

    @classmethod
    def from_settings(cls, settings: Settings) -> LifecycleConfig:
        return cls(settings=settings, prices=PriceTable(settings.prices()))

    def supports_json_schema(self, model: str) -> bool:
        return model in self.settings.json_schema_models
