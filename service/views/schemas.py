"""The bodies the service answers with: the API's responses, the webhook events' data, the status page's input."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field


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
    webhook: WebhookOut | None = Field(
        default=None, description="The last webhook event to callback_url (null without a callback_url or before it)."
    )


class WebhookAttemptOut(BaseModel):
    number: int
    status_code: int | None
    error: str | None
    started_at: datetime
    finished_at: datetime


class WebhookOut(BaseModel):
    url: str
    event: str = Field(description="batch.completed | batch.failed | batch.cancelled")
    webhook_id: str = Field(description="The webhook-id header: the same on every attempt of this event.")
    state: str = Field(description="pending | delivered | failed (gave up; POST .../webhook/redeliver sends again)")
    attempts: int
    last_status: int | None
    last_error: str | None
    next_attempt_at: datetime | None
    delivered_at: datetime | None
    created_at: datetime
    attempt_log: list[WebhookAttemptOut] = Field(description="The latest attempts, newest first.")


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
    provider: str = Field(description="ok | degraded (recent provider errors, as any worker saw them)")
    provider_last_error: str | None
    provider_backoff_until: datetime | None = Field(
        default=None, description="While set, every worker pauses its calls to Groq until then (an outage)."
    )
    workers: int = Field(default=0, description="Worker processes that sent a heartbeat within one lease.")
