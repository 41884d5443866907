"""Service configuration, read from the environment (every variable is documented in README.md)."""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from service.kit.whsec import webhook_key_bytes

DEFAULT_CASCADE = ["openai/gpt-oss-20b", "openai/gpt-oss-120b"]
BUILT_IN_PROVIDERS = ("groq", "openai", "anthropic")
KEY_VARIABLES = {"groq": "GROQ_API_KEY", "openai": "OPENAI_API_KEY", "anthropic": "ANTHROPIC_API_KEY"}
ENDPOINT_NAME = re.compile(r"^[a-z][a-z0-9_-]{0,39}$")
VARIABLE_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,127}$")
DEFAULT_TENANT = "default"
MIN_TOKEN_LENGTH = 16
TENANT_NAME_CHARACTERS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.-")


def _split_csv(value: object) -> object:
    if isinstance(value, str):
        return [part.strip() for part in value.split(",") if part.strip()]
    return value


@dataclass(frozen=True)
class TokenGrant:
    """One bearer token and what it may see: its tenant's batches, or every tenant's (`admin`)."""

    token: str
    tenant: str
    admin: bool = False


def parse_tokens(entries: list[str], *, setting: str, admin: bool) -> list[TokenGrant]:
    """`name:token` gives the token its tenant `name`; a bare token belongs to tenant `default`."""
    grants = []
    for entry in entries:
        name, separator, token = entry.partition(":")
        tenant = name.strip() if separator else DEFAULT_TENANT
        token = token.strip() if separator else entry.strip()
        if separator and (not tenant or set(tenant) - TENANT_NAME_CHARACTERS or len(tenant) > 80):
            raise ValueError(f"{setting}: a tenant name (before ':') is 1 to 80 letters, digits, '_', '.' or '-'")
        if len(token) < MIN_TOKEN_LENGTH:
            raise ValueError(
                f"{setting}: every token must be at least {MIN_TOKEN_LENGTH} characters long "
                f"(one of {tenant!r} is {len(token)}); generate one with: python -c "
                "'import secrets; print(secrets.token_urlsafe(32))'"
            )
        grants.append(TokenGrant(token=token, tenant=tenant, admin=admin))
    return grants


class EndpointSettings(BaseModel):
    """A named OpenAI-compatible batch endpoint the operator runs tiers on (PROVIDERS): Azure OpenAI, DeepInfra, a
    self-hosted SGLang... Its models and their batch prices are its catalogue."""

    model_config = ConfigDict(extra="forbid")

    base_url: str
    api_key_env: str  # the variable holding its key (never the key itself)
    models: dict[str, dict[str, Any]] = Field(min_length=1)
    max_lines_per_batch: int = Field(default=50_000, gt=0)
    max_bytes_per_batch: int = Field(default=100 * 1024 * 1024, gt=0)
    completion_window: str = "24h"

    @field_validator("base_url")
    @classmethod
    def _http(cls, value: str) -> str:
        if not value.startswith(("http://", "https://")):
            raise ValueError("base_url must be an http(s) URL, e.g. https://api.deepinfra.com/v1/openai")
        return value.rstrip("/")

    @field_validator("api_key_env")
    @classmethod
    def _variable(cls, value: str) -> str:
        if not VARIABLE_NAME.match(value):
            raise ValueError("api_key_env is the name of an environment variable, e.g. DEEPINFRA_API_KEY")
        return value


@dataclass(frozen=True)
class ChunkLimits:
    """How large one provider batch of a provider may be."""

    max_lines: int
    max_bytes: int


class Settings(BaseSettings):
    # hide_input_in_errors: a refused value (a mistyped WEBHOOK_SECRET, a DATABASE_URL with a password) never
    # reaches the start-up error or the log.
    model_config = SettingsConfigDict(env_file=None, extra="ignore", case_sensitive=False, hide_input_in_errors=True)

    database_url: str = "sqlite:///./data/llm_batch.db"
    groq_api_key: SecretStr | None = None
    groq_base_url: str | None = None
    groq_timeout_seconds: float = 60.0
    groq_max_retries: int = 2
    # OpenAI and Anthropic, by the official SDKs' own variables; a bare model name stays a Groq model.
    openai_api_key: SecretStr | None = None
    openai_base_url: str | None = None
    anthropic_api_key: SecretStr | None = None
    anthropic_base_url: str | None = None
    provider_timeout_seconds: float = Field(default=60.0, gt=0)  # OpenAI, Anthropic and PROVIDERS endpoints
    provider_max_retries: int = Field(default=2, ge=0)  # SDK retries of reads and uploads, never of a create
    # Named OpenAI-compatible endpoints: {"name": {"base_url", "api_key_env", "models": {...}, ...}}, as JSON in
    # PROVIDERS or in the file PROVIDERS_FILE.
    providers: dict[str, EndpointSettings] = Field(default_factory=dict)
    providers_file: str | None = None

    # `name:token` or a bare token (tenant `default`); ADMIN_TOKENS see every tenant.
    api_tokens: Annotated[list[str], NoDecode] = Field(default_factory=list)
    admin_tokens: Annotated[list[str], NoDecode] = Field(default_factory=list)
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

    # Input limits (README explains the defaults).
    max_request_bytes: int = Field(default=512 * 1024 * 1024, gt=0)
    max_items_per_batch: int = Field(default=200_000, gt=0)
    max_custom_id_length: int = Field(default=512, gt=0, le=512)
    max_metadata_keys: int = Field(default=16, ge=0)
    max_metadata_bytes: int = Field(default=4096, gt=0)
    max_item_metadata_keys: int = Field(default=16, ge=0)
    max_item_metadata_bytes: int = Field(default=1024, gt=0)
    max_output_schema_bytes: int = Field(default=64 * 1024, gt=0)
    # A client that stops sending its request body for this long gets 408.
    request_body_timeout_seconds: float = Field(default=30.0, gt=0)
    # NDJSON exports streaming at once in one process; more get 503 with Retry-After.
    export_max_concurrent: int = Field(default=4, ge=1)

    # The default cascade (?fallback=true with no model named); PRIMARY_MODEL / FALLBACK_MODEL replace its
    # first / second tier.
    cascade: Annotated[list[str], NoDecode] = Field(default_factory=lambda: list(DEFAULT_CASCADE))
    primary_model: str | None = None
    fallback_model: str | None = None
    # Resends of a request that never ran (expired, missing, a provider 5xx) on the same tier.
    cascade_max_resends: int = Field(default=2, ge=0, le=10)
    # The model catalogue over the defaults (service/pipeline/catalogue.json): a JSON object of entries by
    # model, in the environment or in a file.
    model_catalogue: dict[str, Any] = Field(default_factory=dict)
    model_catalogue_file: str | None = None
    # JSON object {"model": [input_usd_per_1m, output_usd_per_1m]}, merged over the catalogue's prices.
    model_prices: dict[str, tuple[float, float]] = Field(default_factory=dict)
    # How often Groq's model list is read again (a model the account cannot use is refused at submit).
    model_sync_interval_seconds: float = Field(default=3600.0, gt=0)
    # Reuse: an identical request that succeeded for the same tenant within this long is not sent again.
    reuse_results: bool = False
    reuse_max_age_seconds: float = Field(default=30 * 24 * 3600.0, gt=0)

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
    # A finished batch is purged (bodies, outputs, error texts, spool and provider files; the tombstone with
    # counts and cost stays) this long after it finished. 0: kept until DELETE /batches/{id}.
    retention_seconds: float = Field(default=30 * 24 * 3600.0, ge=0)

    max_lines_per_provider_batch: int = 50_000  # Groq's
    max_bytes_per_provider_batch: int = 100 * 1024 * 1024  # Groq's
    openai_max_lines_per_batch: int = Field(default=50_000, gt=0)
    openai_max_bytes_per_batch: int = Field(default=200 * 1024 * 1024, gt=0)
    # Anthropic takes up to 100,000 requests or 256 MB a batch, inline: the SDK holds the whole body in memory,
    # so the default keeps a batch's body far smaller.
    anthropic_max_requests_per_batch: int = Field(default=100_000, gt=0)
    anthropic_max_bytes_per_batch: int = Field(default=32 * 1024 * 1024, gt=0)
    completion_window: str = "24h"
    spool_dir: str = "./data/spool"

    # json: one JSON object per line; text: for people. Unset: text on a terminal, json otherwise.
    log_format: Literal["json", "text"] | None = None
    log_level: str = "INFO"

    # Emulator knobs used when no GROQ_API_KEY is set (the built-in emulator is started in-process).
    emulator_seed: int = 0
    emulator_time_scale: float = 0.02

    @field_validator("api_tokens", "admin_tokens", "callback_allowed_hosts", "cascade", mode="before")
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

    @field_validator("cascade", mode="after")
    @classmethod
    def _cascade(cls, value: list[str]) -> list[str]:
        if not value:
            raise ValueError("CASCADE names at least one model (cheapest first, comma-separated)")
        return value

    @model_validator(mode="after")
    def _tokens(self) -> Settings:
        """Refuse short tokens at start-up (never quoting one): they are guessable, and too short to redact."""
        self.token_grants()
        return self

    @model_validator(mode="after")
    def _endpoints(self) -> Settings:
        """PROVIDERS_FILE read at start-up; every endpoint named as a provider may be."""
        if self.providers_file:
            loaded = json.loads(Path(self.providers_file).read_text(encoding="utf-8"))
            for name, raw in loaded.items():
                self.providers.setdefault(name, EndpointSettings.model_validate(raw))
        for name in self.providers:
            if name in BUILT_IN_PROVIDERS or not ENDPOINT_NAME.match(name):
                raise ValueError(
                    f"PROVIDERS: {name!r} cannot name an endpoint (lower-case letters, digits, '_' or '-', not "
                    f"{', '.join(BUILT_IN_PROVIDERS)})"
                )
        return self

    def provider_names(self) -> list[str]:
        return [*BUILT_IN_PROVIDERS, *self.providers]

    def key_variable(self, provider: str) -> str:
        """The environment variable a provider's key is read from."""
        return KEY_VARIABLES.get(provider) or self.providers[provider].api_key_env

    def provider_key(self, provider: str) -> str | None:
        """A provider's key, or None when its variable is unset or empty."""
        secret = {"groq": self.groq_api_key, "openai": self.openai_api_key, "anthropic": self.anthropic_api_key}
        if provider in secret:
            value = secret[provider]
            return value.get_secret_value() or None if value is not None else None
        return os.environ.get(self.providers[provider].api_key_env) or None

    def missing_key(self, provider: str) -> str | None:
        """The variable to set before tiers can run on `provider`, or None when it can (it has a key, or every
        provider runs on its built-in emulator because no key is set at all)."""
        if self.uses_emulator or self.provider_key(provider) is not None:
            return None
        return self.key_variable(provider)

    def missing_keys(self) -> dict[str, str]:
        """Provider -> the variable to set before its tiers can run (none while everything is emulated)."""
        return {name: variable for name in self.provider_names() if (variable := self.missing_key(name)) is not None}

    def provider_states(self) -> dict[str, str]:
        """Provider -> emulator | configured | the unset variable its tiers wait for."""
        if self.uses_emulator:
            return dict.fromkeys(self.provider_names(), "emulator")
        missing = self.missing_keys()
        return {
            name: f"{missing[name]} is not set" if name in missing else "configured" for name in self.provider_names()
        }

    def chunk_limits(self, provider: str) -> ChunkLimits:
        if provider == "groq":
            return ChunkLimits(self.max_lines_per_provider_batch, self.max_bytes_per_provider_batch)
        if provider == "openai":
            return ChunkLimits(self.openai_max_lines_per_batch, self.openai_max_bytes_per_batch)
        if provider == "anthropic":
            return ChunkLimits(self.anthropic_max_requests_per_batch, self.anthropic_max_bytes_per_batch)
        endpoint = self.providers[provider]
        return ChunkLimits(endpoint.max_lines_per_batch, endpoint.max_bytes_per_batch)

    def endpoint_catalogue(self) -> dict[str, Any]:
        """The models of the PROVIDERS endpoints, as catalogue entries by `provider:model`."""
        return {
            f"{name}:{model}": entry
            for name, endpoint in self.providers.items()
            for model, entry in endpoint.models.items()
        }

    def token_grants(self) -> list[TokenGrant]:
        return [
            *parse_tokens(self.api_tokens, setting="API_TOKENS", admin=False),
            *parse_tokens(self.admin_tokens, setting="ADMIN_TOKENS", admin=True),
        ]

    @property
    def auth_enabled(self) -> bool:
        return bool(self.api_tokens or self.admin_tokens)

    @property
    def uses_emulator(self) -> bool:
        """No provider key at all: every provider runs on its built-in emulator (the embedded default)."""
        return all(self.provider_key(provider) is None for provider in self.provider_names())

    def default_cascade(self) -> list[str]:
        tiers = list(self.cascade)
        if self.primary_model:
            tiers[0] = self.primary_model
        if self.fallback_model:
            tiers[1:2] = [self.fallback_model]
        return tiers

    def catalogue_overrides(self) -> dict[str, Any]:
        """MODEL_CATALOGUE_FILE, then MODEL_CATALOGUE over it."""
        overrides: dict[str, Any] = {}
        if self.model_catalogue_file:
            loaded = json.loads(Path(self.model_catalogue_file).read_text(encoding="utf-8"))
            overrides.update(loaded.get("models", loaded) if isinstance(loaded, dict) else {})
        overrides.update(self.model_catalogue)
        return overrides


@lru_cache
def get_settings() -> Settings:
    return Settings()
