"""The service's answers as frozen dataclasses. Money is `Decimal`, read from the exact decimal strings
(`usd_exact`, `cost_usd_exact`, ...), never from the float beside them: a batch's rows add up to its total to
the last digit. Times are aware datetimes in UTC. `raw` keeps the JSON object as received."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from functools import cached_property
from typing import Any, TypeVar

from llm_batch_client.decoding import decode, decode_member, exact_decimal, exact_money, key, raw_json

TERMINAL_STATUSES = frozenset({"completed", "failed", "cancelled"})
J = TypeVar("J")


class _FromJson:
    @classmethod
    def from_json(cls: type[J], data: Any) -> J:
        """Read the service's JSON (a parsed object) into this class; UnexpectedAnswer if it does not fit."""
        return decode(cls, data)


@dataclass(frozen=True)
class Counts(_FromJson):
    total: int
    succeeded: int
    failed: int  # for good: no pass will send them again
    pending: int  # not decided yet: waiting for, or in, their first attempt
    retrying: int = 0  # an attempt failed and a later pass will send them again

    @property
    def done(self) -> int:
        return self.succeeded + self.failed


@dataclass(frozen=True)
class Cost(_FromJson):
    usd: Decimal = key("usd_exact")
    input_tokens: int = key("input_tokens")
    output_tokens: int = key("output_tokens")


@dataclass(frozen=True)
class RequestCounts(_FromJson):
    total: int
    completed: int
    failed: int


@dataclass(frozen=True)
class ProviderBatch(_FromJson):
    chunk: int
    id: str | None
    status: str | None
    state: str
    lines: int
    request_counts: RequestCounts
    last_error: str | None


@dataclass(frozen=True)
class Pass(_FromJson):
    number: int
    kind: str  # primary | cascade | fallback | retry
    tier: int | None  # None: a retry on a model outside the cascade
    model: str
    status: str
    strict: bool
    items: int
    succeeded: int
    failed: int
    pending: int
    reused: int
    sent_because: dict[str, int]  # first, retry, escalated:<code>, raised_budget:max_tokens, resent:<code>:<n>
    request_counts: RequestCounts
    failure_reasons: dict[str, int]
    cost: Cost
    saved_usd: Decimal = key("saved_usd_exact", reader=exact_decimal, default=Decimal(0))
    provider_batches: tuple[ProviderBatch, ...] = ()
    provider: str | None = None  # the model's provider (groq, openai, anthropic) once the service says; else None


@dataclass(frozen=True)
class Tier(_FromJson):
    tier: int
    model: str
    params: dict[str, Any]
    passes: int
    items: int  # attempts made on this tier (an item sent twice counts twice)
    succeeded: int
    failed: int
    sent_because: dict[str, int]
    failure_reasons: dict[str, int]
    cost: Cost
    provider: str | None = None  # the model's provider (groq, openai, anthropic) once the service says; else None


@dataclass(frozen=True)
class Budget(_FromJson):
    budget_usd: Decimal
    reserved_usd: Decimal  # worst case of provider batches sent and not yet ingested
    spent_usd: Decimal
    waiting_items: int = 0  # items that wait for room in the budget (sent in a later round)


@dataclass(frozen=True)
class WebhookAttempt(_FromJson):
    number: int
    status_code: int | None
    error: str | None
    started_at: datetime
    finished_at: datetime


@dataclass(frozen=True)
class WebhookDelivery(_FromJson):
    url: str
    event: str
    webhook_id: str
    state: str  # pending | delivered | failed
    attempts: int
    last_status: int | None
    last_error: str | None
    next_attempt_at: datetime | None
    delivered_at: datetime | None
    created_at: datetime
    attempt_log: tuple[WebhookAttempt, ...] = ()  # newest first


@dataclass(frozen=True)
class Batch(_FromJson):
    id: str
    status: str  # queued | running | completed | failed | cancelled
    model: str
    fallback_model: str | None
    fallback: bool
    cascade: tuple[dict[str, Any], ...]
    strict: bool
    completion_window: str
    callback_url: str | None
    metadata: dict[str, Any]
    warnings: tuple[str, ...]
    counts: Counts
    cost: Cost
    budget: Budget | None
    reuse: bool
    failure_reasons: dict[str, int]
    tiers: tuple[Tier, ...]
    passes: tuple[Pass, ...]
    cancel_requested: bool
    created_at: datetime
    updated_at: datetime
    finished_at: datetime | None
    results_url: str
    # DELETE /batches/{id} (or the service's retention): when it was asked, and when its content was purged.
    deleted_at: datetime | None = None
    purged_at: datetime | None = None
    saved_usd: Decimal = key("saved_usd_exact", reader=exact_decimal, default=Decimal(0))
    webhook: WebhookDelivery | None = None
    raw: Mapping[str, Any] = raw_json()

    @property
    def finished(self) -> bool:
        return self.status in TERMINAL_STATUSES

    @property
    def purged(self) -> bool:
        """Its bodies, outputs and error texts are gone: only this summary remains."""
        return self.purged_at is not None

    @property
    def latest_run_since_pass(self) -> int:
        """The `since_pass` that selects what the latest run changed: 0 for the submission, the pass before the
        latest retry after a retry. `iter_results(batch.id, since_pass=batch.latest_run_since_pass)` is the
        import a webhook or a poll needs, not the whole batch again."""
        retries = [p.number for p in self.passes if p.kind == "retry"]
        return max(retries) - 1 if retries else 0


@dataclass(frozen=True)
class Usage(_FromJson):
    input_tokens: int
    output_tokens: int


@dataclass(frozen=True)
class ItemError(_FromJson):
    code: str  # json_validate_failed, max_tokens, schema_mismatch, ... (README: Failure codes)
    message: str | None


@dataclass(frozen=True)
class LineageStep(_FromJson):
    pass_number: int = key("pass")
    tier: int | None = key("tier")
    model: str = key("model")
    sent_because: str = key("sent_because")
    outcome: str = key("outcome")  # succeeded, pending, or the failure code
    cost_usd: Decimal = key("cost_usd_exact")
    reused_from: dict[str, Any] | None = None
    provider: str | None = None  # the model's provider (groq, openai, anthropic) once the service says; else None


@dataclass(frozen=True)
class ResultRow(_FromJson):
    """One item's merged result. `usage`, `error`, `lineage` and `updated_at` are read from `raw` when first
    used: an export reads tens of thousands of rows, most of whose lineage nobody looks at, and making those
    objects for every row cost as much as parsing the JSON."""

    custom_id: str
    status: str  # succeeded | failed, or pending | retrying while the batch runs
    metadata: dict[str, Any] | None  # the item's metadata as submitted
    model: str | None
    tier: int | None
    output: Any
    content: str | None
    attempts: int
    changed_in_pass: int  # 0: not decided yet
    pass_number: int | None = key("pass")
    cost_usd: Decimal = key("cost_usd_exact")  # every attempt on this item; rows add up to the batch's cost
    provider: str | None = None  # the model's provider (groq, openai, anthropic) once the service says; else None
    batch_id: str | None = None  # the batch the row was read from (set by iter_results and results_page)
    raw: Mapping[str, Any] = raw_json()

    @cached_property
    def usage(self) -> Usage | None:
        value: Usage | None = decode_member(self, "usage", Usage | None)
        return value

    @cached_property
    def error(self) -> ItemError | None:
        value: ItemError | None = decode_member(self, "error", ItemError | None)
        return value

    @cached_property
    def lineage(self) -> tuple[LineageStep, ...]:
        """Every attempt on the item, in order: the pass, tier, model, why it was sent, what came of it."""
        value: tuple[LineageStep, ...] = decode_member(self, "lineage", tuple[LineageStep, ...])
        return value

    @cached_property
    def updated_at(self) -> datetime:
        value: datetime = decode_member(self, "updated_at", datetime)
        return value


@dataclass(frozen=True)
class Attempt(_FromJson):
    tier: int | None
    model: str
    sent_because: str
    status: str
    provider_batch_id: str | None
    finish_reason: str | None
    output: Any
    content: str | None
    usage: Usage
    error: ItemError | None
    reused_from_attempt_id: int | None
    created_at: datetime
    finished_at: datetime | None
    pass_number: int = key("pass")
    cost_usd: Decimal = key("cost_usd_exact")
    provider: str | None = None  # the model's provider (groq, openai, anthropic) once the service says; else None


@dataclass(frozen=True)
class Item(_FromJson):
    custom_id: str
    status: str
    metadata: dict[str, Any] | None
    body: dict[str, Any]
    result: ResultRow
    attempts: tuple[Attempt, ...]
    raw: Mapping[str, Any] = raw_json()


@dataclass(frozen=True)
class Model(_FromJson):
    id: str
    usable: bool
    reason: str | None
    structured_output: str  # strict | best_effort | json_object
    input_usd_per_million: Decimal | None
    output_usd_per_million: Decimal | None
    max_completion_tokens: int
    context_window: int
    reasoning: bool
    lifecycle: str
    shutdown_date: str | None
    replacement: str | None


@dataclass(frozen=True)
class ModelCatalogue(_FromJson):
    models: tuple[Model, ...] = key("data")
    default_cascade: tuple[str, ...] = key("default_cascade")


@dataclass(frozen=True)
class TierEstimate(_FromJson):
    tier: int
    model: str
    items: float  # attempts expected on this tier: first sends, resends and raised budgets
    input_tokens: int
    output_tokens: int
    moves_on_share: float  # share of this tier's attempts expected to fail and move on
    output_tokens_per_attempt: float
    based_on: str  # history | catalogue
    history_attempts: int
    cost: Decimal = key("cost", reader=exact_money)
    upper_bound: Decimal = key("upper_bound", reader=exact_money)
    provider: str | None = None  # the model's provider (groq, openai, anthropic) once the service says; else None


@dataclass(frozen=True)
class BudgetBuys(_FromJson):
    """What an estimate's budget_usd is expected to buy."""

    items: float  # items expected to complete within the budget
    based_on: str  # history | catalogue | history and catalogue
    cost: Decimal = key("cost", reader=exact_money)  # the bill expected within the budget


@dataclass(frozen=True)
class Estimate(_FromJson):
    items: int
    reusable_items: int
    tiers: tuple[TierEstimate, ...]
    input_tokens_counted_with: str
    budget_usd: Decimal | None
    within_budget: bool | None
    cost: Decimal = key("cost", reader=exact_money)  # the expected bill
    floor: Decimal = key("floor", reader=exact_money)  # every item once on the first tier
    upper_bound: Decimal = key("upper_bound", reader=exact_money)  # the most the batch could cost
    budget_buys: BudgetBuys | None = None  # with a budget_usd: what it is expected to buy
    raw: Mapping[str, Any] = raw_json()


@dataclass(frozen=True)
class Page(_FromJson):
    """One page of a listing: `data` still raw, read by the caller into its own type."""

    data: tuple[Any, ...]
    has_more: bool
    next_cursor: str | None


@dataclass(frozen=True)
class ResultPage:
    """A page of result rows (results_page): `next_cursor` reads the next one, None after the last."""

    rows: tuple[ResultRow, ...]
    next_cursor: str | None
