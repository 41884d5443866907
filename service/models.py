"""Database tables. Every change here needs an Alembic migration (tests/db/test_migrations.py checks)."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import JSON, Column, DateTime, Index, Text, UniqueConstraint
from sqlmodel import Field, SQLModel

from service.kit.clock import utcnow


class BatchStatus(StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"


TERMINAL_BATCH_STATUSES = frozenset({BatchStatus.COMPLETED, BatchStatus.FAILED, BatchStatus.CANCELLED})
OPEN_BATCH_STATUSES = (BatchStatus.QUEUED, BatchStatus.RUNNING)


class ItemStatus(StrEnum):
    PENDING = "pending"
    SUCCEEDED = "succeeded"
    FAILED = "failed"


class PassStatus(StrEnum):
    PLANNED = "planned"  # created; attempts and chunks not yet laid out
    RUNNING = "running"
    COMPLETED = "completed"
    CANCELLED = "cancelled"


class PassKind(StrEnum):
    PRIMARY = "primary"
    FALLBACK = "fallback"
    RETRY = "retry"


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


def _timestamp(nullable: bool = True) -> Any:
    if nullable:
        return Field(default=None, sa_column=Column(DateTime(), nullable=True))
    return Field(default_factory=utcnow, sa_column=Column(DateTime(), nullable=False, default=utcnow))


class Batch(SQLModel, table=True):
    __tablename__ = "batches"
    __table_args__ = (Index("ix_batches_status_created", "status", "created_at"),)

    id: str = Field(primary_key=True, max_length=40)
    status: str = Field(default=BatchStatus.QUEUED, max_length=16)
    model: str = Field(max_length=200)
    fallback_model: str = Field(max_length=200)
    fallback_enabled: bool = False
    params: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False, default=dict))
    fallback_params: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False, default=dict))
    output_schema: dict[str, Any] | None = _json_column(nullable=True)
    completion_window: str = Field(default="24h", max_length=8)
    callback_url: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
    user_metadata: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False, default=dict))
    item_count: int = 0
    cancel_requested: bool = False
    lease_owner: str | None = Field(default=None, max_length=80)
    lease_expires_at: datetime | None = _timestamp()
    created_at: datetime = _timestamp(nullable=False)
    updated_at: datetime = _timestamp(nullable=False)
    finished_at: datetime | None = _timestamp()


class Item(SQLModel, table=True):
    __tablename__ = "items"
    __table_args__ = (
        UniqueConstraint("batch_id", "custom_id", name="uq_items_batch_custom_id"),
        Index("ix_items_batch_position", "batch_id", "position"),
        Index("ix_items_batch_status", "batch_id", "status"),
    )

    id: int | None = Field(default=None, primary_key=True)
    batch_id: str = Field(foreign_key="batches.id", max_length=40)
    custom_id: str = Field(max_length=512)
    position: int
    body: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False, default=dict))
    status: str = Field(default=ItemStatus.PENDING, max_length=16)
    # The attempt that decides the merged row (the latest finished one).
    deciding_attempt_id: int | None = Field(default=None)


class Pass(SQLModel, table=True):
    __tablename__ = "passes"
    __table_args__ = (UniqueConstraint("batch_id", "number", name="uq_passes_batch_number"),)

    id: int | None = Field(default=None, primary_key=True)
    batch_id: str = Field(foreign_key="batches.id", max_length=40, index=True)
    number: int
    kind: str = Field(max_length=16)
    model: str = Field(max_length=200)
    params: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False, default=dict))
    # For a retry limited to some items; None means every currently failed item.
    selected_custom_ids: list[str] | None = _json_column(nullable=True)
    status: str = Field(default=PassStatus.PLANNED, max_length=16)
    created_at: datetime = _timestamp(nullable=False)
    finished_at: datetime | None = _timestamp()


class ProviderBatch(SQLModel, table=True):
    """One chunk of a pass: at most one provider batch ever exists for it."""

    __tablename__ = "provider_batches"
    __table_args__ = (
        UniqueConstraint("pass_id", "chunk_index", name="uq_provider_batches_pass_chunk"),
        Index("ix_provider_batches_state_due", "state", "next_action_at"),
    )

    id: int | None = Field(default=None, primary_key=True)
    batch_id: str = Field(foreign_key="batches.id", max_length=40, index=True)
    pass_id: int = Field(foreign_key="passes.id")
    chunk_index: int
    line_count: int = 0
    byte_count: int = 0
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
    last_error: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
    lease_owner: str | None = Field(default=None, max_length=80)
    lease_expires_at: datetime | None = _timestamp()
    created_at: datetime = _timestamp(nullable=False)
    submitted_at: datetime | None = _timestamp()
    finished_at: datetime | None = _timestamp()
    # When the chunk's files on Groq (input, results, stray uploads) were deleted (PROVIDER_FILE_CLEANUP).
    files_deleted_at: datetime | None = _timestamp()


class Attempt(SQLModel, table=True):
    __tablename__ = "attempts"
    __table_args__ = (
        UniqueConstraint("item_id", "pass_id", name="uq_attempts_item_pass"),
        Index("ix_attempts_chunk_status", "provider_batch_row_id", "status"),
    )

    id: int | None = Field(default=None, primary_key=True)
    item_id: int = Field(foreign_key="items.id", index=True)
    pass_id: int = Field(foreign_key="passes.id", index=True)
    provider_batch_row_id: int = Field(foreign_key="provider_batches.id")
    status: str = Field(default=AttemptStatus.PENDING, max_length=16)
    error_code: str | None = Field(default=None, max_length=80)
    error_message: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
    content: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
    output: Any | None = _json_column(nullable=True)
    finish_reason: str | None = Field(default=None, max_length=32)
    input_tokens: int = 0
    output_tokens: int = 0
    cost_usd: float = 0.0
    provider_request_id: str | None = Field(default=None, max_length=80)
    created_at: datetime = _timestamp(nullable=False)
    finished_at: datetime | None = _timestamp()


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
    last_error: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
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
    error: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
    started_at: datetime = _timestamp(nullable=False)
    finished_at: datetime = _timestamp(nullable=False)


class IdempotencyState(StrEnum):
    IN_PROGRESS = "in_progress"
    COMPLETED = "completed"


class IdempotencyKey(SQLModel, table=True):
    """An Idempotency-Key and the answer it got. The primary key is what makes one key one request across
    replicas; the answer is stored in the transaction that did the work."""

    __tablename__ = "idempotency_keys"
    __table_args__ = (Index("ix_idempotency_keys_expires_at", "expires_at"),)

    key: str = Field(primary_key=True, max_length=255)
    request_hash: str = Field(max_length=64)  # sha256 of method, path, query and body
    method: str = Field(max_length=8)
    path: str = Field(sa_column=Column(Text, nullable=False))
    state: str = Field(default=IdempotencyState.IN_PROGRESS, max_length=16)
    owner: str = Field(max_length=40)  # the request that holds it while in progress
    locked_until: datetime = _timestamp(nullable=False)  # a request that died holding it frees it then
    response_status: int | None = None
    response_body: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
    response_location: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
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
    last_error: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
    last_error_at: datetime | None = _timestamp()
    last_success_at: datetime | None = _timestamp()
    backoff_until: datetime | None = _timestamp()
