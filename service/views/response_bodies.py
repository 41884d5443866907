"""The bodies the service answers with: the API's responses, the webhook events' data, the status page's input.

Money comes twice: `usd` (a JSON number, for reading) and `usd_exact` (a decimal string, exact: the rows of a
batch add up to its total to the last digit). Both come from integer picodollars.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, ConfigDict, Field


def _as_utc(value: datetime) -> datetime:
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


# The database keeps naive UTC; every answer says so (`...Z`), so that no caller has to guess.
UtcDateTime = Annotated[datetime, AfterValidator(_as_utc)]


class Counts(BaseModel):
    total: int
    succeeded: int
    failed: int = Field(description="Failed for good (no pass will send them again).")
    pending: int = Field(description="Not decided yet: waiting for, or in, their first attempt.")
    retrying: int = Field(
        default=0, description="An attempt failed and a later pass will send them again (queued or in flight)."
    )


class Cost(BaseModel):
    usd: float
    usd_exact: str = Field(description="The same amount as an exact decimal string.")
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
    kind: str = Field(description="primary | cascade (the cascade sent these items on) | fallback | retry")
    tier: int | None = Field(description="The cascade tier; null for a retry on a model outside the cascade.")
    provider: str = Field(description="The provider it ran on: groq, openai, anthropic or a PROVIDERS endpoint.")
    model: str = Field(description="The provider's model id.")
    status: str
    strict: bool = Field(description="Its lines asked for strict structured output.")
    items: int = Field(description="Items it holds (known when it is created; laid out soon after).")
    succeeded: int
    failed: int
    pending: int
    reused: int = Field(description="Items that took an identical earlier request's answer, at no cost.")
    sent_because: dict[str, int] = Field(
        description="Why its items were sent: first, retry, escalated:<code>, raised_budget:max_tokens, "
        "resent:<code>:<n>."
    )
    request_counts: RequestCounts
    failure_reasons: dict[str, int] = Field(description="Failed attempts of this pass by code.")
    cost: Cost
    saved_usd: float = Field(description="What its reused answers cost when they were first bought.")
    saved_usd_exact: str = Field(description="The same, exact.")
    provider_batches: list[ProviderBatchOut]


class TierOut(BaseModel):
    tier: int
    provider: str
    model: str = Field(description="The provider's model id.")
    params: dict[str, Any]
    passes: int
    items: int = Field(description="Attempts made on this tier (an item sent twice counts twice).")
    succeeded: int
    failed: int
    sent_because: dict[str, int]
    failure_reasons: dict[str, int]
    cost: Cost


class BudgetOut(BaseModel):
    budget_usd: str = Field(description="The most the batch may cost (exact).")
    reserved_usd: str = Field(description="The worst case of provider batches sent and not yet ingested.")
    spent_usd: str = Field(description="What the batch has cost so far (the bill).")
    waiting_items: int = Field(
        description="Items that did not fit what was left of the budget while reservations were out: they wait "
        "for the next round (a pass per round), and fail with budget_exceeded only when nothing in flight can "
        "free room for them."
    )


class BatchOut(BaseModel):
    id: str
    status: str
    model: str = Field(description="The first tier's model, as named: bare for Groq, provider:model otherwise.")
    fallback_model: str | None = Field(description="The second tier's model (null for a one-tier batch).")
    fallback: bool = Field(description="The batch has more than one tier.")
    cascade: list[dict[str, Any]] = Field(
        description="The tiers: [{model, params}] with the model as named (bare for Groq, provider:model "
        "otherwise), cheapest first."
    )
    strict: bool
    completion_window: str
    callback_url: str | None
    metadata: dict[str, Any]
    warnings: list[str] = Field(description="Said at submission, for instance that a model is deprecated.")
    counts: Counts
    cost: Cost
    saved_usd: float = Field(description="What reused answers cost when they were first bought.")
    saved_usd_exact: str = Field(description="The same, exact.")
    budget: BudgetOut | None
    reuse: bool
    failure_reasons: dict[str, int] = Field(description="Final failures by code.")
    tiers: list[TierOut]
    passes: list[PassOut]
    cancel_requested: bool
    created_at: UtcDateTime
    updated_at: UtcDateTime
    finished_at: UtcDateTime | None
    deleted_at: UtcDateTime | None = Field(
        default=None,
        description="When DELETE /batches/{id} was asked (or RETENTION_SECONDS' purge began): its results and "
        "items answer 410 since.",
    )
    purged_at: UtcDateTime | None = Field(
        default=None,
        description="When its bodies, outputs, error texts, spool and provider files were purged (by DELETE, or "
        "RETENTION_SECONDS after it finished); this summary is the tombstone that stays.",
    )
    results_url: str
    webhook: WebhookOut | None = Field(
        default=None, description="The last webhook event to callback_url (null without a callback_url or before it)."
    )


class WebhookAttemptOut(BaseModel):
    number: int
    status_code: int | None
    error: str | None
    started_at: UtcDateTime
    finished_at: UtcDateTime


class WebhookOut(BaseModel):
    url: str
    event: str = Field(description="batch.completed | batch.failed | batch.cancelled")
    webhook_id: str = Field(description="The webhook-id header: the same on every attempt of this event.")
    state: str = Field(description="pending | delivered | failed (gave up; POST .../webhook/redeliver sends again)")
    attempts: int
    last_status: int | None
    last_error: str | None
    next_attempt_at: UtcDateTime | None
    delivered_at: UtcDateTime | None
    created_at: UtcDateTime
    attempt_log: list[WebhookAttemptOut] = Field(description="The latest attempts, newest first.")


class BatchPage(BaseModel):
    data: list[BatchOut]
    has_more: bool
    next_cursor: str | None


class Usage(BaseModel):
    input_tokens: int = Field(description="Every prompt token the provider billed.")
    output_tokens: int
    cached_input_tokens: int = Field(default=0, description="Of the prompt tokens, those read from its cache.")
    cache_write_tokens: int = Field(default=0, description="Of the prompt tokens, those written to its cache.")


class ErrorOut(BaseModel):
    code: str
    message: str | None


class LineageStep(BaseModel):
    pass_: int = Field(alias="pass", serialization_alias="pass")
    tier: int | None
    provider: str
    model: str
    sent_because: str
    outcome: str = Field(description="succeeded, pending, or the failure code")
    cost_usd_exact: str
    reused_from: dict[str, Any] | None = Field(
        default=None, description="The earlier attempt whose answer this one took: {batch_id, attempt_id}."
    )

    model_config = ConfigDict(populate_by_name=True)


class ResultRow(BaseModel):
    custom_id: str
    status: str = Field(description="succeeded | failed, or pending | retrying while the batch runs")
    metadata: dict[str, Any] | None = Field(description="The item's metadata as submitted.")
    provider: str | None = Field(description="The provider of the attempt that decided the row.")
    model: str | None = Field(description="That provider's model id.")
    pass_: int | None = Field(alias="pass", serialization_alias="pass")
    tier: int | None
    output: Any | None
    content: str | None
    usage: Usage | None
    cost_usd: float = Field(description="What every attempt on this item cost, in USD.")
    cost_usd_exact: str = Field(description="The same, exact: the rows add up to the batch's cost.usd_exact.")
    attempts: int
    error: ErrorOut | None
    lineage: list[LineageStep] = Field(description="Every attempt, oldest first; the last one decides the row.")
    changed_in_pass: int = Field(description="The pass in which this row last changed (0: not yet decided).")
    updated_at: UtcDateTime

    model_config = ConfigDict(populate_by_name=True)


class ResultPage(BaseModel):
    data: list[ResultRow]
    has_more: bool
    next_cursor: str | None


class AttemptOut(BaseModel):
    pass_: int = Field(alias="pass", serialization_alias="pass")
    tier: int | None
    provider: str
    model: str
    sent_because: str
    status: str
    provider_batch_id: str | None
    finish_reason: str | None
    output: Any | None
    content: str | None
    usage: Usage
    cost_usd: float
    cost_usd_exact: str
    error: ErrorOut | None
    reused_from_attempt_id: int | None
    created_at: UtcDateTime
    finished_at: UtcDateTime | None

    model_config = ConfigDict(populate_by_name=True)


class ItemOut(BaseModel):
    custom_id: str
    status: str
    metadata: dict[str, Any] | None
    body: dict[str, Any]
    result: ResultRow
    attempts: list[AttemptOut]


class ModelOut(BaseModel):
    id: str = Field(description="How a tier names it: bare for Groq, provider:model otherwise.")
    provider: str
    model: str = Field(description="The provider's model id.")
    usable: bool
    reason: str | None = Field(description="Why it cannot be used (decommissioned, not on the account...).")
    structured_output: str = Field(description="strict | best_effort | json_object")
    input_usd_per_million: str | None
    output_usd_per_million: str | None
    cached_input_usd_per_million: str | None = Field(description="A prompt token read from the cache (null: input).")
    cache_write_usd_per_million: str | None = Field(description="A prompt token written to the cache (null: input).")
    max_completion_tokens: int
    context_window: int
    reasoning: bool
    lifecycle: str
    shutdown_date: str | None
    replacement: str | None


class ModelList(BaseModel):
    data: list[ModelOut]
    default_cascade: list[str]


class Health(BaseModel):
    status: str
    provider: str = Field(description="emulator (no provider key at all: every provider is emulated) | providers")
    providers: dict[str, str] = Field(
        default_factory=dict,
        description="Each provider: emulator | configured | the variable that is not set (its tiers are refused).",
    )
    auth: str
    warnings: list[str]
    unusable_models: dict[str, str] = Field(
        default_factory=dict, description="Models of the catalogue that cannot be used now, and why."
    )


class ProviderState(BaseModel):
    state: str = Field(description="ok | degraded (recent errors, as any worker saw them)")
    last_error: str | None
    backoff_until: UtcDateTime | None = Field(
        default=None, description="While set, every worker pauses its calls to this provider until then."
    )


class Readiness(BaseModel):
    status: str
    database: str
    provider: str = Field(description="ok | degraded: degraded when any provider is")
    provider_last_error: str | None = Field(description="The last error of a degraded provider.")
    provider_backoff_until: UtcDateTime | None = Field(
        default=None, description="The latest pause of a provider whose work every worker has paused (an outage)."
    )
    providers: dict[str, ProviderState] = Field(
        default_factory=dict, description="Each provider on its own: an outage of one never pauses another."
    )
    workers: int = Field(default=0, description="Worker processes that sent a heartbeat within one lease.")


class Money(BaseModel):
    usd: float
    usd_exact: str = Field(description="The same amount as an exact decimal string.")


class TierEstimate(BaseModel):
    tier: int
    model: str
    items: float = Field(description="Attempts expected on this tier: its first sends, resends and raised budgets.")
    input_tokens: int
    output_tokens: int
    cost: Money
    upper_bound: Money = Field(
        description="Every item on this tier at its full max_completion_tokens, with one raised-budget resend."
    )
    moves_on_share: float = Field(description="Share of this tier's attempts expected to fail and move on.")
    output_tokens_per_attempt: float
    based_on: str = Field(description="history (past attempts of this tenant) | catalogue (priors, no history)")
    history_attempts: int = Field(description="How many past attempts the history figures rest on.")


class BudgetForecastOut(BaseModel):
    items: float = Field(
        description="Items the budget is expected to complete: all that succeed when the expected bill fits it, "
        "else the share its money pays for (items reuse answers cost nothing)."
    )
    cost: Money = Field(description="The bill expected within the budget (the expected bill, at most the budget).")
    based_on: str = Field(description="history | catalogue | history and catalogue: what the figures rest on.")


class Estimate(BaseModel):
    items: int
    reusable_items: int = Field(description="Items reuse would answer from an identical earlier request, at no cost.")
    tiers: list[TierEstimate]
    cost: Money = Field(description="The expected bill.")
    floor: Money = Field(description="Every item once on the first tier (the least a run can cost).")
    upper_bound: Money = Field(description="The most the batch could cost (the sum of the tiers' upper bounds).")
    input_tokens_counted_with: str = Field(
        description="How input tokens were counted: a model's real tokenizer, or a byte ratio when none is known."
    )
    budget_usd: str | None
    within_budget: bool | None = Field(description="Whether the expected bill fits budget_usd (null: no budget).")
    budget_buys: BudgetForecastOut | None = Field(
        default=None, description="What budget_usd is expected to buy (null: no budget)."
    )
