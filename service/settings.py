"""Service configuration, read from the environment (every variable is documented in README.md)."""

from __future__ import annotations

from functools import lru_cache
from typing import Annotated

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

DEFAULT_PRIMARY_MODEL = "openai/gpt-oss-20b"
DEFAULT_FALLBACK_MODEL = "llama-3.3-70b-versatile"

# Batch prices per 1M tokens, already halved by the 50% batch discount (GROQ_BATCH_API.md §11,
# and the figures of DESIGN.md that the cost expectations were set with).
DEFAULT_BATCH_PRICES: dict[str, tuple[float, float]] = {
    "openai/gpt-oss-20b": (0.0375, 0.15),
    "llama-3.3-70b-versatile": (0.30, 0.40),
    "openai/gpt-oss-120b": (0.075, 0.30),
    "llama-3.1-8b-instant": (0.025, 0.04),
}

# Models that accept response_format json_schema (the rest get json_object + local validation).
DEFAULT_JSON_SCHEMA_MODELS = [
    "openai/gpt-oss-20b",
    "openai/gpt-oss-120b",
    "openai/gpt-oss-safeguard-20b",
    "moonshotai/kimi-k2-instruct-0905",
    "meta-llama/llama-4-maverick-17b-128e-instruct",
    "meta-llama/llama-4-scout-17b-16e-instruct",
]


def _split_csv(value: object) -> object:
    if isinstance(value, str):
        return [part.strip() for part in value.split(",") if part.strip()]
    return value


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_file=None, extra="ignore", case_sensitive=False)

    database_url: str = "sqlite:///./data/llm_batch.db"
    groq_api_key: SecretStr | None = None
    groq_base_url: str | None = None
    groq_timeout_seconds: float = 60.0
    groq_max_retries: int = 2

    api_tokens: Annotated[list[str], NoDecode] = Field(default_factory=list)
    webhook_secret: SecretStr | None = None
    callback_allowed_hosts: Annotated[list[str], NoDecode] = Field(default_factory=list)

    primary_model: str = DEFAULT_PRIMARY_MODEL
    fallback_model: str = DEFAULT_FALLBACK_MODEL
    json_schema_models: Annotated[list[str], NoDecode] = Field(default_factory=lambda: list(DEFAULT_JSON_SCHEMA_MODELS))
    # JSON object {"model": [input_usd_per_1m, output_usd_per_1m]}, merged over the defaults.
    model_prices: dict[str, tuple[float, float]] = Field(default_factory=dict)

    poll_interval_seconds: float = 30.0
    workers_enabled: bool = True
    worker_idle_seconds: float = 1.0
    provider_backoff_max_seconds: float = 300.0

    max_lines_per_provider_batch: int = 50_000
    max_bytes_per_provider_batch: int = 100 * 1024 * 1024
    completion_window: str = "24h"
    spool_dir: str = "./data/spool"

    # Emulator knobs used when no GROQ_API_KEY is set (the built-in emulator is started in-process).
    emulator_seed: int = 0
    emulator_time_scale: float = 0.02

    @field_validator("api_tokens", "callback_allowed_hosts", "json_schema_models", mode="before")
    @classmethod
    def _csv(cls, value: object) -> object:
        return _split_csv(value)

    @property
    def uses_emulator(self) -> bool:
        return self.groq_api_key is None or not self.groq_api_key.get_secret_value()

    def prices(self) -> dict[str, tuple[float, float]]:
        return {**DEFAULT_BATCH_PRICES, **self.model_prices}


@lru_cache
def get_settings() -> Settings:
    return Settings()
