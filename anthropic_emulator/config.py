"""Configuration of the Anthropic emulator: timings, limits, the model catalogue, uncertain facts, faults."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from groq_emulator.clock import Clock
from groq_emulator.knobs import check_fractions, reset_fields, staged_numbers

DAY = 86_400
MB = 1024 * 1024


@dataclass(frozen=True)
class ModelSpec:
    """One model: its catalogue entry (``GET /v1/models``) and how its answers go.

    Each request draws one outcome: ``refusal`` (``stop_reason: "refusal"`` with ``stop_details``), ``length``
    (a long answer of ``long_tokens``, which a small ``max_tokens`` cuts off), or a normal answer.
    """

    id: str  # the dated id; requests may name it or the alias it is listed under
    display_name: str
    created_at: str  # RFC 3339
    line: str | None = None
    max_input_tokens: int = 200_000
    max_tokens: int = 64_000
    structured_outputs: bool = True
    min_cache_tokens: int = 1024  # shorter prefixes are not cached
    refusal: float = 0.002
    length: float = 0.005
    long_tokens: tuple[int, int] = (2_500, 3_600)
    lifecycle: str = "active"  # active | deprecated | retired
    deprecated_at: str | None = None
    retires_at: str | None = None


def default_models() -> dict[str, ModelSpec]:
    """By alias. ``claude-3-5-haiku-latest`` is retired: listed only with ``lifecycle=retired``, and a request
    naming it errors with not_found_error."""
    return {
        "claude-haiku-4-5": ModelSpec(
            id="claude-haiku-4-5-20251001", display_name="Claude Haiku 4.5", created_at="2025-10-15T00:00:00Z",
            line="haiku", min_cache_tokens=4096, refusal=0.003, length=0.01,
        ),
        "claude-sonnet-4-5": ModelSpec(
            id="claude-sonnet-4-5-20250929", display_name="Claude Sonnet 4.5", created_at="2025-09-29T00:00:00Z",
            line="sonnet", min_cache_tokens=1024, refusal=0.002, length=0.004,
        ),
        "claude-3-5-haiku-latest": ModelSpec(
            id="claude-3-5-haiku-20241022", display_name="Claude Haiku 3.5", created_at="2024-10-22T00:00:00Z",
            line="haiku", max_tokens=8_192, structured_outputs=False, min_cache_tokens=2048, lifecycle="retired",
            deprecated_at="2025-10-28T00:00:00Z", retires_at="2026-02-19T00:00:00Z",
        ),
    }  # fmt: skip


@dataclass
class EmulatorConfig:
    """Everything that shapes the emulator. Times are emulated seconds (``groq_emulator.clock``)."""

    seed: int = 0
    time_scale: float = 1.0  # used only when ``clock`` is None: ScaledClock(time_scale)
    clock: Clock | None = None
    processing_seconds: float = 60.0  # for the whole batch ...
    per_request_seconds: float = 0.0  # ... plus this much per request
    cancel_seconds: float = 30.0  # canceling -> ended
    window_seconds: int = DAY  # expires_at = created_at + 24 h
    results_seconds: int = 29 * DAY  # results are archived this long after creation
    max_requests: int = 100_000
    max_bytes: int = 256 * MB
    list_default_limit: int = 20
    list_max_limit: int = 1000
    models: dict[str, ModelSpec] = field(default_factory=default_models)
    api_key: str | None = None  # set: only this key (x-api-key or bearer) is accepted; None: any non-empty one
    api_versions: tuple[str, ...] = ("2023-06-01", "2026-10-21")  # the SDK 2.17 sends 2026-10-21
    chars_per_token: float = 3.5  # no offline Anthropic vocabulary: tokens = ceil(characters / 3.5)
    cache_hit_rate: float = 1.0  # batch cache hits are best effort (30-98% observed); 1.0: always when warm
    # Uncertain facts (PROVIDERS_BATCH_API.md [U]), each answer available:
    cancel_ended_is_error: bool = True  # cancelling an ended batch: 400 (True) or the batch unchanged (False)

    def spec(self, model: str) -> ModelSpec | None:
        """The model a request may use (by alias or id), or None: unknown or retired."""
        found = self.lookup(model)
        return found if found is not None and found.lifecycle != "retired" else None

    def lookup(self, model: str) -> ModelSpec | None:
        """Any catalogue entry, retired ones included."""
        if model in self.models:
            return self.models[model]
        return next((spec for spec in self.models.values() if spec.id == model), None)


@dataclass
class Faults:
    """Faults to inject. Mutable: set fields in-process or via ``POST /_emulator/faults``.

    Counters (``*_next*``) count down as they fire.
    """

    rate_limit_next: int = 0  # next N API requests: 429 rate_limit_error with retry-after
    rate_limit_retry_after: float = 0.05  # seconds
    overloaded_next: int = 0  # next N API requests: 529 overloaded_error with retry-after
    overloaded_retry_after: float = 0.05
    server_error_next: int = 0  # next N API requests: server_error_status (500 api_error, 504 timeout_error)
    server_error_status: int = 500
    error_rate: float = 0.0  # seeded probability that an API request gets a 429, 529 or 5xx
    slow_seconds: float = 0.0  # real seconds to sleep before answering any API request
    expire_next_batches: int = 0  # next N batches end with their unprocessed requests `expired` ...
    expire_after_fraction: float = 0.5  # ... after processing only this fraction of them
    errored_results_next: int = 0  # next N processed requests: errored with api_error (retryable)
    overloaded_results_next: int = 0  # next N processed requests: errored with overloaded_error
    malformed_result_lines: int = 0  # corrupt this many lines of the next batch's results
    missing_result_lines: int = 0  # leave this many lines out of the next batch's results

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
