"""Database tables. Every change here needs an Alembic migration (tests/db/test_migrations.py checks).

Money is integer picodollars (1e-12 USD) everywhere: batch prices have at most six decimals per million tokens,
so a token's price is a whole number of picodollars, every cost is exact and any sum of them is too.
Request bodies, outputs and metadata the service only passes on are kept as the JSON text they came as
(`*_json` columns): nothing parses them to store them, and an export can write them out as they are.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import JSON, BigInteger, Column, DateTime, Index, String, Text, UniqueConstraint, text
from sqlmodel import Field, SQLModel

from service.kit.clock import utcnow

DEFAULT_TENANT = "default"


class BatchStatus(StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"


TERMINAL_BATCH_STATUSES = frozenset({BatchStatus.COMPLETED, BatchStatus.FAILED, BatchStatus.CANCELLED})
OPEN_BATCH_STATUSES = (BatchStatus.QUEUED, BatchStatus.RUNNING)


class ItemStatus(StrEnum):
    PENDING = "pending"  # not decided yet: waiting for, or in, its first attempt
    RETRYING = "retrying"  # an attempt failed and a later pass will send it again (queued or in flight)
    SUCCEEDED = "succeeded"
    FAILED = "failed"  # final: no pass will send it again (a retry may)


class PassStatus(StrEnum):
    PLANNED = "planned"  # created; attempts and chunks not yet laid out
    RUNNING = "running"
    COMPLETED = "completed"
    CANCELLED = "cancelled"


class PassKind(StrEnum):
    PRIMARY = "primary"  # every item, on the cascade's first tier
    CASCADE = "cascade"  # items the cascade sent on (a later tier, or the same tier again)
    FALLBACK = "fallback"  # a pass of a batch made before the cascade (the second of its two fixed passes)
    RETRY = "retry"  # POST /batches/{id}/retry


class ChunkState(StrEnum):
    PENDING = "pending"  # nothing sent to the provider yet
    UPLOADING = "uploading"  # upload/create may have happened: reconcile before sending again
    SUBMITTED = "submitted"  # provider batch exists; polled until terminal
    DONE = "done"  # results ingested (or the chunk was abandoned with every attempt failed)


class AttemptStatus(StrEnum):
    PENDING = "pending"
    SUCCEEDED = "succeeded"
    FAILED = "failed"


def _json_column(nullable: bool = False) -> Any:
    return Field(default=None, sa_column=Column(JSON, nullable=nullable))


def _text(nullable: bool = True) -> Any:
    return Field(default=None, sa_column=Column(Text, nullable=nullable))


def _money(nullable: bool = False) -> Any:
    if nullable:
        return Field(default=None, sa_column=Column(BigInteger, nullable=True))
    return Field(default=0, sa_column=Column(BigInteger, nullable=False, default=0))


def _count() -> Any:
    return Field(default=0, sa_column=Column(BigInteger, nullable=False, default=0))


def _provider() -> Any:
    """The provider a row runs on; rows from before providers were named are Groq's."""
    return Field(default="groq", sa_column=Column(String(40), nullable=False, server_default="groq"))


def _timestamp(nullable: bool = True) -> Any:
    if nullable:
        return Field(default=None, sa_column=Column(DateTime(), nullable=True))
    return Field(default_factory=utcnow, sa_column=Column(DateTime(), nullable=False, default=utcnow))


class Batch(SQLModel, table=True):
    __tablename__ = "batches"
    __table_args__ = (
        # What a purge sweep looks for, among the batches not purged yet only: deleted ones, and finished ones by
        # when they finished (RETENTION_SECONDS). Both stay small next to the table; neither is read otherwise.
        Index(
            "ix_batches_deleted_unpurged",
            "deleted_at",
            sqlite_where=text("deleted_at IS NOT NULL AND purged_at IS NULL"),
            postgresql_where=text("deleted_at IS NOT NULL AND purged_at IS NULL"),
        ),
        Index(
            "ix_batches_finished_unpurged",
            "finished_at",
            sqlite_where=text("finished_at IS NOT NULL AND purged_at IS NULL"),
            postgresql_where=text("finished_at IS NOT NULL AND purged_at IS NULL"),
        ),
        Index("ix_batches_status_created", "status", "created_at"),
        Index("ix_batches_tenant_id", "tenant", "id"),
    )

    id: str = Field(primary_key=True, max_length=40)
    tenant: str = Field(default=DEFAULT_TENANT, max_length=80)
    status: str = Field(default=BatchStatus.QUEUED, max_length=16)
    # The ordered tiers [{"model": ..., "params": {...}}, ...]; tier 0 is where every item starts.
    tiers: list[dict[str, Any]] = Field(default_factory=list, sa_column=Column(JSON, nullable=False, default=list))
    strict_mode: bool = True  # send strict json_schema to the tiers whose model supports it
    params: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False, default=dict))
    output_schema: dict[str, Any] | None = _json_column(nullable=True)
    completion_window: str = Field(default="24h", max_length=8)
    callback_url: str | None = _text()
    user_metadata: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False, default=dict))
    warnings: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False, default=list))
    reuse: bool = False
    item_count: int = 0
    cancel_requested: bool = False
    # Kept as items and attempts change (never recomputed from them): items by status, tokens, cost.
    succeeded: int = 0
    failed: int = 0
    pending: int = 0
    retrying: int = 0
    input_tokens: int = _count()
    output_tokens: int = _count()
    cost_pico: int = _money()
    saved_pico: int = _money()  # what reused answers cost when they were first bought
    budget_pico: int | None = _money(nullable=True)
    reserved_pico: int = _money()  # the worst case of chunks sent and not yet ingested
    budget_waiting: int = 0  # items queued because their worst case did not fit yet (set at each round's lay-out)
    # sha256 of the output schema (canonical JSON): estimates look up the history of the same schema.
    schema_fingerprint: str | None = Field(default=None, max_length=64)
    lease_owner: str | None = Field(default=None, max_length=80)
    lease_expires_at: datetime | None = _timestamp()
    created_at: datetime = _timestamp(nullable=False)
    updated_at: datetime = _timestamp(nullable=False)
    finished_at: datetime | None = _timestamp()
    # DELETE /batches/{id}: from then on nothing of its content is served, and a worker purges it once no chunk
    # of it is at the provider. `purged_at`: its bodies, outputs, error texts, spool and provider files are gone;
    # the row stays as a tombstone (counts, cost, tiers, passes) for accounting. RETENTION_SECONDS purges too.
    deleted_at: datetime | None = _timestamp()
    purged_at: datetime | None = _timestamp()


class Item(SQLModel, table=True):
    __tablename__ = "items"
    __table_args__ = (
        UniqueConstraint("batch_id", "custom_id", name="uq_items_batch_custom_id"),
        Index("ix_items_batch_position", "batch_id", "position"),
        Index("ix_items_batch_status", "batch_id", "status"),
        # Only queued items: the index stays tiny, and an item's other writes never touch it. In position order,
        # so a later pass reads its queue a page at a time without sorting all of it for each page (what the
        # planner chose with statistics taken before the queue filled: quadratic in the queue's length).
        Index(
            "ix_items_batch_next_tier_position",
            "batch_id",
            "next_tier",
            "position",
            sqlite_where=text("next_tier IS NOT NULL"),
            postgresql_where=text("next_tier IS NOT NULL"),
        ),
    )

    id: int | None = Field(default=None, primary_key=True)
    batch_id: str = Field(foreign_key="batches.id", max_length=40)
    custom_id: str = Field(max_length=512)
    position: int
    metadata_json: str | None = _text()
    # The body sets its own response_format: its outputs are judged by it, not by the batch's.
    own_format: bool = False
    status: str = Field(default=ItemStatus.PENDING, max_length=16)
    # The attempt that decides the merged row (the latest finished one); None before any.
    deciding_attempt_id: int | None = Field(default=None)
    # Where the cascade sends it next, while it waits for that pass to be laid out.
    next_tier: int | None = None
    next_reason: str | None = Field(default=None, max_length=80)
    next_overrides_json: str | None = _text()
    attempt_count: int = 0
    cost_pico: int = _money()
    # A final failure that no attempt decided (cancelled or over budget before being sent).
    error_code: str | None = Field(default=None, max_length=80)
    error_message: str | None = _text()
    changed_pass: int = 0  # the pass number in which the merged row last changed (0: at submission)
    updated_at: datetime = _timestamp(nullable=False)


class ItemBody(SQLModel, table=True):
    """An item's request body: written once at submission and read when a pass lays the item out. Kept apart
    from the item, whose row every outcome rewrites: that row stays small (a few per page, not one)."""

    __tablename__ = "item_bodies"

    item_id: int = Field(foreign_key="items.id", primary_key=True)
    body_json: str = Field(sa_column=Column(Text, nullable=False))


class Pass(SQLModel, table=True):
    __tablename__ = "passes"
    __table_args__ = (UniqueConstraint("batch_id", "number", name="uq_passes_batch_number"),)

    id: int | None = Field(default=None, primary_key=True)
    batch_id: str = Field(foreign_key="batches.id", max_length=40, index=True)
    number: int
    kind: str = Field(max_length=16)
    tier: int | None = None  # the cascade tier; None for a retry on a model outside the cascade
    provider: str = _provider()
    model: str = Field(max_length=200)  # the provider's own model id
    params: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False, default=dict))
    # For a retry limited to some items; None means every currently failed item.
    selected_custom_ids: list[str] | None = _json_column(nullable=True)
    strict_mode: bool = False  # its lines carry strict json_schema
    status: str = Field(default=PassStatus.PLANNED, max_length=16)
    # Why its items were sent ({"first": 300} or {"json_validate_failed": 40, "max_tokens": 3}), set at lay-out.
    sent_because: dict[str, int] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False, default=dict))
    planned_items: int = 0  # items it takes, known when it is created
    items: int = 0
    succeeded: int = 0
    failed: int = 0
    reused: int = 0
    input_tokens: int = _count()
    output_tokens: int = _count()
    cost_pico: int = _money()
    saved_pico: int = _money()
    created_at: datetime = _timestamp(nullable=False)
    finished_at: datetime | None = _timestamp()


class FailureCount(SQLModel, table=True):
    """Failed attempts by code, per pass (`pass_id`), and the batch's final failures (`pass_id` 0)."""

    __tablename__ = "failure_counts"

    batch_id: str = Field(foreign_key="batches.id", max_length=40, primary_key=True)
    pass_id: int = Field(primary_key=True)
    code: str = Field(max_length=80, primary_key=True)
    count: int = 0


class Chunk(SQLModel, table=True):
    """One chunk of a pass: at most one provider batch ever exists for it. The table keeps its first name."""

    __tablename__ = "provider_batches"
    __table_args__ = (
        UniqueConstraint("pass_id", "chunk_index", name="uq_provider_batches_pass_chunk"),
        Index("ix_provider_batches_state_due", "state", "next_action_at"),
    )

    id: int | None = Field(default=None, primary_key=True)
    batch_id: str = Field(foreign_key="batches.id", max_length=40, index=True)
    pass_id: int = Field(foreign_key="passes.id")
    provider: str = _provider()  # its pass's: claims pass over the chunks of a provider that is paused
    chunk_index: int
    line_count: int = 0
    byte_count: int = _count()
    # The most it can cost (counted input tokens and every line's max_completion_tokens at the tier's prices),
    # reserved against the batch's budget before it is sent and released to the actual cost at ingest.
    worst_case_pico: int = _money()
    reserved: bool = False
    # sha256 of the JSONL file written when the pass was laid out: the uploader sends that file if it finds it
    # (same host) unchanged, and builds the lines again otherwise.
    spool_sha256: str | None = Field(default=None, max_length=64)
    state: str = Field(default=ChunkState.PENDING, max_length=16)
    input_file_id: str | None = Field(default=None, max_length=80)
    provider_batch_id: str | None = Field(default=None, max_length=80, unique=True)
    provider_status: str | None = Field(default=None, max_length=24)
    request_total: int = 0
    request_completed: int = 0
    request_failed: int = 0
    output_file_id: str | None = Field(default=None, max_length=80)
    error_file_id: str | None = Field(default=None, max_length=80)
    provider_errors: list[dict[str, Any]] | None = _json_column(nullable=True)
    next_action_at: datetime = _timestamp(nullable=False)
    retry_count: int = 0
    last_error: str | None = _text()
    lease_owner: str | None = Field(default=None, max_length=80)
    lease_expires_at: datetime | None = _timestamp()
    created_at: datetime = _timestamp(nullable=False)
    submitted_at: datetime | None = _timestamp()
    finished_at: datetime | None = _timestamp()
    # When the chunk's files on Groq (input, results, stray uploads) were deleted (PROVIDER_FILE_CLEANUP).
    files_deleted_at: datetime | None = _timestamp()
    # When the provider was asked to cancel the chunk's batch (its batch was cancelled).
    cancel_sent_at: datetime | None = _timestamp()
    # When a create was first asked for the chunk: before it, no provider batch of the chunk can exist.
    create_sent_at: datetime | None = _timestamp()


class Attempt(SQLModel, table=True):
    __tablename__ = "attempts"
    __table_args__ = (
        UniqueConstraint("item_id", "pass_id", name="uq_attempts_item_pass"),
        # Neither index holds the status: finishing an attempt (every attempt, once) then writes no index entry.
        Index("ix_attempts_chunk", "chunk_id"),
        Index("ix_attempts_request_hash", "request_hash"),
    )

    id: int | None = Field(default=None, primary_key=True)
    item_id: int = Field(foreign_key="items.id", index=True)
    pass_id: int = Field(foreign_key="passes.id", index=True)
    # None for an answer reused from an earlier attempt (nothing was sent).
    chunk_id: int | None = Field(default=None, foreign_key="provider_batches.id")
    tier: int | None = None
    sent_because: str = Field(default="first", max_length=80)
    overrides_json: str | None = _text()  # what the cascade changed in this attempt's body
    # The line's own max_completion_tokens and reasoning_effort (what a raise doubles and lowers).
    max_tokens_sent: int | None = None
    reasoning_effort_sent: str | None = Field(default=None, max_length=16)
    # sha256 of the tenant and the exact request body sent (model included): what reuse looks up.
    request_hash: str | None = Field(default=None, max_length=64)
    reused_from_attempt_id: int | None = None
    status: str = Field(default=AttemptStatus.PENDING, max_length=16)
    error_code: str | None = Field(default=None, max_length=80)
    error_message: str | None = _text()
    content: str | None = _text()
    output_json: str | None = _text()
    finish_reason: str | None = Field(default=None, max_length=32)
    input_tokens: int = 0  # every prompt token billed
    output_tokens: int = 0
    # Of the prompt tokens: those read from the provider's cache, and those written to it (priced apart).
    cached_input_tokens: int = _count()
    cache_write_tokens: int = _count()
    cost_pico: int = _money()
    provider_request_id: str | None = Field(default=None, max_length=80)
    created_at: datetime = _timestamp(nullable=False)
    finished_at: datetime | None = _timestamp()


class ModelAvailability(SQLModel, table=True):
    """What the service knows of a model beyond the catalogue: Groq's model list left it out, or a request for it
    answered model_decommissioned / model_not_found. Shared by every replica; submissions naming it are refused."""

    __tablename__ = "model_availability"

    model: str = Field(primary_key=True, max_length=200)
    available: bool = True
    reason: str | None = _text()
    updated_at: datetime = _timestamp(nullable=False)


class WebhookState(StrEnum):
    PENDING = "pending"  # waiting for its next attempt (or being attempted: see the lease)
    DELIVERED = "delivered"  # the receiver answered 2xx
    FAILED = "failed"  # gave up after WEBHOOK_MAX_ATTEMPTS; POST .../webhook/redeliver queues it again


class WebhookDelivery(SQLModel, table=True):
    """One event for one batch's callback_url, created in the transaction that made the batch terminal."""

    __tablename__ = "webhook_deliveries"
    __table_args__ = (Index("ix_webhook_deliveries_state_due", "state", "next_attempt_at"),)

    id: int | None = Field(default=None, primary_key=True)
    message_id: str = Field(max_length=40, unique=True)  # the webhook-id header, the same on every attempt
    batch_id: str = Field(foreign_key="batches.id", max_length=40, index=True)
    event: str = Field(max_length=32)
    url: str = Field(sa_column=Column(Text, nullable=False))
    payload: str = Field(sa_column=Column(Text, nullable=False))  # the exact body sent on every attempt
    state: str = Field(default=WebhookState.PENDING, max_length=16)
    attempts: int = 0
    # Attempts since it was last queued (a redelivery starts a new schedule): drives back-off and giving up.
    schedule_attempts: int = 0
    last_status: int | None = None
    last_error: str | None = _text()
    next_attempt_at: datetime | None = _timestamp()
    last_attempt_at: datetime | None = _timestamp()
    delivered_at: datetime | None = _timestamp()
    lease_owner: str | None = Field(default=None, max_length=80)
    lease_expires_at: datetime | None = _timestamp()
    created_at: datetime = _timestamp(nullable=False)


class WebhookAttempt(SQLModel, table=True):
    __tablename__ = "webhook_attempts"
    __table_args__ = (UniqueConstraint("delivery_id", "number", name="uq_webhook_attempts_delivery_number"),)

    id: int | None = Field(default=None, primary_key=True)
    delivery_id: int = Field(foreign_key="webhook_deliveries.id", index=True)
    number: int
    status_code: int | None = None
    error: str | None = _text()
    started_at: datetime = _timestamp(nullable=False)
    finished_at: datetime = _timestamp(nullable=False)


class IdempotencyState(StrEnum):
    IN_PROGRESS = "in_progress"
    COMPLETED = "completed"


class IdempotencyKey(SQLModel, table=True):
    """An Idempotency-Key of one tenant and the answer it got. The primary key is what makes one key one request
    across replicas; the answer is stored in the transaction that did the work."""

    __tablename__ = "idempotency_keys"
    __table_args__ = (Index("ix_idempotency_keys_expires_at", "expires_at"),)

    tenant: str = Field(default=DEFAULT_TENANT, primary_key=True, max_length=80)
    key: str = Field(primary_key=True, max_length=255)
    request_hash: str = Field(max_length=64)  # sha256 of method, path, query and body
    method: str = Field(max_length=8)
    path: str = Field(sa_column=Column(Text, nullable=False))
    state: str = Field(default=IdempotencyState.IN_PROGRESS, max_length=16)
    owner: str = Field(max_length=40)  # the request that holds it while in progress
    locked_until: datetime = _timestamp(nullable=False)  # a request that died holding it frees it then
    response_status: int | None = None
    response_body: str | None = _text()
    response_location: str | None = _text()
    created_at: datetime = _timestamp(nullable=False)
    expires_at: datetime = _timestamp(nullable=False)


class WorkerHeartbeat(SQLModel, table=True):
    """One row per running worker process, renewed while it lives and deleted when it stops cleanly.

    /readyz counts the rows seen recently, so an API-only replica can tell whether any worker is alive."""

    __tablename__ = "worker_heartbeats"

    worker_id: str = Field(primary_key=True, max_length=80)
    hostname: str = Field(max_length=255)
    pid: int
    loops: str = Field(default="", max_length=255)
    started_at: datetime = _timestamp(nullable=False)
    last_seen_at: datetime = _timestamp(nullable=False)


class ProviderHealthRecord(SQLModel, table=True):
    """What the workers last saw of the provider, shared by every replica: the global back-off (circuit)
    that keeps one outage from being hammered by every chunk, and what /readyz reports."""

    __tablename__ = "provider_health"

    provider: str = Field(primary_key=True, max_length=40)
    consecutive_failures: int = 0
    last_error: str | None = _text()
    # The row whose step failed last (e.g. "chunk 12"): the same row failing again does not lengthen the pause.
    last_failure_source: str | None = Field(default=None, max_length=80)
    last_error_at: datetime | None = _timestamp()
    last_success_at: datetime | None = _timestamp()
    backoff_until: datetime | None = _timestamp()
    # A provider whose batches carry no tag of ours (Anthropic) has one chunk at a time whose create is unresolved.
    sending_chunk_id: int | None = None
