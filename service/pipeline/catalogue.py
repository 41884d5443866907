"""The model catalogue: per provider and model its batch prices, structured-output support, limits, lifecycle and
the shape of its request lines.

A model is named `provider:model` (`openai:gpt-5-mini`, `anthropic:claude-haiku-4-5`); a bare name is a Groq model
(`openai/gpt-oss-20b` is `groq:openai/gpt-oss-20b`), as it always was. Data, not code paths: the defaults are
`catalogue.json` (from GROQ_BATCH_API.md and PROVIDERS_BATCH_API.md), the operator overrides or adds entries
(MODEL_CATALOGUE, MODEL_CATALOGUE_FILE, MODEL_PRICES for prices alone, and the models of the endpoints PROVIDERS
names), and what the providers' model lists say at run time is laid over it by whoever asks, never written into
it.

A model without prices can be named nowhere: cost is always usage times price.
"""

from __future__ import annotations

import json
from collections.abc import Collection, Iterable, Iterator, Mapping
from dataclasses import dataclass, replace
from datetime import date
from decimal import Decimal, InvalidOperation
from enum import StrEnum
from importlib import resources
from typing import Any, NamedTuple

from service.pipeline.cost import PICO_PER_USD_PER_MILLION, Usage

REASONING_EFFORTS = ("low", "medium", "high")
DEFAULT_REASONING_EFFORT = "medium"
GROQ, OPENAI, ANTHROPIC = "groq", "openai", "anthropic"
BUILT_IN_PROVIDERS = (GROQ, OPENAI, ANTHROPIC)
CHAT_ENDPOINT, RESPONSES_ENDPOINT = "/v1/chat/completions", "/v1/responses"


class StructuredOutput(StrEnum):
    STRICT = "strict"  # json_schema with strict: true (constrained decoding), best effort also works
    BEST_EFFORT = "best_effort"  # json_schema, strict: false only
    JSON_OBJECT = "json_object"  # only JSON mode; the schema goes into the prompt and is checked here


class Lifecycle(StrEnum):
    ACTIVE = "active"
    DEPRECATED = "deprecated"  # still served until shutdown_date
    DECOMMISSIONED = "decommissioned"  # gone since shutdown_date; use the replacement


class LineFormat(StrEnum):
    """The shape of a request line in a provider's batch input."""

    CHAT = "chat_completions"  # OpenAI's /v1/chat/completions body: Groq, OpenAI, OpenAI-compatible endpoints
    RESPONSES = "responses"  # OpenAI's /v1/responses body
    MESSAGES = "anthropic_messages"  # Anthropic's Message Batches request params


class CatalogueError(ValueError):
    """An entry the operator gave cannot be used; the message names the model and the field."""


class ModelRef(NamedTuple):
    """A model of a provider: what a tier names."""

    provider: str
    model: str

    def __str__(self) -> str:
        return f"{self.provider}:{self.model}"


def parse_model_name(name: str, providers: Collection[str] = BUILT_IN_PROVIDERS) -> ModelRef:
    """`provider:model` when the part before the first colon is a provider this deployment knows; otherwise the
    whole name is a Groq model (model ids may hold colons of their own, e.g. `ft:gpt-4o-mini:acme::x`)."""
    provider, separator, model = name.partition(":")
    if separator and provider in providers and model:
        return ModelRef(provider, model)
    return ModelRef(GROQ, name)


def display_name(ref: ModelRef) -> str:
    """How a model is named back to callers: bare for Groq (as it always was), `provider:model` otherwise."""
    return ref.model if ref.provider == GROQ else str(ref)


@dataclass(frozen=True)
class ModelEntry:
    id: str
    provider: str = GROQ
    structured_output: StructuredOutput = StructuredOutput.JSON_OBJECT
    max_completion_tokens: int = 8192
    context_window: int = 131072
    reasoning: bool = False  # takes reasoning_effort and spends output tokens on reasoning
    lifecycle: Lifecycle = Lifecycle.ACTIVE
    shutdown_date: date | None = None
    replacement: str | None = None
    input_usd_per_million: Decimal | None = None
    output_usd_per_million: Decimal | None = None
    # Prompt tokens read from the provider's cache and written to it, where batch and caching stack (None: billed
    # as other input).
    cached_input_usd_per_million: Decimal | None = None
    cache_write_usd_per_million: Decimal | None = None
    endpoint: str = CHAT_ENDPOINT  # OpenAI: the batch endpoint its lines go to
    fixed_temperature: bool = False  # takes only the default temperature (OpenAI's reasoning models)
    tokenizer: str | None = None  # "o200k" where its vocabulary is at hand offline (o200k for gpt-oss: see tokens)
    # Priors for estimates before the service has its own history of the model: output tokens per attempt
    # (reasoning included), the share of attempts that run out of tokens, and the share whose answer is not
    # the JSON asked for when strict mode is not used.
    prior_output_tokens: int = 500
    prior_max_tokens_share: float = 0.02
    prior_invalid_share: float = 0.05

    @property
    def ref(self) -> ModelRef:
        return ModelRef(self.provider, self.id)

    @property
    def name(self) -> str:
        """As callers name it: bare for Groq, `provider:model` otherwise."""
        return display_name(self.ref)

    @property
    def line_format(self) -> LineFormat:
        if self.provider == ANTHROPIC:
            return LineFormat.MESSAGES
        return LineFormat.RESPONSES if self.endpoint == RESPONSES_ENDPOINT else LineFormat.CHAT

    @property
    def short_line_ids(self) -> bool:
        """Its lines carry our short per-item ids (`i<item id>`), mapped back at ingest, instead of the caller's
        custom_id (up to 512 characters of any text): Anthropic allows `^[a-zA-Z0-9_-]{1,64}$` only, and OpenAI
        and the compatible endpoints document no limit, or 64 characters. Groq's lines keep the caller's ids."""
        return self.provider != GROQ

    @property
    def priced(self) -> bool:
        return self.input_usd_per_million is not None and self.output_usd_per_million is not None

    @property
    def input_pico_per_token(self) -> int:
        return _pico_per_token(self.input_usd_per_million)

    @property
    def output_pico_per_token(self) -> int:
        return _pico_per_token(self.output_usd_per_million)

    @property
    def cached_input_pico_per_token(self) -> int:
        price = self.cached_input_usd_per_million
        return _pico_per_token(self.input_usd_per_million if price is None else price)

    @property
    def cache_write_pico_per_token(self) -> int:
        price = self.cache_write_usd_per_million
        return _pico_per_token(self.input_usd_per_million if price is None else price)

    def cost_pico(self, usage: Usage) -> int:
        """Usage times price, exactly: prompt tokens read from or written to the cache at their own prices, the
        other prompt tokens and the output at theirs."""
        plain_input = usage.input_tokens - usage.cached_input_tokens - usage.cache_write_tokens
        return (
            plain_input * self.input_pico_per_token
            + usage.cached_input_tokens * self.cached_input_pico_per_token
            + usage.cache_write_tokens * self.cache_write_pico_per_token
            + usage.output_tokens * self.output_pico_per_token
        )

    @property
    def supports_json_schema(self) -> bool:
        return self.structured_output in (StructuredOutput.STRICT, StructuredOutput.BEST_EFFORT)

    @property
    def supports_strict(self) -> bool:
        return self.structured_output == StructuredOutput.STRICT

    def lifecycle_text(self) -> str:
        when = f" on {self.shutdown_date.isoformat()}" if self.shutdown_date else ""
        instead = f"; use {self.replacement} instead" if self.replacement else ""
        provider = self.provider.capitalize() if self.provider in BUILT_IN_PROVIDERS else self.provider
        if self.lifecycle == Lifecycle.DECOMMISSIONED:
            return f"model {self.name!r} was decommissioned by {provider}{when}{instead}"
        if self.lifecycle == Lifecycle.DEPRECATED:
            return f"model {self.name!r} is deprecated and will be shut down{when}{instead}"
        return f"model {self.name!r} is active"


def _pico_per_token(usd_per_million: Decimal | None) -> int:
    if usd_per_million is None:
        raise CatalogueError("the model has no batch price")
    return int(usd_per_million * PICO_PER_USD_PER_MILLION)


def _price(model: str, field: str, value: Any) -> Decimal:
    try:
        price = Decimal(str(value))
    except InvalidOperation:
        raise CatalogueError(f"{model}: {field} must be a number of USD per 1M tokens, not {value!r}") from None
    if not price.is_finite() or price < 0:
        raise CatalogueError(f"{model}: {field} must be a non-negative number of USD per 1M tokens")
    if (price * PICO_PER_USD_PER_MILLION) % 1:
        raise CatalogueError(f"{model}: {field} has more than six decimals (USD per 1M tokens)")
    return price


PRICE_FIELDS = (
    "input_usd_per_million",
    "output_usd_per_million",
    "cached_input_usd_per_million",
    "cache_write_usd_per_million",
)


def _entry(ref: ModelRef, raw: Mapping[str, Any], base: ModelEntry | None) -> ModelEntry:
    """One entry from its JSON form, over `base` (the default entry, when the operator overrides one)."""
    model = display_name(ref)
    if not isinstance(raw, Mapping):
        raise CatalogueError(f"{model}: an entry is a JSON object")
    known = {f for f in ModelEntry.__dataclass_fields__ if f not in ("id", "provider")}
    unknown = sorted(set(raw) - known)
    if unknown:
        raise CatalogueError(f"{model}: unknown field {unknown[0]!r} (known: {', '.join(sorted(known))})")
    entry = base or ModelEntry(id=ref.model, provider=ref.provider)
    changes: dict[str, Any] = {}
    try:
        for key, value in raw.items():
            if key in PRICE_FIELDS:
                changes[key] = None if value is None else _price(model, key, value)
            elif key == "endpoint":
                if value not in (CHAT_ENDPOINT, RESPONSES_ENDPOINT):
                    raise CatalogueError(f"{model}: endpoint is {CHAT_ENDPOINT} or {RESPONSES_ENDPOINT}")
                changes[key] = value
            elif key == "tokenizer":
                if value not in (None, "o200k"):
                    raise CatalogueError(f'{model}: tokenizer is "o200k" or null (none at hand offline)')
                changes[key] = value
            elif key == "fixed_temperature":
                if not isinstance(value, bool):
                    raise CatalogueError(f"{model}: fixed_temperature must be true or false")
                changes[key] = value
            elif key == "structured_output":
                changes[key] = StructuredOutput(value)
            elif key == "lifecycle":
                changes[key] = Lifecycle(value)
            elif key == "shutdown_date":
                changes[key] = None if value is None else date.fromisoformat(str(value))
            elif key in ("max_completion_tokens", "context_window"):
                if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                    raise CatalogueError(f"{model}: {key} must be a positive integer")
                changes[key] = value
            elif key == "prior_output_tokens":
                if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                    raise CatalogueError(f"{model}: {key} must be a non-negative integer")
                changes[key] = value
            elif key in ("prior_max_tokens_share", "prior_invalid_share"):
                if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value <= 1:
                    raise CatalogueError(f"{model}: {key} must be a share between 0 and 1")
                changes[key] = float(value)
            elif key == "reasoning":
                if not isinstance(value, bool):
                    raise CatalogueError(f"{model}: reasoning must be true or false")
                changes[key] = value
            elif key == "replacement":
                changes[key] = None if value is None else str(value)
    except ValueError as error:
        if isinstance(error, CatalogueError):
            raise
        raise CatalogueError(f"{model}: {error}") from None
    return replace(entry, **changes)


class Catalogue:
    """Every model the service knows, by provider and model."""

    def __init__(self, entries: Iterable[ModelEntry], providers: Collection[str] = BUILT_IN_PROVIDERS) -> None:
        self._entries = {entry.ref: entry for entry in entries}
        self.providers = frozenset({*providers, *(ref.provider for ref in self._entries)})

    def ref(self, name: str) -> ModelRef:
        """What a model name means here (see `parse_model_name`)."""
        return parse_model_name(name, self.providers)

    def get(self, name: str | ModelRef) -> ModelEntry | None:
        ref = name if isinstance(name, ModelRef) else self.ref(name)
        return self._entries.get(ref)

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str | ModelRef) and self.get(name) is not None

    def __iter__(self) -> Iterator[ModelEntry]:
        return iter(self._entries.values())

    def of_provider(self, provider: str) -> list[ModelEntry]:
        return [entry for entry in self._entries.values() if entry.provider == provider]

    def cost_pico(self, name: str | ModelRef, usage: Usage) -> int:
        entry = self.get(name)
        if entry is None or not entry.priced:
            raise CatalogueError(f"no batch price is configured for model {str(name)!r} (set MODEL_PRICES)")
        return entry.cost_pico(usage)

    @classmethod
    def build(
        cls,
        overrides: Mapping[str, Any] | None = None,
        prices: Mapping[str, tuple[float, float]] | None = None,
        defaults: Mapping[str, Any] | None = None,
        providers: Collection[str] = BUILT_IN_PROVIDERS,
    ) -> Catalogue:
        """The defaults (catalogue.json: {provider: {"models": {model: entry}}}), then `overrides` (whole or
        partial entries by model name), then `prices` (MODEL_PRICES: {name: [input, output]} in USD per 1M
        tokens). `providers`: the providers whose `provider:` prefix names are read as such."""
        known = frozenset({*BUILT_IN_PROVIDERS, *providers})
        entries: dict[ModelRef, ModelEntry] = {}
        for provider, section in (defaults if defaults is not None else default_entries()).items():
            for model, raw in section.get("models", {}).items():
                entries[ModelRef(provider, model)] = _entry(ModelRef(provider, model), raw, None)
        for name, raw in (overrides or {}).items():
            ref = parse_model_name(name, known)
            entries[ref] = _entry(ref, raw, entries.get(ref))
        for name, pair in (prices or {}).items():
            if not isinstance(pair, list | tuple) or len(pair) != 2:
                raise CatalogueError(f"MODEL_PRICES {name}: expected [input_usd_per_1m, output_usd_per_1m]")
            ref = parse_model_name(name, known)
            raw_prices = {"input_usd_per_million": pair[0], "output_usd_per_million": pair[1]}
            entries[ref] = _entry(ref, raw_prices, entries.get(ref))
        return cls(entries.values(), known)


def default_entries() -> dict[str, Any]:
    """The built-in catalogue: {provider: {"models": {model: entry}}}."""
    text = resources.files("service.pipeline").joinpath("catalogue.json").read_text(encoding="utf-8")
    providers: dict[str, Any] = json.loads(text)["providers"]
    return providers


def lower_effort(effort: str | None) -> str:
    """One step lower on the low/medium/high scale (never below low); unset counts as Groq's default, medium."""
    current = effort if effort in REASONING_EFFORTS else DEFAULT_REASONING_EFFORT
    return REASONING_EFFORTS[max(0, REASONING_EFFORTS.index(current) - 1)]
