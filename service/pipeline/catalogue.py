"""The model catalogue: per model its batch prices, structured-output support, limits and lifecycle.

Data, not code paths: the defaults are `catalogue.json` (from GROQ_BATCH_API.md), the operator overrides or
adds entries (MODEL_CATALOGUE, MODEL_CATALOGUE_FILE, and MODEL_PRICES for prices alone), and what Groq's model
list says at run time is laid over it by whoever asks (`usable_models`), never written into it.

A model without prices can be named nowhere: cost is always usage times price.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from datetime import date
from decimal import Decimal, InvalidOperation
from enum import StrEnum
from importlib import resources
from typing import Any

from service.pipeline.cost import PICO_PER_USD_PER_MILLION, Usage

REASONING_EFFORTS = ("low", "medium", "high")
DEFAULT_REASONING_EFFORT = "medium"


class StructuredOutput(StrEnum):
    STRICT = "strict"  # json_schema with strict: true (constrained decoding), best effort also works
    BEST_EFFORT = "best_effort"  # json_schema, strict: false only
    JSON_OBJECT = "json_object"  # only JSON mode; the schema goes into the prompt and is checked here


class Lifecycle(StrEnum):
    ACTIVE = "active"
    DEPRECATED = "deprecated"  # still served until shutdown_date
    DECOMMISSIONED = "decommissioned"  # gone since shutdown_date; use the replacement


class CatalogueError(ValueError):
    """An entry the operator gave cannot be used; the message names the model and the field."""


@dataclass(frozen=True)
class ModelEntry:
    id: str
    structured_output: StructuredOutput = StructuredOutput.JSON_OBJECT
    max_completion_tokens: int = 8192
    context_window: int = 131072
    reasoning: bool = False  # takes reasoning_effort and spends output tokens on reasoning
    lifecycle: Lifecycle = Lifecycle.ACTIVE
    shutdown_date: date | None = None
    replacement: str | None = None
    input_usd_per_million: Decimal | None = None
    output_usd_per_million: Decimal | None = None
    # Priors for estimates before the service has its own history of the model: output tokens per attempt
    # (reasoning included), the share of attempts that run out of tokens, and the share whose answer is not
    # the JSON asked for when strict mode is not used.
    prior_output_tokens: int = 500
    prior_max_tokens_share: float = 0.02
    prior_invalid_share: float = 0.05

    @property
    def priced(self) -> bool:
        return self.input_usd_per_million is not None and self.output_usd_per_million is not None

    @property
    def input_pico_per_token(self) -> int:
        return _pico_per_token(self.input_usd_per_million)

    @property
    def output_pico_per_token(self) -> int:
        return _pico_per_token(self.output_usd_per_million)

    def cost_pico(self, usage: Usage) -> int:
        return usage.input_tokens * self.input_pico_per_token + usage.output_tokens * self.output_pico_per_token

    @property
    def supports_json_schema(self) -> bool:
        return self.structured_output in (StructuredOutput.STRICT, StructuredOutput.BEST_EFFORT)

    @property
    def supports_strict(self) -> bool:
        return self.structured_output == StructuredOutput.STRICT

    def lifecycle_text(self) -> str:
        when = f" on {self.shutdown_date.isoformat()}" if self.shutdown_date else ""
        instead = f"; use {self.replacement} instead" if self.replacement else ""
        if self.lifecycle == Lifecycle.DECOMMISSIONED:
            return f"model {self.id!r} was decommissioned by Groq{when}{instead}"
        if self.lifecycle == Lifecycle.DEPRECATED:
            return f"model {self.id!r} is deprecated and will be shut down{when}{instead}"
        return f"model {self.id!r} is active"


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


def _entry(model: str, raw: Mapping[str, Any], base: ModelEntry | None) -> ModelEntry:
    """One entry from its JSON form, over `base` (the default entry, when the operator overrides one)."""
    if not isinstance(raw, Mapping):
        raise CatalogueError(f"{model}: an entry is a JSON object")
    known = {f for f in ModelEntry.__dataclass_fields__ if f != "id"}
    unknown = sorted(set(raw) - known)
    if unknown:
        raise CatalogueError(f"{model}: unknown field {unknown[0]!r} (known: {', '.join(sorted(known))})")
    entry = base or ModelEntry(id=model)
    changes: dict[str, Any] = {}
    try:
        for key, value in raw.items():
            if key in ("input_usd_per_million", "output_usd_per_million"):
                changes[key] = None if value is None else _price(model, key, value)
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
    """Every model the service knows, by id."""

    def __init__(self, entries: Iterable[ModelEntry]) -> None:
        self._entries = {entry.id: entry for entry in entries}

    def get(self, model: str) -> ModelEntry | None:
        return self._entries.get(model)

    def __contains__(self, model: object) -> bool:
        return model in self._entries

    def __iter__(self) -> Any:
        return iter(self._entries.values())

    def cost_pico(self, model: str, usage: Usage) -> int:
        entry = self._entries.get(model)
        if entry is None or not entry.priced:
            raise CatalogueError(f"no batch price is configured for model {model!r} (set MODEL_PRICES)")
        return entry.cost_pico(usage)

    @classmethod
    def build(
        cls,
        overrides: Mapping[str, Any] | None = None,
        prices: Mapping[str, tuple[float, float]] | None = None,
        defaults: Mapping[str, Any] | None = None,
    ) -> Catalogue:
        """The defaults (catalogue.json), then `overrides` (whole or partial entries by model), then `prices`
        (MODEL_PRICES: {model: [input, output]} in USD per 1M tokens)."""
        entries: dict[str, ModelEntry] = {}
        for model, raw in (defaults if defaults is not None else default_entries()).items():
            entries[model] = _entry(model, raw, None)
        for model, raw in (overrides or {}).items():
            entries[model] = _entry(model, raw, entries.get(model))
        for model, pair in (prices or {}).items():
            if not isinstance(pair, list | tuple) or len(pair) != 2:
                raise CatalogueError(f"MODEL_PRICES {model}: expected [input_usd_per_1m, output_usd_per_1m]")
            raw_prices = {"input_usd_per_million": pair[0], "output_usd_per_million": pair[1]}
            entries[model] = _entry(model, raw_prices, entries.get(model))
        return cls(entries.values())


def default_entries() -> dict[str, Any]:
    text = resources.files("service.pipeline").joinpath("catalogue.json").read_text(encoding="utf-8")
    models: dict[str, Any] = json.loads(text)["models"]
    return models


def lower_effort(effort: str | None) -> str:
    """One step lower on the low/medium/high scale (never below low); unset counts as Groq's default, medium."""
    current = effort if effort in REASONING_EFFORTS else DEFAULT_REASONING_EFFORT
    return REASONING_EFFORTS[max(0, REASONING_EFFORTS.index(current) - 1)]
