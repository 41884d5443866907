"""Configuration of the emulator: timings, limits, model behaviour and injectable faults."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from groq_emulator.clock import Clock
from groq_emulator.knobs import check_fractions, reset_fields, staged_numbers

CHAT_ENDPOINT = "/v1/chat/completions"


@dataclass(frozen=True)
class ModelBehaviour:
    """How one model behaves. Each request draws one outcome from these probabilities.

    ``json_validate_failed``, ``schema_break``: only when JSON was requested (``response_format``
    ``json_object`` or ``json_schema``) and never with ``json_schema`` + ``strict: true`` on a model
    in ``EmulatorConfig.strict_models`` (constrained decoding). ``max_tokens_share`` of the
    json_validate_failed draws, and every ``length`` draw, are a request that needs a long generation
    instead (``long_reasoning_tokens`` of reasoning first): it runs out of its ``max_completion_tokens``
    (JSON mode: Groq's json_validate_failed "max completion tokens reached..."; otherwise a 200 cut off
    with ``finish_reason: "length"``), and succeeds once the budget is large enough.
    """

    json_validate_failed: float = 0.02
    max_tokens_share: float = 0.05
    length: float = 0.005
    schema_break: float = 0.005
    reasoning_tokens: tuple[int, int] = (0, 0)  # inclusive range of hidden reasoning tokens
    long_reasoning_tokens: tuple[int, int] = (2_500, 3_600)  # a request that needs more than a 2,048 budget
    max_output_tokens: int = 32_768
    context_window: int = 131_072
    tokens_per_second: float = 500.0


GPT_OSS_20B = ModelBehaviour(
    json_validate_failed=0.20,
    max_tokens_share=0.07,
    length=0.015,
    schema_break=0.01,
    reasoning_tokens=(100, 400),
    max_output_tokens=65_536,
    tokens_per_second=1000.0,
)
GPT_OSS_120B = dataclasses.replace(
    GPT_OSS_20B, json_validate_failed=0.004, length=0.0015, schema_break=0.001, tokens_per_second=500.0
)
LLAMA_70B = ModelBehaviour(
    json_validate_failed=0.006,
    max_tokens_share=0.0,
    length=0.002,
    schema_break=0.002,
    max_output_tokens=32_768,
    tokens_per_second=280.0,
)
LLAMA_8B = ModelBehaviour(
    json_validate_failed=0.03,
    max_tokens_share=0.0,
    length=0.005,
    schema_break=0.01,
    max_output_tokens=131_072,
    tokens_per_second=750.0,
)


def default_behaviours() -> dict[str, ModelBehaviour]:
    return {
        "openai/gpt-oss-20b": GPT_OSS_20B,
        "openai/gpt-oss-safeguard-20b": GPT_OSS_20B,
        "openai/gpt-oss-120b": GPT_OSS_120B,
        "llama-3.3-70b-versatile": LLAMA_70B,
        "llama-3.1-8b-instant": LLAMA_8B,
    }


DEFAULT_JSON_SCHEMA_MODELS = frozenset(
    {
        "openai/gpt-oss-20b",
        "openai/gpt-oss-120b",
        "openai/gpt-oss-safeguard-20b",
        "moonshotai/kimi-k2-instruct-0905",
        "meta-llama/llama-4-maverick-17b-128e-instruct",
        "meta-llama/llama-4-scout-17b-16e-instruct",
    }
)
DEFAULT_STRICT_MODELS = frozenset({"openai/gpt-oss-20b", "openai/gpt-oss-120b"})
# Retired by Groq (GROQ_BATCH_API.md §13a): a request for one answers 400 model_decommissioned.
DEFAULT_DECOMMISSIONED_MODELS = frozenset(
    {
        "llama-3.3-70b-versatile",
        "llama-3.1-8b-instant",
        "moonshotai/kimi-k2-instruct-0905",
        "meta-llama/llama-4-maverick-17b-128e-instruct",
    }
)
DEFAULT_KNOWN_MODELS = frozenset(
    {
        *default_behaviours(),
        *DEFAULT_JSON_SCHEMA_MODELS,
        "moonshotai/kimi-k2-instruct",
        "meta-llama/llama-guard-4-12b",
        "qwen/qwen3-32b",
    }
)
# Models whose prompt tokens are counted with their real vocabulary (o200k), like Groq bills them.
O200K_MODELS = frozenset({"openai/gpt-oss-20b", "openai/gpt-oss-120b", "openai/gpt-oss-safeguard-20b"})


@dataclass
class EmulatorConfig:
    """Everything that shapes the emulator. Times are emulated seconds (see ``clock.py``)."""

    seed: int = 0
    time_scale: float = 1.0  # used only when ``clock`` is None: ScaledClock(time_scale)
    clock: Clock | None = None
    validating_seconds: float = 2.0
    processing_seconds: float = 10.0  # for the whole file ...
    per_line_seconds: float = 0.0  # ... plus this much per input line
    finalizing_seconds: float = 2.0
    cancel_seconds: float = 5.0
    max_lines: int = 50_000
    max_bytes: int = 100 * 1024 * 1024
    max_reported_errors: int = 1000  # cap on Batch.errors.data
    list_default_limit: int = 20
    list_max_limit: int = 100
    max_ids_per_list: int = 200
    behaviours: dict[str, ModelBehaviour] = field(default_factory=default_behaviours)
    default_behaviour: ModelBehaviour = field(default_factory=ModelBehaviour)
    # Models that exist; others get 404 model_not_found. Keys of ``behaviours`` exist too.
    known_models: frozenset[str] = DEFAULT_KNOWN_MODELS
    json_schema_models: frozenset[str] = DEFAULT_JSON_SCHEMA_MODELS
    # ``strict: true`` means constrained decoding only on these; elsewhere it is best effort.
    strict_models: frozenset[str] = DEFAULT_STRICT_MODELS
    decommissioned_models: frozenset[str] = DEFAULT_DECOMMISSIONED_MODELS
    # Whether Groq fails a whole batch naming a decommissioned model at validation instead of each line is
    # uncertain (GROQ_BATCH_API.md §13a): False answers per line, True fails the batch.
    decommissioned_fails_batch: bool = False
    o200k_models: frozenset[str] = O200K_MODELS

    def model_exists(self, model: str) -> bool:
        return model in self.known_models or model in self.behaviours

    def listed_models(self) -> list[str]:
        """What GET /openai/v1/models lists: the models the account can use now."""
        return sorted((set(self.known_models) | set(self.behaviours)) - self.decommissioned_models)

    def behaviour(self, model: str) -> ModelBehaviour:
        return self.behaviours.get(model, self.default_behaviour)


@dataclass
class Faults:
    """Faults to inject. Mutable: set fields in-process or via ``POST /_emulator/faults``.

    Counters (``*_next*``) count down as they fire.
    """

    rate_limit_next: int = 0  # next N API requests: 429 + retry-after
    rate_limit_retry_after: float = 0.05  # seconds, <= 60 so the SDK honours it
    server_error_next: int = 0  # next N API requests: server_error_status
    server_error_status: int = 500  # 500, 502 or 503
    error_rate: float = 0.0  # seeded probability that an API request gets a 429 or 5xx
    slow_seconds: float = 0.0  # real seconds to sleep before answering any API request
    expire_next_batches: int = 0  # next N batches that pass validation end `expired` ...
    expire_after_fraction: float = 0.5  # ... after processing only this fraction of lines
    fail_next_batches: int = 0  # next N created batches fail validation
    malformed_output_lines: int = 0  # corrupt this many lines of the next output file

    def clear(self) -> None:
        """Back to no faults at all."""
        reset_fields(self)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def update(self, changes: dict[str, Any]) -> None:
        """Apply a partial update, checking names and types. Raises ValueError."""
        staged = staged_numbers(self, changes)
        if "rate_limit_retry_after" in staged and staged["rate_limit_retry_after"] > 60:
            raise ValueError("rate_limit_retry_after must be <= 60")
        if "server_error_status" in staged and not 500 <= staged["server_error_status"] <= 599:
            raise ValueError("server_error_status must be a 5xx status")
        check_fractions(staged, "error_rate", "expire_after_fraction")
        for name, value in staged.items():
            setattr(self, name, value)
