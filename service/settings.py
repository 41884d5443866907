"""Service configuration, read from the environment (every variable is documented in README.md)."""

from __future__ import annotations

from functools import lru_cache
from typing import Annotated, Literal

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from service.kit.whsec import webhook_key_bytes

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
    # hide_input_in_errors: a refused value (a mistyped WEBHOOK_SECRET, a DATABASE_URL with a password) never
    # reaches the start-up error or the log.
    model_config = SettingsConfigDict(env_file=None, extra="ignore", case_sensitive=False, hide_input_in_errors=True)

    database_url: str = "sqlite:///./data/llm_batch.db"
    groq_api_key: SecretStr | None = None
    groq_base_url: str | None = None
    groq_timeout_seconds: float = 60.0
    groq_max_retries: int = 2

    api_tokens: Annotated[list[str], NoDecode] = Field(default_factory=list)
    webhook_secret: SecretStr | None = None
    callback_allowed_hosts: Annotated[list[str], NoDecode] = Field(default_factory=list)
    # Absolute base of the results URL in webhook events (e.g. https://llm-batch.internal); unset: a path.
    public_base_url: str | None = None
    webhook_max_attempts: int = Field(default=30, ge=1)
    webhook_backoff_base_seconds: float = Field(default=30.0, gt=0)
    webhook_backoff_max_seconds: float = Field(default=3600.0, gt=0)
    webhook_timeout_seconds: float = Field(default=10.0, gt=0)
    idempotency_key_ttl_seconds: float = Field(default=24 * 3600.0, gt=0)
    idempotency_wait_seconds: float = Field(default=30.0, ge=0)

    # Input limits (README explains the defaults: a 21,000-PR backfill of ~20 KB per item fits in one request).
    max_request_bytes: int = Field(default=512 * 1024 * 1024, gt=0)
    max_items_per_batch: int = Field(default=50_000, gt=0)
    max_custom_id_length: int = Field(default=512, gt=0, le=512)
    max_metadata_keys: int = Field(default=16, ge=0)
    max_metadata_bytes: int = Field(default=4096, gt=0)
    max_output_schema_bytes: int = Field(default=64 * 1024, gt=0)

    primary_model: str = DEFAULT_PRIMARY_MODEL
    fallback_model: str = DEFAULT_FALLBACK_MODEL
    json_schema_models: Annotated[list[str], NoDecode] = Field(default_factory=lambda: list(DEFAULT_JSON_SCHEMA_MODELS))
    # JSON object {"model": [input_usd_per_1m, output_usd_per_1m]}, merged over the defaults.
    model_prices: dict[str, tuple[float, float]] = Field(default_factory=dict)

    poll_interval_seconds: float = 30.0
    workers_enabled: bool = True
    worker_idle_seconds: float = 1.0
    # A claimed row is held this long and renewed every third of it while its step runs; a dead worker's
    # rows are taken over once it expires.
    worker_lease_seconds: float = Field(default=30.0, gt=0)
    # On SIGTERM a worker stops claiming at once and gives its current step this long to finish.
    worker_stop_grace_seconds: float = Field(default=25.0, ge=0)
    provider_backoff_max_seconds: float = 300.0
    # Delete our files on Groq once they are no longer needed (inputs and results after ingest, orphaned
    # uploads). Groq keeps them 30 days otherwise.
    provider_file_cleanup: bool = True

    max_lines_per_provider_batch: int = 50_000
    max_bytes_per_provider_batch: int = 100 * 1024 * 1024
    completion_window: str = "24h"
    spool_dir: str = "./data/spool"

    # json: one JSON object per line; text: for people. Unset: text on a terminal, json otherwise.
    log_format: Literal["json", "text"] | None = None
    log_level: str = "INFO"

    # Emulator knobs used when no GROQ_API_KEY is set (the built-in emulator is started in-process).
    emulator_seed: int = 0
    emulator_time_scale: float = 0.02

    @field_validator("api_tokens", "callback_allowed_hosts", "json_schema_models", mode="before")
    @classmethod
    def _csv(cls, value: object) -> object:
        return _split_csv(value)

    @field_validator("webhook_secret", mode="after")
    @classmethod
    def _whsec_key(cls, value: SecretStr | None) -> SecretStr | None:
        """Refuse at start-up a key the webhooks could not be signed with (the message never shows the key)."""
        if value is None or not value.get_secret_value():
            return None
        webhook_key_bytes(value.get_secret_value())
        return value

    @field_validator("public_base_url", mode="after")
    @classmethod
    def _base_url(cls, value: str | None) -> str | None:
        if not value:
            return None
        if not value.startswith(("http://", "https://")):
            raise ValueError("PUBLIC_BASE_URL must be an http(s) URL such as https://llm-batch.internal")
        return value.rstrip("/")

    @property
    def uses_emulator(self) -> bool:
        return self.groq_api_key is None or not self.groq_api_key.get_secret_value()

    def prices(self) -> dict[str, tuple[float, float]]:
        return {**DEFAULT_BATCH_PRICES, **self.model_prices}


@lru_cache
def get_settings() -> Settings:
    return Settings()
