"""Request and response bodies of the HTTP API (the contract in DESIGN.md)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class ItemIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    custom_id: str = Field(min_length=1, max_length=512)
    body: dict[str, Any] = Field(description="A chat-completions body without `model`.")


class BatchCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    items: list[ItemIn] = Field(min_length=1)
    params: dict[str, Any] = Field(default_factory=dict, description="Merged under every item's body.")
    model: str | None = Field(default=None, description="Pass-1 model; PRIMARY_MODEL when omitted.")
    fallback_model: str | None = Field(default=None, description="Pass-2 model; FALLBACK_MODEL when omitted.")
    fallback_params: dict[str, Any] = Field(
        default_factory=dict, description="Merged over each body in the fallback pass."
    )
    output_schema: dict[str, Any] | None = Field(default=None, description="JSON Schema the output must meet.")
    completion_window: str = Field(default="24h", pattern=r"^\d+[hd]$")
    callback_url: str | None = None
    metadata: dict[str, Any] = Field(default_factory=dict)


class RetryRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    model: str | None = None
    params: dict[str, Any] | None = None
    custom_ids: list[str] | None = Field(default=None, min_length=1)


class Counts(BaseModel):
    total: int
    succeeded: int
    failed: int
    pending: int


class Cost(BaseModel):
    usd: float
    input_tokens: int
    output_tokens: int


class RequestCounts(BaseModel):
    total: int
    completed: int
    failed: int


class ProviderBatchOut(BaseModel):
    chunk: int
    id: str | None
    status: str | None
    state: str
    lines: int
    request_counts: RequestCounts
    last_error: str | None


class PassOut(BaseModel):
    number: int
    kind: str
    model: str
    status: str
    items: int
    succeeded: int
    failed: int
    pending: int
    request_counts: RequestCounts
    failure_reasons: dict[str, int]
    cost: Cost
    provider_batches: list[ProviderBatchOut]


class BatchOut(BaseModel):
    id: str
    status: str
    model: str
    fallback_model: str
    fallback: bool
    completion_window: str
    callback_url: str | None
    metadata: dict[str, Any]
    counts: Counts
    cost: Cost
    failure_reasons: dict[str, int]
    passes: list[PassOut]
    cancel_requested: bool
    created_at: datetime
    updated_at: datetime
    finished_at: datetime | None
    results_url: str


class BatchPage(BaseModel):
    data: list[BatchOut]
    has_more: bool
    next_cursor: str | None


class Usage(BaseModel):
    input_tokens: int
    output_tokens: int


class ErrorOut(BaseModel):
    code: str
    message: str | None


class ResultRow(BaseModel):
    custom_id: str
    status: str = Field(description="succeeded | failed (pending while the batch runs)")
    model: str | None
    pass_: int | None = Field(alias="pass", serialization_alias="pass")
    output: Any | None
    content: str | None
    usage: Usage | None
    cost_usd: float = Field(description="What every attempt on this item cost, in USD.")
    attempts: int
    error: ErrorOut | None

    model_config = ConfigDict(populate_by_name=True)


class ResultPage(BaseModel):
    data: list[ResultRow]
    has_more: bool
    next_cursor: str | None


class AttemptOut(BaseModel):
    pass_: int = Field(alias="pass", serialization_alias="pass")
    model: str
    status: str
    provider_batch_id: str | None
    finish_reason: str | None
    output: Any | None
    content: str | None
    usage: Usage
    cost_usd: float
    error: ErrorOut | None
    created_at: datetime
    finished_at: datetime | None

    model_config = ConfigDict(populate_by_name=True)


class ItemOut(BaseModel):
    custom_id: str
    status: str
    body: dict[str, Any]
    result: ResultRow
    attempts: list[AttemptOut]


class Health(BaseModel):
    status: str
    provider: str
    auth: str
    warnings: list[str]


class Readiness(BaseModel):
    status: str
    database: str
    provider: str
    provider_last_error: str | None
