"""Configuration of the OpenAI emulator: timings, limits, the model catalogue, uncertain facts, faults."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, Literal

from groq_emulator.clock import Clock
from groq_emulator.knobs import check_fractions, reset_fields, staged_numbers

CHAT = "/v1/chat/completions"
RESPONSES = "/v1/responses"
ENDPOINTS = (CHAT, RESPONSES)
DAY = 86_400
MB = 1024 * 1024
GPT5_EFFORTS = ("minimal", "low", "medium", "high")
GPT54_EFFORTS = ("none", "low", "medium", "high", "xhigh")


@dataclass(frozen=True)
class ModelSpec:
    """One model the account has: its limits and how its answers go.

    Each request draws one outcome: ``refusal`` (the model declines; ``message.refusal`` / a refusal output
    item), ``length`` (it needs a long generation: ``long_tokens`` of reasoning on a reasoning model, of text
    otherwise, which a small token budget cuts off), ``schema_break`` (best-effort JSON only: the answer misses
    the schema; never with ``strict: true``), or a normal answer. Reasoning tokens are drawn at medium effort
    and scaled by ``reasoning_effort``; they are part of ``completion_tokens``.
    """

    snapshot: str  # the dated id that answers and the Batch object name
    created: int  # Unix seconds, for GET /v1/models
    reasoning: bool = False
    context_window: int = 128_000
    max_output_tokens: int = 16_384
    structured_outputs: bool = True
    # False: a /v1/chat/completions line fails in batch (404 model_not_found) while /v1/responses works
    # (openai-python#3071, gpt-5.4-mini/nano, 2026-04; whether it still holds is uncertain).
    chat_completions_in_batch: bool = True
    efforts: tuple[str, ...] = ()
    default_effort: str | None = None
    refusal: float = 0.002
    length: float = 0.005
    schema_break: float = 0.01
    reasoning_tokens: tuple[int, int] = (0, 0)
    long_tokens: tuple[int, int] = (2_500, 3_600)
    enqueued_token_limit: int = 2_000_000  # "Enqueued prompt tokens per model", usage tier 1
    shutdown_date: str | None = None  # announced shutdown, as GET /v1/models shows it
    o200k: bool = True  # prompt tokens in the o200k vocabulary (gpt-4o, gpt-4.1, gpt-5 families)
    input_limit: int | None = None  # prompt tokens allowed, when less than the context window

    @property
    def max_input_tokens(self) -> int:
        return self.input_limit if self.input_limit is not None else self.context_window


_GPT5 = ModelSpec(
    snapshot="gpt-5-mini-2025-08-07",
    created=1_754_425_777,
    reasoning=True,
    context_window=400_000,
    max_output_tokens=128_000,
    efforts=GPT5_EFFORTS,
    default_effort="medium",
    refusal=0.003,
    length=0.01,
    schema_break=0.02,
    reasoning_tokens=(150, 900),
    enqueued_token_limit=5_000_000,
    input_limit=272_000,
)


def default_models() -> dict[str, ModelSpec]:
    return {
        "gpt-5-mini": _GPT5,
        "gpt-5-nano": dataclasses.replace(
            _GPT5, snapshot="gpt-5-nano-2025-08-07", refusal=0.004, length=0.02, schema_break=0.05,
            reasoning_tokens=(200, 1_400), enqueued_token_limit=2_000_000,
        ),
        "gpt-5.4-mini": dataclasses.replace(
            _GPT5, snapshot="gpt-5.4-mini-2026-03-17", created=1_773_705_600, chat_completions_in_batch=False,
            efforts=GPT54_EFFORTS, default_effort="none", refusal=0.002, length=0.005, schema_break=0.01,
        ),
        "gpt-5.4-nano": dataclasses.replace(
            _GPT5, snapshot="gpt-5.4-nano-2026-03-17", created=1_773_705_600, chat_completions_in_batch=False,
            efforts=GPT54_EFFORTS, default_effort="none", refusal=0.003, length=0.01, schema_break=0.03,
            enqueued_token_limit=2_000_000,
        ),
        "gpt-4.1-mini": ModelSpec(
            snapshot="gpt-4.1-mini-2025-04-14", created=1_744_318_173, context_window=1_047_576,
            max_output_tokens=32_768, refusal=0.001, length=0.004, schema_break=0.01,
        ),
        "gpt-4.1-nano": ModelSpec(
            snapshot="gpt-4.1-nano-2025-04-14", created=1_744_318_173, context_window=1_047_576,
            max_output_tokens=32_768, refusal=0.002, length=0.006, schema_break=0.03,
        ),
    }  # fmt: skip


# Shut down: a line naming one is a 404 model_not_found, and GET /v1/models leaves it out.
DEFAULT_RETIRED_MODELS = frozenset({"gpt-4.5-preview", "o1-preview", "gpt-4o-mini-2024-07-18-batch"})


@dataclass
class EmulatorConfig:
    """Everything that shapes the emulator. Times are emulated seconds (``groq_emulator.clock``)."""

    seed: int = 0
    time_scale: float = 1.0  # used only when ``clock`` is None: ScaledClock(time_scale)
    clock: Clock | None = None
    validating_seconds: float = 5.0
    processing_seconds: float = 30.0  # for the whole file ...
    per_line_seconds: float = 0.0  # ... plus this much per input line
    finalizing_seconds: float = 5.0
    cancel_seconds: float = 30.0  # "cancelling may take up to 10 minutes"
    window_seconds: int = DAY  # completion_window "24h"
    max_lines: int = 50_000
    max_batch_file_bytes: int = 200 * MB
    max_file_bytes: int = 512 * MB
    max_reported_errors: int = 1000  # cap on Batch.errors.data
    batch_list_default_limit: int = 20
    batch_list_max_limit: int = 100
    file_list_default_limit: int = 10_000
    file_list_max_limit: int = 10_000
    batch_file_expiry_seconds: int = 30 * DAY  # files with purpose batch expire by default
    output_expiry_seconds: int = 30 * DAY  # output and error files, unless output_expires_after says otherwise
    models: dict[str, ModelSpec] = field(default_factory=default_models)
    retired_models: frozenset[str] = DEFAULT_RETIRED_MODELS
    api_key: str | None = None  # set: only this bearer token is accepted; None: any non-empty one
    organization: str = "org-emulator"
    cache_min_tokens: int = 1024  # automatic prompt caching starts at this many prefix tokens ...
    cache_increment: int = 128  # ... and caches in steps of this many
    cache_ttl_seconds: float = 600.0
    # Uncertain facts (PROVIDERS_BATCH_API.md [U]), each answer available:
    duplicate_custom_ids: Literal["fail_batch", "reject_create"] = "fail_batch"
    custom_id_pattern: str | None = None  # OpenAI documents no limit; e.g. r"^[a-zA-Z0-9_-]{1,64}$"
    cancel_while_finalizing: bool = True
    cancel_terminal_status: int = 400  # 400, or 409 as an OpenAI-mimicking gateway answers (the SDK retries 409)
    cancelled_line_code: str = "batch_cancelled"  # error code of lines a cancel left unrun
    strict_unlisted_keywords: Literal["refuse", "ignore"] = "refuse"  # keywords OpenAI's strict list omits

    def spec(self, model: str) -> ModelSpec | None:
        """The model, if the account has it (retired ones it has no more)."""
        if model in self.retired_models:
            return None
        return self.models.get(model)


@dataclass
class Faults:
    """Faults to inject. Mutable: set fields in-process or via ``POST /_emulator/faults``.

    Counters (``*_next*``) count down as they fire.
    """

    rate_limit_next: int = 0  # next N API requests: 429 with retry-after and retry-after-ms
    rate_limit_retry_after: float = 0.05  # seconds; the SDK does not retry at all above 120
    server_error_next: int = 0  # next N API requests: server_error_status
    server_error_status: int = 500  # 500, 502, 503 ...
    error_rate: float = 0.0  # seeded probability that an API request gets a 429 or a 5xx
    slow_seconds: float = 0.0  # real seconds to sleep before answering any API request
    expire_next_batches: int = 0  # next N batches that pass validation end `expired` ...
    expire_after_fraction: float = 0.5  # ... after processing only this fraction of lines
    fail_next_batches: int = 0  # next N created batches fail validation
    token_limit_next_batches: int = 0  # next N created batches fail with token_limit_exceeded
    malformed_output_lines: int = 0  # corrupt this many lines of the next batch's output file
    missing_output_lines: int = 0  # leave this many lines out of the next finished batch's files

    def clear(self) -> None:
        reset_fields(self)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def update(self, changes: dict[str, Any]) -> None:
        """Apply a partial update, checking names and types. Raises ValueError."""
        staged = staged_numbers(self, changes)
        if "server_error_status" in staged and not 500 <= staged["server_error_status"] <= 599:
            raise ValueError("server_error_status must be a 5xx status")
        check_fractions(staged, "error_rate", "expire_after_fraction")
        for name, value in staged.items():
            setattr(self, name, value)
